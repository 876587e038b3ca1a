package httpapi_test

import (
	"bytes"
	"io"
	"slices"
	"testing"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// TestRegionScope: a county engineer (scope 440305, Nanshan) sees only Nanshan's sites, kiosks
// and security events, acts only on Nanshan's kiosks, and gets 403 forbidden for every endpoint
// that names a kiosk or site of another county (Futian, 440304); a bulk retirement selects
// only in its scope.
func TestRegionScope(t *testing.T) {
	e := newEnv(t)
	e.do(t, "POST", p+"/sites", adminTok, fleet.Site{ID: "nanshan", Name: "南山", Region: "440305"}, 201, nil)
	e.do(t, "POST", p+"/sites", adminTok, fleet.Site{ID: "futian", Name: "福田", Region: "440304"}, 201, nil)
	ours, ours2, theirs := e.enroll(t, "nanshan").DeviceID, e.enroll(t, "nanshan").DeviceID, e.enroll(t, "futian").DeviceID

	var me api.Me
	e.do(t, "GET", p+"/me", countyTok, nil, 200, &me)
	if me.Username != "nanshan-eng" || !slices.Equal(me.Regions, []string{"440305"}) || !slices.Equal(me.Roles, []string{"fieldops"}) {
		t.Errorf("me: %+v", me)
	}
	e.do(t, "GET", p+"/me", adminTok, nil, 200, &me)
	if me.Subject != "bootstrap-admin" || me.Regions == nil || len(me.Regions) != 0 {
		t.Errorf("me (bootstrap): %+v", me)
	}

	var sites api.Sites
	e.do(t, "GET", p+"/sites", countyTok, nil, 200, &sites)
	if len(sites.Sites) != 1 || sites.Sites[0].ID != "nanshan" {
		t.Errorf("sites in scope: %+v", sites.Sites)
	}
	ids := func(q string) []string {
		var ds api.Devices
		e.do(t, "GET", p+"/devices"+q, countyTok, nil, 200, &ds)
		var out []string
		for _, d := range ds.Devices {
			out = append(out, d.ID)
		}
		return out
	}
	want := []string{ours, ours2}
	slices.Sort(want)
	if got := ids(""); !slices.Equal(got, want) {
		t.Errorf("devices: %v, want %v", got, want)
	}
	if got := ids("?region=44"); !slices.Equal(got, want) {
		t.Errorf("devices?region=44: %v, want %v", got, want)
	}
	if got := ids("?site=futian"); len(got) != 0 {
		t.Errorf("devices?site=futian: %v, want none", got)
	}

	// Acting on our kiosk works; every endpoint naming theirs answers 403.
	var cmd fleet.Command
	e.do(t, "POST", p+"/devices/"+ours+"/commands", countyTok, api.CreateCommand{Name: "ping"}, 202, &cmd)
	e.do(t, "GET", p+"/commands/"+cmd.ID, countyTok, nil, 200, nil)
	var theirCmd fleet.Command
	e.do(t, "POST", p+"/devices/"+theirs+"/commands", adminTok, api.CreateCommand{Name: "ping"}, 202, &theirCmd)
	for _, c := range []struct {
		method, path, tok string
		body              any
	}{
		{"GET", "/devices/" + theirs, countyTok, nil},
		{"POST", "/devices/" + theirs + "/commands", countyTok, api.CreateCommand{Name: "ping"}},
		{"GET", "/devices/" + theirs + "/commands", countyTok, nil},
		{"GET", "/commands/" + theirCmd.ID, countyTok, nil},
		{"PUT", "/devices/" + theirs + "/desired", countyTok, api.SetDesired{Doc: []byte(`{"a":1}`)}},
		{"GET", "/devices/" + theirs + "/state", countyTok, nil},
		{"GET", "/devices/" + theirs + "/records", countyTok, nil},
		{"GET", "/devices/" + theirs + "/journal", countyTok, nil},
		{"GET", "/devices/" + theirs + "/presence", countyTok, nil},
		{"GET", "/devices/" + theirs + "/log", countyTok, nil},
		{"POST", "/devices/" + theirs + "/revoke", countyTok, nil},
		{"GET", "/security-events?device=" + theirs, countyTok, nil},
		{"POST", "/enrollment-tokens", countyTok, api.CreateToken{SiteID: "futian"}},
		{"POST", "/sites", countyAdmin, fleet.Site{ID: "futian-2", Name: "福田 2", Region: "440304"}},
	} {
		r := e.raw(t, t.Context(), c.method, p+c.path, c.tok, bodyOf(c.body))
		if r.status != 403 || r.err(t).Code != "forbidden" {
			t.Errorf("%s %s: status %d %s, want 403 forbidden", c.method, c.path, r.status, r.body)
		}
	}
	if d, _ := e.st.GetDevice(t.Context(), theirs); d.Revoked {
		t.Fatal("a kiosk outside the scope was revoked")
	}

	// Bulk retirement selects within the scope: their kiosk is not counted, let alone retired.
	var ret api.Retired
	e.do(t, "POST", p+"/devices/retire", countyAdmin, api.RetireDevices{IDs: []string{theirs, ours2}, DryRun: true}, 200, &ret)
	if ret.Count != 1 || ret.Devices[0] != ours2 {
		t.Errorf("dry run in scope: %+v", ret)
	}
	e.do(t, "POST", p+"/devices/retire", countyAdmin, api.RetireDevices{Site: "futian"}, 200, &ret)
	if ret.Count != 0 {
		t.Errorf("retired outside the scope: %+v", ret)
	}

	// Security events: a scoped list shows its kiosks' events only.
	for _, id := range []string{ours, theirs} {
		if err := e.st.AdvanceJournal(t.Context(), store.JournalHead{DeviceID: id, Cursor: 1, Chain: "c"}, 0,
			[]store.SecurityEvent{{Kind: "journal.break", RecordID: 1, Detail: "test", At: e.clock.Now()}}); err != nil {
			t.Fatal(err)
		}
	}
	var evs api.SecurityEvents
	e.do(t, "GET", p+"/security-events", countyTok, nil, 200, &evs)
	if len(evs.Events) != 1 || evs.Events[0].DeviceID != ours || evs.Next == 0 {
		t.Errorf("scoped security events: %+v", evs)
	}
	e.do(t, "GET", p+"/security-events", adminTok, nil, 200, &evs)
	if len(evs.Events) != 2 {
		t.Errorf("unscoped security events: %+v", evs)
	}
}

// bodyOf encodes a request body (nil: none).
func bodyOf(v any) io.Reader {
	if v == nil {
		return nil
	}
	return bytes.NewReader(wire.Encode(v))
}
