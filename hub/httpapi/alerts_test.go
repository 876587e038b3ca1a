package httpapi_test

import (
	"strconv"
	"testing"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
)

// TestAlerts: a county engineer lists only their county's alerts, acknowledges and resolves
// them as themselves, and gets 403 for another county's; a resolved alert cannot be
// acknowledged (409); the listing of all includes resolved ones.
func TestAlerts(t *testing.T) {
	e := newEnv(t)
	e.do(t, "POST", p+"/sites", adminTok, fleet.Site{ID: "nanshan", Name: "南山", Region: "440305"}, 201, nil)
	e.do(t, "POST", p+"/sites", adminTok, fleet.Site{ID: "futian", Name: "福田", Region: "440304"}, 201, nil)
	ours, theirs := e.enroll(t, "nanshan").DeviceID, e.enroll(t, "futian").DeviceID
	now := e.clock.Now()
	paper, _, err := e.st.RaiseAlert(t.Context(), store.Alert{DeviceID: ours, Rule: "peripheral-fault", Subject: "receipt0", Detail: "paper-out", OpenedAt: now})
	if err != nil {
		t.Fatal(err)
	}
	other, _, _ := e.st.RaiseAlert(t.Context(), store.Alert{DeviceID: theirs, Rule: "offline", OpenedAt: now})

	var list api.Alerts
	e.do(t, "GET", p+"/alerts", countyTok, nil, 200, &list)
	if len(list.Alerts) != 1 || list.Alerts[0].ID != paper.ID || list.Alerts[0].Region != "440305" || list.Alerts[0].Detail != "paper-out" {
		t.Fatalf("county's alerts: %+v", list.Alerts)
	}
	e.do(t, "GET", p+"/alerts", adminTok, nil, 200, &list)
	if len(list.Alerts) != 2 {
		t.Fatalf("admin's alerts: %+v", list.Alerts)
	}
	var a api.Alert
	e.do(t, "POST", p+"/alerts/"+itoa(other.ID)+"/ack", countyTok, nil, 403, nil)
	e.do(t, "POST", p+"/alerts/"+itoa(paper.ID)+"/ack", countyTok, nil, 200, &a)
	if a.State != "acknowledged" || a.AckBy != "nanshan-eng" || !a.AckAt.Equal(now) {
		t.Fatalf("acknowledged: %+v", a)
	}
	e.do(t, "POST", p+"/alerts/"+itoa(paper.ID)+"/resolve", countyTok, nil, 200, &a)
	if a.State != "resolved" || a.ResolvedBy != "nanshan-eng" || a.AckBy != "nanshan-eng" {
		t.Fatalf("resolved: %+v", a)
	}
	e.do(t, "POST", p+"/alerts/"+itoa(paper.ID)+"/ack", countyTok, nil, 409, nil)
	e.do(t, "POST", p+"/alerts/999999/ack", countyTok, nil, 404, nil)
	e.do(t, "POST", p+"/alerts/x/ack", countyTok, nil, 404, nil)
	e.do(t, "GET", p+"/alerts", reviewerTok, nil, 403, nil)
	e.do(t, "GET", p+"/alerts", countyTok, nil, 200, &list)
	if len(list.Alerts) != 0 {
		t.Fatalf("county's unresolved alerts after resolving: %+v", list.Alerts)
	}
	e.do(t, "GET", p+"/alerts?all=1", countyTok, nil, 200, &list)
	if len(list.Alerts) != 1 || list.Alerts[0].State != "resolved" {
		t.Fatalf("county's alerts, all: %+v", list.Alerts)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
