package httpapi_test

import (
	"strings"
	"testing"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
)

// TestSilencesAndWorkOrders: a county engineer silences their kiosk's alerts and opens, lists and
// closes a work order for one; for another county's kiosk every one of these is 403; bad input is
// 400 with every problem; each action is in the audit log.
func TestSilencesAndWorkOrders(t *testing.T) {
	e := newEnv(t)
	e.do(t, "POST", p+"/sites", adminTok, fleet.Site{ID: "nanshan", Name: "南山", Region: "440305"}, 201, nil)
	e.do(t, "POST", p+"/sites", adminTok, fleet.Site{ID: "futian", Name: "福田", Region: "440304"}, 201, nil)
	ours, theirs := e.enroll(t, "nanshan").DeviceID, e.enroll(t, "futian").DeviceID
	raise := func(id string) store.Alert {
		a, _, err := e.st.RaiseAlert(t.Context(), store.Alert{DeviceID: id, Rule: "peripheral-fault", Subject: "receipt0", Detail: "paper-out", OpenedAt: e.clock.Now()})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	ourAlert, theirAlert := raise(ours), raise(theirs)

	if r := e.do(t, "POST", p+"/silences", countyTok, api.CreateSilence{DeviceID: "x", Rule: "sad", For: "9000h"}, 400, nil).err(t); len(r.Fields) != 3 {
		t.Fatalf("bad silence: %+v", r)
	}
	e.do(t, "POST", p+"/silences", countyTok, api.CreateSilence{DeviceID: theirs, For: "2h"}, 403, nil)
	var si api.Silence
	e.do(t, "POST", p+"/silences", countyTok, api.CreateSilence{DeviceID: ours, Rule: "peripheral-fault", For: "2h", Reason: "printer swap"}, 201, &si)
	if si.ID == 0 || si.CreatedBy != "nanshan-eng" || si.EndsAt.Sub(si.StartsAt).Hours() != 2 {
		t.Fatalf("silence: %+v", si)
	}
	var as api.Alerts
	e.do(t, "GET", p+"/alerts", countyTok, nil, 200, &as)
	if len(as.Alerts) != 1 || !as.Alerts[0].Silenced {
		t.Fatalf("alerts under the silence: %+v", as)
	}
	var ss api.Silences
	e.do(t, "GET", p+"/silences", countyTok, nil, 200, &ss)
	if len(ss.Silences) != 1 {
		t.Fatalf("silences: %+v", ss)
	}
	e.do(t, "POST", p+"/silences/"+itoa(si.ID)+"/end", countyTok, nil, 200, &si)
	if si.EndedBy != "nanshan-eng" {
		t.Fatalf("ended: %+v", si)
	}
	var after api.Alerts // a fresh one: silenced is omitted when false
	e.do(t, "GET", p+"/alerts", countyTok, nil, 200, &after)
	if after.Alerts[0].Silenced {
		t.Fatal("still silenced after its end")
	}

	e.do(t, "POST", p+"/alerts/"+itoa(ourAlert.ID)+"/workorders", countyTok, api.CreateWorkOrder{Assignee: " "}, 400, nil)
	e.do(t, "POST", p+"/alerts/"+itoa(theirAlert.ID)+"/workorders", countyTok, api.CreateWorkOrder{Assignee: "li"}, 403, nil)
	var wo api.WorkOrder
	e.do(t, "POST", p+"/alerts/"+itoa(ourAlert.ID)+"/workorders", countyTok, api.CreateWorkOrder{Assignee: "li", Bring: "paper roll"}, 201, &wo)
	if wo.DeviceID != ours || wo.State != "open" || wo.Region != "440305" || wo.CreatedBy != "nanshan-eng" {
		t.Fatalf("work order: %+v", wo)
	}
	e.do(t, "POST", p+"/alerts/"+itoa(ourAlert.ID)+"/workorders", countyTok, api.CreateWorkOrder{Assignee: "wang"}, 409, nil)
	var theirWO api.WorkOrder
	e.do(t, "POST", p+"/alerts/"+itoa(theirAlert.ID)+"/workorders", adminTok, api.CreateWorkOrder{Assignee: "zhao"}, 201, &theirWO)
	var ws api.WorkOrders
	e.do(t, "GET", p+"/workorders", countyTok, nil, 200, &ws)
	if len(ws.WorkOrders) != 1 || ws.WorkOrders[0].ID != wo.ID {
		t.Fatalf("work orders in scope: %+v", ws)
	}
	e.do(t, "POST", p+"/workorders/"+itoa(theirWO.ID)+"/close", countyTok, api.CloseWorkOrder{}, 403, nil)
	e.do(t, "POST", p+"/workorders/"+itoa(wo.ID)+"/close", countyTok, api.CloseWorkOrder{Note: "new roll in"}, 200, &wo)
	if wo.State != "closed" || wo.ClosedBy != "nanshan-eng" || wo.Closing != "new roll in" {
		t.Fatalf("closed: %+v", wo)
	}
	e.do(t, "POST", p+"/workorders/"+itoa(wo.ID)+"/close", countyTok, api.CloseWorkOrder{}, 409, nil)

	es, err := e.st.ListAudit(t.Context(), store.StaffActionFilter{Actor: "nanshan-eng"})
	if err != nil {
		t.Fatal(err)
	}
	var acts []string
	for _, a := range es {
		acts = append(acts, a.Action+" "+a.Result)
	}
	for _, want := range []string{"POST /silences ok", "POST /silences/{id}/end ok", "POST /alerts/{id}/workorders ok", "POST /workorders/{id}/close ok",
		"POST /alerts/{id}/workorders forbidden"} {
		if !strings.Contains(strings.Join(acts, "\n"), want) {
			t.Errorf("audit lacks %q:\n%s", want, strings.Join(acts, "\n"))
		}
	}
}

// TestRegionSilences: a silence of a region quiets the alerts of the kiosks under it; a county
// engineer may silence their county, not the city around it nor another county, sees the
// silences over their kiosks (the city's too) and ends only those within their scope.
func TestRegionSilences(t *testing.T) {
	e := newEnv(t)
	e.do(t, "POST", p+"/sites", adminTok, fleet.Site{ID: "nanshan", Name: "南山", Region: "440305"}, 201, nil)
	e.do(t, "POST", p+"/sites", adminTok, fleet.Site{ID: "futian", Name: "福田", Region: "440304"}, 201, nil)
	ours, theirs := e.enroll(t, "nanshan").DeviceID, e.enroll(t, "futian").DeviceID
	for _, id := range []string{ours, theirs} {
		if _, _, err := e.st.RaiseAlert(t.Context(), store.Alert{DeviceID: id, Rule: "offline", OpenedAt: e.clock.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	if r := e.do(t, "POST", p+"/silences", countyTok, api.CreateSilence{DeviceID: ours, Region: "440305", For: "1h"}, 400, nil).err(t); len(r.Fields) != 1 {
		t.Fatalf("a silence of a kiosk and a region: %+v", r)
	}
	e.do(t, "POST", p+"/silences", countyTok, api.CreateSilence{Region: "44030", For: "1h"}, 400, nil)
	e.do(t, "POST", p+"/silences", countyTok, api.CreateSilence{Region: "4403", For: "1h"}, 403, nil)
	e.do(t, "POST", p+"/silences", countyTok, api.CreateSilence{Region: "440304", For: "1h"}, 403, nil)

	var county, city api.Silence
	e.do(t, "POST", p+"/silences", countyTok, api.CreateSilence{Region: "440305", For: "1h", Reason: "network works"}, 201, &county)
	if county.Region != "440305" || county.DeviceID != "" || county.CreatedBy != "nanshan-eng" {
		t.Fatalf("county silence: %+v", county)
	}
	silenced := func(tok string) map[string]bool {
		var as api.Alerts
		e.do(t, "GET", p+"/alerts", tok, nil, 200, &as)
		m := map[string]bool{}
		for _, a := range as.Alerts {
			m[a.DeviceID] = a.Silenced
		}
		return m
	}
	if got := silenced(adminTok); !got[ours] || got[theirs] {
		t.Fatalf("silenced under the county's silence: %v", got)
	}
	e.do(t, "POST", p+"/silences", adminTok, api.CreateSilence{Region: "4403", Rule: "offline", For: "1h"}, 201, &city)
	if got := silenced(adminTok); !got[ours] || !got[theirs] {
		t.Fatalf("silenced under the city's silence: %v", got)
	}
	var ss api.Silences
	e.do(t, "GET", p+"/silences", countyTok, nil, 200, &ss)
	if len(ss.Silences) != 2 {
		t.Fatalf("the county engineer's silences: %+v", ss)
	}
	e.do(t, "POST", p+"/silences/"+itoa(city.ID)+"/end", countyTok, nil, 403, nil)
	e.do(t, "POST", p+"/silences/"+itoa(county.ID)+"/end", countyTok, nil, 200, &county)
	e.do(t, "POST", p+"/silences/"+itoa(city.ID)+"/end", adminTok, nil, 200, nil)
	if got := silenced(adminTok); got[ours] || got[theirs] {
		t.Fatalf("silenced after every silence ended: %v", got)
	}
}
