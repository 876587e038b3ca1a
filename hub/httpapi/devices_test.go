package httpapi_test

import (
	"slices"
	"testing"
	"time"

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
	sorted := func(ids ...string) []string { slices.Sort(ids); return ids }
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
