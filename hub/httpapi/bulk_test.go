package httpapi_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
)

// TestBulk: the hub decides which kiosks a bulk action reaches. A county engineer's dry run
// counts their county's kiosks only, whatever the filter names; acting needs the confirmed count
// and an idempotency key; a retry answers the same job; the job's kiosks get the change, each
// audited in the engineer's name; another county's engineer cannot see the job.
func TestBulk(t *testing.T) {
	e := newEnv(t)
	e.do(t, "POST", p+"/sites", adminTok, fleet.Site{ID: "nanshan", Name: "南山", Region: "440305"}, 201, nil)
	e.do(t, "POST", p+"/sites", adminTok, fleet.Site{ID: "futian", Name: "福田", Region: "440304"}, 201, nil)
	ours := []string{e.enroll(t, "nanshan").DeviceID, e.enroll(t, "nanshan").DeviceID}
	slices.Sort(ours)
	theirs := e.enroll(t, "futian").DeviceID

	req := api.BulkRequest{Filter: api.BulkFilter{Region: "44"}, Action: api.BulkDesired, Desired: json.RawMessage(`{"logLevel":"debug"}`), DryRun: true}
	var dry api.BulkJob
	e.do(t, "POST", p+"/bulk", countyTok, req, 202, &dry)
	if !dry.DryRun || dry.Count != 2 || !slices.Equal(dry.Devices, ours) {
		t.Fatalf("the engineer's dry run: %+v, want %v", dry, ours)
	}
	e.do(t, "POST", p+"/bulk", adminTok, req, 202, &dry)
	if dry.Count != 3 {
		t.Fatalf("the admin's dry run: %+v", dry)
	}

	req.DryRun = false
	if r := e.do(t, "POST", p+"/bulk", countyTok, req, 400, nil).err(t); !strings.Contains(r.Message, "expect") || !strings.Contains(r.Message, "idempotencyKey") {
		t.Fatalf("no count, no key: %+v", r)
	}
	three := 3
	req.Expect, req.IdempotencyKey = &three, "k-0001-abcdef"
	if r := e.do(t, "POST", p+"/bulk", countyTok, req, 409, nil).err(t); r.Code != "count_changed" {
		t.Fatalf("the admin's count confirmed by the engineer: %+v", r)
	}
	two := 2
	req.Expect = &two
	var j, again api.BulkJob
	e.do(t, "POST", p+"/bulk", countyTok, req, 202, &j)
	e.do(t, "POST", p+"/bulk", countyTok, req, 202, &again)
	if j.ID == "" || j.Count != 2 || j.Replayed || again.ID != j.ID || !again.Replayed {
		t.Fatalf("job %+v, retry %+v", j, again)
	}
	other := req
	other.Desired = json.RawMessage(`{"logLevel":"warn"}`)
	if r := e.do(t, "POST", p+"/bulk", countyTok, other, 409, nil).err(t); r.Code != "conflict" {
		t.Fatalf("the key with another request: %+v", r)
	}

	sj, err := e.st.GetBulkJob(t.Context(), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.bulk.Step(t.Context(), sj); err != nil {
		t.Fatal(err)
	}
	for _, id := range ours {
		if d, err := e.st.GetDesired(t.Context(), id); err != nil || string(d.Doc) != `{"logLevel":"debug"}` {
			t.Errorf("%s desired = %s, %v", id, d.Doc, err)
		}
	}
	if _, err := e.st.GetDesired(t.Context(), theirs); err == nil {
		t.Error("the other county's kiosk got the change")
	}
	var items api.BulkItems
	e.do(t, "GET", p+"/bulk/"+j.ID+"/devices", countyTok, nil, 200, &items)
	if len(items.Items) != 2 || items.Items[0].DeviceID != ours[0] || items.Items[0].Ref != "1" || items.Items[0].State != api.BulkQueued {
		t.Fatalf("items: %+v", items)
	}
	var got api.BulkJob
	e.do(t, "GET", p+"/bulk/"+j.ID, countyTok, nil, 200, &got)
	if got.Counts.Queued != 2 || got.State != api.BulkRunning || got.CreatedBy != "nanshan-eng" {
		t.Fatalf("job: %+v", got)
	}
	var jobs api.BulkJobs
	e.do(t, "GET", p+"/bulk", countyTok, nil, 200, &jobs)
	if len(jobs.Jobs) != 1 || jobs.Jobs[0].ID != j.ID {
		t.Fatalf("jobs: %+v", jobs)
	}
	// The bootstrap admin (no scope) sees it too; another county's engineer does not (hub/bulk's tests).
	e.do(t, "GET", p+"/bulk/"+j.ID, adminTok, nil, 200, nil)
	e.do(t, "GET", p+"/bulk/nope", countyTok, nil, 404, nil)

	// The audit log: the requests (dry runs too), and one entry per kiosk acted on.
	es, err := e.st.ListAudit(t.Context(), store.StaffActionFilter{Actor: "nanshan-eng"})
	if err != nil {
		t.Fatal(err)
	}
	var perKiosk, requests []string
	for _, a := range es {
		switch a.Action {
		case "bulk desired " + j.ID:
			perKiosk = append(perKiosk, a.Target)
		case "POST /bulk":
			requests = append(requests, a.Result)
		}
	}
	slices.Sort(perKiosk)
	if !slices.Equal(perKiosk, []string{p + "/devices/" + ours[0] + "/desired", p + "/devices/" + ours[1] + "/desired"}) {
		t.Errorf("audited kiosks: %v", perKiosk)
	}
	if len(requests) != 6 || !slices.Contains(requests, "count_changed") {
		t.Errorf("audited requests: %v", requests)
	}
}
