package storetest

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
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

// Retiring takes exactly the selected devices in service out of it, at once and for good: they
// are revoked, offline, and listed only when asked for.
func testRetire(t *testing.T, s PresenceStore) {
	ctx := t.Context()
	for _, id := range []string{"k1", "k2", "k3", "k4"} {
		Enroll(t, s, "sz", id) // enrolled at T0, model K1
	}
	Enroll(t, s, "gz", "k5")
	// k1 heard from at T0+1h and offline since; k2 online; k3 never heard from; k4 seen at T0+3h.
	for _, p := range []store.PresenceUpdate{
		{DeviceID: "k1", Online: true, At: T0.Add(time.Hour)}, {DeviceID: "k1", Online: false, At: T0.Add(time.Hour)},
		{DeviceID: "k2", Online: true, At: T0.Add(time.Hour)},
		{DeviceID: "k4", Online: true, At: T0.Add(3 * time.Hour)}, {DeviceID: "k4", Online: false, At: T0.Add(3 * time.Hour)},
	} {
		if err := s.SetPresence(ctx, p.DeviceID, p.Online, "", p.At); err != nil {
			t.Fatal(err)
		}
	}
	stale := store.DeviceFilter{SiteID: "sz", SeenBefore: T0.Add(2 * time.Hour)}
	if got, want := deviceIDs(t, s, stale), []string{"k1", "k3"}; !slices.Equal(got, want) {
		t.Fatalf("ListDevices(seen before T0+2h) = %v, want %v (online and recently seen excluded)", got, want)
	}
	if err := s.RevokeDevice(ctx, "k3", T0.Add(30*time.Minute)); err != nil {
		t.Fatal(err)
	}
	at := T0.Add(4 * time.Hour)
	ids, err := s.RetireDevices(ctx, stale, at)
	if err != nil || !slices.Equal(ids, []string{"k1", "k3"}) {
		t.Fatalf("RetireDevices = %v, %v; want [k1 k3]", ids, err)
	}
	if got, want := deviceIDs(t, s, store.DeviceFilter{}), []string{"k2", "k4", "k5"}; !slices.Equal(got, want) {
		t.Errorf("in service after retiring: %v, want %v", got, want)
	}
	if got, want := deviceIDs(t, s, store.DeviceFilter{Retired: true}), []string{"k1", "k3"}; !slices.Equal(got, want) {
		t.Errorf("retired: %v, want %v", got, want)
	}
	k1, _ := s.GetDevice(ctx, "k1")
	k3, _ := s.GetDevice(ctx, "k3")
	if !k1.RetiredAt.Equal(at) || !k1.Revoked || !k1.RevokedAt.Equal(at) || k1.Online {
		t.Errorf("k1 after retiring: retired %v revoked %v at %v online %v", k1.RetiredAt, k1.Revoked, k1.RevokedAt, k1.Online)
	}
	if !k3.RevokedAt.Equal(T0.Add(30 * time.Minute)) {
		t.Errorf("k3's earlier revocation time lost: %v", k3.RevokedAt)
	}
	creds, _ := s.DeviceCredentials(ctx)
	for _, c := range creds {
		if (c.ID == "k1" || c.ID == "k3") != c.Revoked {
			t.Errorf("credential %+v: a retired device must be revoked, no other", c)
		}
	}
	// Retiring again retires nothing; by IDs and model it selects only devices in service.
	if ids, err := s.RetireDevices(ctx, stale, at.Add(time.Hour)); err != nil || len(ids) != 0 {
		t.Errorf("second RetireDevices = %v, %v; want none", ids, err)
	}
	// A scope narrows what a filter retires: k4 (Shenzhen) stays with a Guangzhou scope.
	if ids, err := s.RetireDevices(ctx, store.DeviceFilter{IDs: []string{"k4"}, Scope: []string{"4401"}}, at); err != nil || len(ids) != 0 {
		t.Errorf("RetireDevices(k4 outside the scope) = %v, %v; want none", ids, err)
	}
	ids, err = s.RetireDevices(ctx, store.DeviceFilter{IDs: []string{"k1", "k5", "nope"}, Model: "K1"}, at)
	if err != nil || !slices.Equal(ids, []string{"k5"}) {
		t.Errorf("RetireDevices(ids, model) = %v, %v; want [k5]", ids, err)
	}
	// A presence report of a retired device does not bring it back into service.
	if err := s.SetPresence(ctx, "k1", true, "", at.Add(2*time.Hour)); err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	if got := deviceIDs(t, s, store.DeviceFilter{}); slices.Contains(got, "k1") {
		t.Errorf("k1 back in service after a presence report: %v", got)
	}
	_, err = s.RetireDevices(ctx, store.DeviceFilter{}, time.Time{})
	wantErr(t, "retire without a time", err, store.ErrInvalid)
}

// ended is an offline change that ends a session begun at started, for reason.
func ended(id, replica string, started, at time.Time, reason fleet.DisconnectReason, detail string) store.PresenceUpdate {
	return store.PresenceUpdate{DeviceID: id, At: at, Replica: replica,
		End: &store.SessionEnd{StartedAt: started, Reason: reason, Detail: detail}}
}

func history(t *testing.T, s store.Presence, id string, limit int) []store.Session {
	t.Helper()
	ss, err := s.PresenceHistory(t.Context(), id, limit)
	if err != nil {
		t.Fatal(err)
	}
	return ss
}

// Every ended session is kept with its replica, times and reason, newest first, also when the
// offline change itself does not apply; unknown devices are skipped; long details are cut.
func testPresenceHistory(t *testing.T, s PresenceStore) {
	ctx := t.Context()
	Enroll(t, s, "sz", "k1")
	Enroll(t, s, "sz", "k2")
	if got := history(t, s, "k1", 0); len(got) != 0 {
		t.Fatalf("history before any session: %+v", got)
	}
	long := strings.Repeat("断", store.MaxDetail) // 3 bytes a rune: cut on a rune boundary
	if err := s.SetPresences(ctx, []store.PresenceUpdate{
		{DeviceID: "k1", Online: true, At: T0, Replica: "a"},
		ended("k1", "a", T0, T0.Add(time.Minute), fleet.DisconnectClean, ""),
		{DeviceID: "k1", Online: true, At: T0.Add(2 * time.Minute), Replica: "a"},
		ended("k1", "a", T0.Add(2*time.Minute), T0.Add(5*time.Minute), fleet.DisconnectKeepAlive, long),
		ended("nope", "a", T0, T0.Add(time.Minute), fleet.DisconnectNetwork, ""),
		{DeviceID: "k2", Online: true, At: T0, Replica: "b"},
		// k2 moved to replica c meanwhile: b's late end is history, not presence.
		{DeviceID: "k2", Online: true, At: T0.Add(time.Minute), Replica: "c"},
		ended("k2", "b", T0, T0.Add(90*time.Second), fleet.DisconnectReplaced, ""),
	}); err != nil {
		t.Fatal(err)
	}
	got := history(t, s, "k1", 0)
	if len(got) != 2 {
		t.Fatalf("k1 history: %+v, want 2 sessions", got)
	}
	if h := got[0]; h.DeviceID != "k1" || h.Replica != "a" || !h.StartedAt.Equal(T0.Add(2*time.Minute)) || !h.EndedAt.Equal(T0.Add(5*time.Minute)) ||
		h.Reason != fleet.DisconnectKeepAlive || len(h.Detail) > store.MaxDetail || !utf8.ValidString(h.Detail) || !strings.HasPrefix(long, h.Detail) ||
		len(h.Detail) < store.MaxDetail-3 {
		t.Errorf("k1 newest session: %+v", h)
	}
	if h := got[1]; !h.StartedAt.Equal(T0) || !h.EndedAt.Equal(T0.Add(time.Minute)) || h.Reason != fleet.DisconnectClean || got[0].ID <= h.ID {
		t.Errorf("k1 oldest session: %+v (newest %d)", h, got[0].ID)
	}
	if d, _ := s.GetDevice(ctx, "k1"); d.Online {
		t.Error("k1 online after its session ended")
	}
	if got := history(t, s, "k2", 0); len(got) != 1 || got[0].Replica != "b" || got[0].Reason != fleet.DisconnectReplaced {
		t.Errorf("k2 history: %+v", got)
	}
	if d, _ := s.GetDevice(ctx, "k2"); !d.Online || d.Replica != "c" {
		t.Errorf("k2 after replica b's late end: online %v replica %q, want online at c", d.Online, d.Replica)
	}
	if got := history(t, s, "nope", 0); len(got) != 0 {
		t.Errorf("history of an unknown device: %+v", got)
	}
	if got := history(t, s, "k1", 1); len(got) != 1 || got[0].Reason != fleet.DisconnectKeepAlive {
		t.Errorf("history limit 1: %+v", got)
	}

	// Bounded: only the newest HistoryKeep stay, over several batches.
	at := T0.Add(time.Hour)
	for b := 0; b < 3; b++ {
		var us []store.PresenceUpdate
		for range store.HistoryKeep/2 + 1 {
			us = append(us, ended("k1", "a", at, at.Add(time.Second), fleet.DisconnectNetwork, ""))
			at = at.Add(time.Minute)
		}
		if err := s.SetPresences(ctx, us); err != nil {
			t.Fatal(err)
		}
	}
	got = history(t, s, "k1", store.HistoryKeep+50)
	if len(got) != store.HistoryKeep {
		t.Fatalf("k1 history after %d more sessions: %d kept, want %d", 3*(store.HistoryKeep/2+1), len(got), store.HistoryKeep)
	}
	if !got[0].StartedAt.Equal(at.Add(-time.Minute)) || !got[len(got)-1].StartedAt.Equal(at.Add(-time.Duration(store.HistoryKeep)*time.Minute)) {
		t.Errorf("kept sessions from %v to %v, want the newest", got[len(got)-1].StartedAt, got[0].StartedAt)
	}
	if got := history(t, s, "k2", 0); len(got) != 1 {
		t.Errorf("trimming k1 touched k2: %d sessions", len(got))
	}
}
