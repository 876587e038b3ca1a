package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

func testPresence(t *testing.T, s PresenceStore) {
	ctx := t.Context()
	Enroll(t, s, "sz", "k1")
	get := func() store.Device {
		t.Helper()
		d, err := s.GetDevice(ctx, "k1")
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if err := s.SetPresence(ctx, "k1", true, "1.0.0", T0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if d := get(); !d.Online || d.AgentVersion != "1.0.0" || !d.PresenceAt.Equal(T0.Add(time.Minute)) || !d.LastSeen.Equal(T0.Add(time.Minute)) {
		t.Fatalf("online: %+v", d)
	}
	if err := s.SetPresence(ctx, "k1", false, "", T0.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if d := get(); d.Online || d.AgentVersion != "1.0.0" || !d.PresenceAt.Equal(T0.Add(2*time.Minute)) {
		t.Fatalf("offline: %+v", d)
	}
	// A late, older presence event does not undo a newer one.
	if err := s.SetPresence(ctx, "k1", true, "0.9.0", T0.Add(90*time.Second)); err != nil {
		t.Fatal(err)
	}
	if d := get(); d.Online || d.AgentVersion != "1.0.0" {
		t.Fatalf("older presence applied: %+v", d)
	}
	// A batch: in order, unknown devices skipped, an older update ignored.
	if err := s.SetPresences(ctx, []store.PresenceUpdate{
		{DeviceID: "k1", Online: true, AgentVersion: "1.1.0", At: T0.Add(4 * time.Minute)},
		{DeviceID: "unknown", Online: true, At: T0.Add(4 * time.Minute)},
		{DeviceID: "k1", Online: false, At: T0.Add(5 * time.Minute)},
		{DeviceID: "k1", Online: true, At: T0.Add(3 * time.Minute)},
	}); err != nil {
		t.Fatal(err)
	}
	if d := get(); d.Online || d.AgentVersion != "1.1.0" || !d.PresenceAt.Equal(T0.Add(5*time.Minute)) || !d.LastSeen.Equal(T0.Add(5*time.Minute)) {
		t.Fatalf("after a presence batch: %+v", d)
	}
	wantErr(t, "SetPresence unknown", s.SetPresence(ctx, "nope", true, "", T0), store.ErrNotFound)
}

func testOnlineFilter(t *testing.T, s PresenceStore) {
	ctx := t.Context()
	if err := s.CreateSite(ctx, store.Site{ID: "gz", Name: "Guangzhou", Region: "440104"}); err != nil {
		t.Fatal(err)
	}
	Enroll(t, s, "sz", "k1")
	Enroll(t, s, "sz", "k2")
	Enroll(t, s, "gz", "k3")
	if err := s.SetPresence(ctx, "k2", true, "1.2.3", T0); err != nil {
		t.Fatal(err)
	}
	on, off := true, false
	for _, c := range []struct {
		f    store.DeviceFilter
		want []string
	}{
		{store.DeviceFilter{Online: &on}, []string{"k2"}},
		{store.DeviceFilter{Online: &off, SiteID: "sz"}, []string{"k1"}},
		{store.DeviceFilter{Online: &off, Region: "44"}, []string{"k1", "k3"}},
	} {
		if got := deviceIDs(t, s, c.f); !slices.Equal(got, c.want) {
			t.Errorf("ListDevices(%+v) = %v, want %v", c.f, got, c.want)
		}
	}
}
