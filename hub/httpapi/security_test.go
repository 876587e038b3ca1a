package httpapi_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/security"
	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
)

// TestSecurityEventsView: the API counts its own security events (a staff member refused, a
// kiosk revoked) into the one list with the others (journal breaks, TLS refusals, logins), which
// selects by kiosk, staff member, kind or family and time; a county engineer sees its kiosks'
// events and its own, never another's login or a refusal of no kiosk.
func TestSecurityEventsView(t *testing.T) {
	e := newEnv(t)
	e.do(t, "POST", p+"/sites", adminTok, fleet.Site{ID: "nanshan", Name: "南山", Region: "440305"}, 201, nil)
	e.do(t, "POST", p+"/sites", adminTok, fleet.Site{ID: "futian", Name: "福田", Region: "440304"}, 201, nil)
	ours, theirs := e.enroll(t, "nanshan").DeviceID, e.enroll(t, "futian").DeviceID

	e.do(t, "GET", p+"/devices/"+theirs, countyTok, nil, 403, nil)
	e.do(t, "POST", p+"/devices/"+theirs+"/revoke", countyTok, nil, 403, nil)
	e.do(t, "POST", p+"/devices/"+ours+"/revoke", opsTok, nil, 200, nil)
	now := e.clock.Now()
	if err := e.st.AddSecurityEvents(t.Context(), []store.SecurityEvent{
		{Kind: security.TLSRefused, Source: "198.51.100.7", Count: 4000, At: now},
		{Kind: "login.failed", Staff: "futian-eng", Source: "198.51.100.8", At: now},
		{Kind: security.ACLDenied, DeviceID: theirs, Source: "198.51.100.9", At: now},
	}); err != nil {
		t.Fatal(err)
	}
	if err := e.sec.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	list := func(tok string, q url.Values) []api.SecurityEvent {
		t.Helper()
		var out api.SecurityEvents
		e.do(t, "GET", p+"/security-events?"+q.Encode(), tok, nil, 200, &out)
		return out.Events
	}
	all := list(adminTok, nil)
	if len(all) != 5 {
		t.Fatalf("all events: %+v", all)
	}
	var forbidden, revoked *api.SecurityEvent
	for i, ev := range all {
		switch ev.Kind {
		case security.APIForbidden:
			forbidden = &all[i]
		case security.DeviceRevoked:
			revoked = &all[i]
		}
	}
	if forbidden == nil || forbidden.Staff != "nanshan-eng" || forbidden.Count != 2 || forbidden.Source != "127.0.0.1" {
		t.Errorf("the county engineer's refusals: %+v", forbidden)
	}
	if revoked == nil || revoked.DeviceID != ours || revoked.Staff != "ops1" || revoked.Count != 1 {
		t.Errorf("the revocation: %+v", revoked)
	}
	kinds := func(evs []api.SecurityEvent) map[string]bool {
		m := map[string]bool{}
		for _, ev := range evs {
			m[ev.Kind] = true
		}
		return m
	}
	if got := kinds(list(adminTok, url.Values{"kind": {"login"}})); len(got) != 1 || !got["login.failed"] {
		t.Errorf("kind=login: %v", got)
	}
	if got := list(adminTok, url.Values{"staff": {"nanshan-eng"}}); len(got) != 1 || got[0].Kind != security.APIForbidden {
		t.Errorf("staff=nanshan-eng: %+v", got)
	}
	if got := list(adminTok, url.Values{"device": {theirs}}); len(got) != 1 || got[0].Kind != security.ACLDenied {
		t.Errorf("device=%s: %+v", theirs, got)
	}
	if got := list(adminTok, url.Values{"since": {now.Add(time.Hour).Format(time.RFC3339)}}); len(got) != 0 {
		t.Errorf("since an hour later: %+v", got)
	}
	if got := list(adminTok, url.Values{"order": {"newest"}, "limit": {"1"}}); len(got) != 1 || got[0].ID != all[4].ID {
		t.Errorf("the newest: %+v", got)
	}
	// The county engineer: its kiosk's revocation and its own refusals only.
	if got := kinds(list(countyTok, nil)); len(got) != 2 || !got[security.APIForbidden] || !got[security.DeviceRevoked] {
		t.Errorf("scoped: %v", got)
	}
	for _, q := range []string{"kind=Bad*", "since=yesterday", "order=up", "limit=5000", "device=Bad!"} {
		e.do(t, "GET", p+"/security-events?"+q, adminTok, nil, 400, nil)
	}
}

// TestRetireIsASecurityEvent: each kiosk a staff member retires (revoked with it) is a
// device.revoked event in their name (an admin: retiring is theirs).
func TestRetireIsASecurityEvent(t *testing.T) {
	e := newEnv(t)
	e.site(t, "sz-a")
	a, b := e.enroll(t, "sz-a").DeviceID, e.enroll(t, "sz-a").DeviceID
	e.do(t, "POST", p+"/devices/retire", adminTok, api.RetireDevices{IDs: []string{a, b}}, 200, nil)
	if err := e.sec.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	var out api.SecurityEvents
	e.do(t, "GET", p+"/security-events?kind=device.revoked&staff=bootstrap-admin", adminTok, nil, 200, &out)
	got := map[string]bool{}
	for _, ev := range out.Events {
		got[ev.DeviceID] = true
	}
	if len(out.Events) != 2 || !got[a] || !got[b] {
		t.Fatalf("revocations: %+v", out.Events)
	}
}
