package httpapi_test

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/kioskfleet/kioskfleet/hub/httpapi"
	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/storetest"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
)

// GET /overview counts kiosks online, degraded, offline and revoked at each level of the region
// hierarchy and per site, within the caller's scope.
func TestOverview(t *testing.T) {
	e := newEnv(t)
	e.do(t, "POST", p+"/sites", adminTok, fleet.Site{ID: "nanshan", Name: "南山", Region: "440305"}, 201, nil)
	e.do(t, "POST", p+"/sites", adminTok, fleet.Site{ID: "futian", Name: "福田", Region: "440304"}, 201, nil)
	fine, faulty, gone := e.enroll(t, "nanshan").DeviceID, e.enroll(t, "nanshan").DeviceID, e.enroll(t, "futian").DeviceID
	e.enroll(t, "nanshan") // never heard from: offline
	ctx := t.Context()
	for _, id := range []string{fine, faulty} {
		if err := e.st.SetPresence(ctx, id, true, "1.0.0", e.clock.Now()); err != nil {
			t.Fatal(err)
		}
	}
	b := storetest.NewBatch(faulty, "e1", 1, 1, 50)
	b.Records[0].Effect.Peripherals = json.RawMessage(`{"devices":[{"id":"receipt0","class":"receipt-printer","connected":true,"status":"fault","reasons":["paper-out"],"since":1}]}`)
	if _, err := e.st.CommitBatches(ctx, []store.Batch{b}); err != nil {
		t.Fatal(err)
	}
	e.do(t, "POST", p+"/devices/"+gone+"/revoke", adminTok, nil, 200, nil)

	var ov api.Overview
	e.do(t, "GET", p+"/overview", adminTok, nil, 200, &ov)
	if want := (api.Tally{Kiosks: 4, Online: 1, Degraded: 1, Offline: 1, Revoked: 1}); ov.Total != want {
		t.Errorf("total %+v, want %+v", ov.Total, want)
	}
	var codes []string
	for _, r := range ov.Regions {
		codes = append(codes, r.Code+"/"+r.Level)
	}
	if got, want := codes, []string{"44/province", "4403/city", "440304/county", "440305/county"}; !slices.Equal(got, want) {
		t.Errorf("regions %v, want %v", got, want)
	}
	if r := ov.Regions[3]; r.Tally != (api.Tally{Kiosks: 3, Online: 1, Degraded: 1, Offline: 1}) {
		t.Errorf("Nanshan: %+v", r)
	}
	if len(ov.Sites) != 2 || ov.Sites[0].ID != "futian" || ov.Sites[0].Name != "福田" || ov.Sites[0].Revoked != 1 {
		t.Errorf("sites: %+v", ov.Sites)
	}
	// A county engineer counts only the kiosks of their county.
	e.do(t, "GET", p+"/overview", countyTok, nil, 200, &ov)
	if ov.Total.Kiosks != 3 || len(ov.Sites) != 1 || ov.Sites[0].ID != "nanshan" {
		t.Errorf("county-scoped overview: %+v", ov)
	}
	e.do(t, "GET", p+"/overview?region=440304", adminTok, nil, 200, &ov)
	if ov.Total.Kiosks != 1 {
		t.Errorf("overview of Futian: %+v", ov.Total)
	}
	e.do(t, "GET", p+"/overview?region=x", adminTok, nil, 400, nil)
}

// A peripherals body counts as degraded exactly when a peripheral is not ok or not connected,
// however it is spelled.
func TestOverviewDegraded(t *testing.T) {
	for body, want := range map[string]bool{
		``: false,
		`{"devices":[{"id":"a","class":"id-reader","connected":true,"status":"ok","since":1}]}`:                   false,
		`{"devices":[{"id":"a","connected":true,"status":"ok"},{"id":"b","connected":true,"status":"degraded"}]}`: true,
		`{"devices":[{"id":"a","connected":false,"status":"ok"}]}`:                                                true,
		`{"devices":[{"id":"a","status":"ok"}]}`:                                                                  true,
		`{"devices": [{"id": "a", "connected": true, "status": "ok"}]}`:                                           false,
		`{"devices": [{"id": "a", "connected": true, "status": "fault"}]}`:                                        true,
		`{"devices":[]}`: false,
		`not json`:       true,
	} {
		if got := httpapi.Degraded(json.RawMessage(body)); got != want {
			t.Errorf("degraded(%s) = %v, want %v", body, got, want)
		}
	}
}
