package httpapi_test

import (
	"slices"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
)

func TestDevices(t *testing.T) {
	e := newEnv(t)
	e.site(t, "sz-a")
	e.do(t, "POST", p+"/sites", adminTok, fleet.Site{ID: "gz-b", Name: "B", Region: "440104"}, 201, nil)
	a1, a2, b1 := e.enroll(t, "sz-a").DeviceID, e.enroll(t, "sz-a").DeviceID, e.enroll(t, "gz-b").DeviceID
	if err := e.st.SetPresence(t.Context(), a2, true, "1.0.0", e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	list := func(q string) []string {
		var ds api.Devices
		e.do(t, "GET", p+"/devices"+q, opsTok, nil, 200, &ds)
		ids := []string{}
		for _, d := range ds.Devices {
			ids = append(ids, d.ID)
		}
		return ids
	}

	for q, want := range map[string][]string{
		"":                             sorted(a1, a2, b1),
		"?site=sz-a":                   sorted(a1, a2),
		"?region=44":                   sorted(a1, a2, b1),
		"?region=4401":                 {b1},
		"?region=440304&status=online": {a2},
		"?status=offline":              sorted(a1, b1),
		"?site=sz-nope":                {},
	} {
		if got := list(q); !slices.Equal(got, want) {
			t.Errorf("devices%s = %v, want %v", q, got, want)
		}
	}

	// Revoke: disconnects the session, idempotent.
	var d fleet.Device
	e.sess.connected[a1] = true
	e.do(t, "POST", p+"/devices/"+a1+"/revoke", opsTok, nil, 200, &d)
	if !d.Revoked || !d.RevokedAt.Equal(e.clock.Now()) || d.ID != a1 {
		t.Fatalf("revoked device %+v", d)
	}
	if !slices.Equal(e.sess.disconnected, []string{a1}) {
		t.Fatalf("disconnected %v, want %s", e.sess.disconnected, a1)
	}
	at := d.RevokedAt
	e.clock.Add(time.Minute)
	e.do(t, "POST", p+"/devices/"+a1+"/revoke", opsTok, nil, 200, &d)
	if !d.Revoked || !d.RevokedAt.Equal(at) {
		t.Fatalf("second revoke: %+v, want the first time kept", d)
	}
}

// Retiring: a dry run counts, a confirmed count is the count acted on, retired kiosks are cut and
// leave the fleet's lists, and fieldops (not admin) may not retire.
func TestRetire(t *testing.T) {
	e := newEnv(t)
	e.site(t, "sz-a")
	a1, a2 := e.enroll(t, "sz-a").DeviceID, e.enroll(t, "sz-a").DeviceID
	on := e.enroll(t, "sz-a").DeviceID
	if err := e.st.SetPresence(t.Context(), on, true, "1.0.0", e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(48 * time.Hour)
	stale := api.RetireDevices{Site: "sz-a", OfflineFor: "24h"}

	e.do(t, "POST", p+"/devices/retire", opsTok, stale, 403, nil)
	var r api.Retired
	dry := stale
	dry.DryRun = true
	e.do(t, "POST", p+"/devices/retire", adminTok, dry, 200, &r)
	if !r.DryRun || r.Count != 2 || !slices.Equal(r.Devices, sorted(a1, a2)) {
		t.Fatalf("dry run = %+v, want the two offline kiosks", r)
	}
	three := 3
	wrong := stale
	wrong.Expect = &three
	e.do(t, "POST", p+"/devices/retire", adminTok, wrong, 409, nil)

	two := 2
	stale.Expect = &two
	e.sess.connected[a1] = true
	e.do(t, "POST", p+"/devices/retire", adminTok, stale, 200, &r)
	if r.DryRun || r.Count != 2 || !slices.Equal(r.Devices, sorted(a1, a2)) {
		t.Fatalf("retire = %+v", r)
	}
	if !slices.Contains(e.sess.disconnected, a1) {
		t.Errorf("a retired kiosk's session was not cut: %v", e.sess.disconnected)
	}
	var ds api.Devices
	e.do(t, "GET", p+"/devices", opsTok, nil, 200, &ds)
	if len(ds.Devices) != 1 || ds.Devices[0].ID != on {
		t.Errorf("devices in service = %+v, want only %s", ds.Devices, on)
	}
	e.do(t, "GET", p+"/devices?status=retired", opsTok, nil, 200, &ds)
	if len(ds.Devices) != 2 || ds.Devices[0].RetiredAt.IsZero() || !ds.Devices[0].Revoked {
		t.Errorf("retired devices = %+v", ds.Devices)
	}

	for _, bad := range []api.RetireDevices{{}, {DryRun: true}, {Site: "sz-a", OfflineFor: "5m"}, {IDs: []string{"Bad ID"}}, {Region: "44x"}} {
		e.do(t, "POST", p+"/devices/retire", adminTok, bad, 400, nil)
	}
}

func sorted(ids ...string) []string { slices.Sort(ids); return ids }

// GET /devices/{id}/presence: the kiosk's presence and its ended sessions, newest first, with
// their reasons and durations; a bad limit is refused.
func TestPresenceHistory(t *testing.T) {
	e := newEnv(t)
	e.site(t, "sz-a")
	id := e.enroll(t, "sz-a").DeviceID
	t0 := e.clock.Now()
	if err := e.st.SetPresences(t.Context(), []store.PresenceUpdate{
		{DeviceID: id, Online: true, At: t0, Replica: "hub-1"},
		{DeviceID: id, At: t0.Add(90 * time.Second), Replica: "hub-1",
			End: &store.SessionEnd{StartedAt: t0, Reason: fleet.DisconnectKeepAlive, Detail: "i/o timeout"}},
		{DeviceID: id, Online: true, At: t0.Add(2 * time.Minute), Replica: "hub-1"},
		{DeviceID: id, At: t0.Add(3 * time.Minute), Replica: "hub-1",
			End: &store.SessionEnd{StartedAt: t0.Add(2 * time.Minute), Reason: fleet.DisconnectRevoked}},
	}); err != nil {
		t.Fatal(err)
	}
	var got api.Presence
	e.do(t, "GET", p+"/devices/"+id+"/presence", adminTok, nil, 200, &got)
	if got.DeviceID != id || got.Online || !got.PresenceAt.Equal(t0.Add(3*time.Minute)) || len(got.Sessions) != 2 {
		t.Fatalf("presence: %+v", got)
	}
	if s := got.Sessions[0]; s.Reason != fleet.DisconnectRevoked || s.DurationMs != 60_000 || s.Replica != "hub-1" {
		t.Errorf("newest session: %+v", s)
	}
	if s := got.Sessions[1]; s.Reason != fleet.DisconnectKeepAlive || s.DurationMs != 90_000 || s.Detail != "i/o timeout" || !s.StartedAt.Equal(t0) {
		t.Errorf("oldest session: %+v", s)
	}
	e.do(t, "GET", p+"/devices/"+id+"/presence?limit=1", adminTok, nil, 200, &got)
	if len(got.Sessions) != 1 || got.Sessions[0].Reason != fleet.DisconnectRevoked {
		t.Errorf("limit 1: %+v", got.Sessions)
	}
	e.do(t, "GET", p+"/devices/"+id+"/presence?limit=0", adminTok, nil, 400, nil)
	e.do(t, "GET", p+"/devices/nope/presence", adminTok, nil, 404, nil)
}
