package fleetctl

import (
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// The fake hub's alerts: the paper-out of kf-0b11d3 (alert 41), silenced.
func (h *fakeHub) listAlerts(w http.ResponseWriter, r *http.Request) {
	h.reply(w, http.StatusOK, api.Alerts{Alerts: []api.Alert{{ID: 41, DeviceID: "kf-0b11d3", Region: "440106", Rule: "peripheral-fault",
		Subject: "receipt0", Detail: "paper-out", State: "open", OpenedAt: now.Add(-20 * time.Minute), Silenced: r.URL.Query().Get("all") == ""}}})
}

func (h *fakeHub) createSilence(w http.ResponseWriter, r *http.Request) {
	var req api.CreateSilence
	if !h.decode(w, r, &req) {
		return
	}
	d, _ := time.ParseDuration(req.For)
	h.mu.Lock()
	defer h.mu.Unlock()
	s := api.Silence{ID: int64(len(h.silences) + 1), DeviceID: req.DeviceID, Region: req.Region, Rule: req.Rule, Reason: req.Reason,
		CreatedBy: "admin", StartsAt: now, EndsAt: now.Add(d)}
	h.silences = append(h.silences, s)
	h.reply(w, http.StatusCreated, s)
}

func (h *fakeHub) listSilences(w http.ResponseWriter, _ *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reply(w, http.StatusOK, api.Silences{Silences: h.silences})
}

func (h *fakeHub) endSilence(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	id, _ := strconv.Atoi(r.PathValue("id"))
	if id < 1 || id > len(h.silences) {
		h.fail(w, http.StatusNotFound, "not_found", "no silence "+r.PathValue("id"))
		return
	}
	s := &h.silences[id-1]
	s.EndsAt, s.EndedBy = now.Add(time.Minute), "admin"
	h.reply(w, http.StatusOK, s)
}

func (h *fakeHub) createWorkOrder(w http.ResponseWriter, r *http.Request) {
	var req api.CreateWorkOrder
	if !h.decode(w, r, &req) {
		return
	}
	if r.PathValue("id") != "41" {
		h.fail(w, http.StatusNotFound, "not_found", "no alert "+r.PathValue("id"))
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	wo := api.WorkOrder{ID: int64(len(h.workOrders) + 1), AlertID: 41, DeviceID: "kf-0b11d3", Region: "440106", Assignee: req.Assignee,
		Bring: req.Bring, Note: req.Note, State: "open", CreatedBy: "admin", CreatedAt: now}
	h.workOrders = append(h.workOrders, wo)
	h.reply(w, http.StatusCreated, wo)
}

func (h *fakeHub) listWorkOrders(w http.ResponseWriter, _ *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reply(w, http.StatusOK, api.WorkOrders{WorkOrders: h.workOrders})
}

func (h *fakeHub) closeWorkOrder(w http.ResponseWriter, r *http.Request) {
	var req api.CloseWorkOrder
	if !h.decode(w, r, &req) {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	id, _ := strconv.Atoi(r.PathValue("id"))
	if id < 1 || id > len(h.workOrders) {
		h.fail(w, http.StatusNotFound, "not_found", "no work order "+r.PathValue("id"))
		return
	}
	wo := &h.workOrders[id-1]
	if wo.State == "closed" {
		h.fail(w, http.StatusConflict, "conflict", "work order "+r.PathValue("id")+" is closed")
		return
	}
	wo.State, wo.ClosedBy, wo.ClosedAt, wo.Closing = "closed", "admin", now, req.Note
	h.reply(w, http.StatusOK, wo)
}

func TestAlertsList(t *testing.T) {
	h := newFakeHub(t)
	run(t, h, nil, "alerts", "list").want(t, 0, []string{"41", "kf-0b11d3", "peripheral-fault", "paper-out", "open (silenced)"}, nil)
	run(t, h, nil, "alerts", "list", "--all").want(t, 0, nil, nil)
	if reqs := h.requestsTo("GET", "/api/v1/alerts"); len(reqs) != 2 || reqs[0].Query != "" || reqs[1].Query != "all=1" {
		t.Errorf("queries %+v", reqs)
	}
}

func TestSilences(t *testing.T) {
	h := newFakeHub(t)
	run(t, h, nil, "silences", "create", "--region", "4403", "--for", "4h", "--reason", "Shenzhen network maintenance").
		want(t, 0, []string{"region 4403", "all", "Shenzhen network maintenance"}, nil)
	run(t, h, nil, "silences", "create", "--device", "kf-0b11d3", "--rule", "peripheral-fault", "--for", "2h").
		want(t, 0, []string{"kf-0b11d3", "peripheral-fault"}, nil)
	reqs := h.requestsTo("POST", "/api/v1/silences")
	var first, second api.CreateSilence
	if len(reqs) != 2 || json.Unmarshal([]byte(reqs[0].Body), &first) != nil || json.Unmarshal([]byte(reqs[1].Body), &second) != nil ||
		first != (api.CreateSilence{Region: "4403", For: "4h", Reason: "Shenzhen network maintenance"}) ||
		second != (api.CreateSilence{DeviceID: "kf-0b11d3", Rule: "peripheral-fault", For: "2h"}) {
		t.Fatalf("sent %+v", reqs)
	}
	run(t, h, nil, "silences", "list").want(t, 0, []string{"KIOSK/REGION", "region 4403", "kf-0b11d3"}, nil)
	run(t, h, nil, "silences", "end", "1").want(t, 0, []string{"ended by admin"}, nil)
	run(t, h, nil, "silences", "end", "9").want(t, ExitNotFound, nil, []string{"no silence 9"})

	run(t, h, nil, "silences", "create", "--device", "kf-0b11d3", "--region", "4403", "--for", "1h").
		want(t, ExitUsage, nil, []string{"give one, not both"})
	run(t, h, nil, "silences", "create", "--region", "440", "--rule", "sad", "--for", "200h").
		want(t, ExitUsage, nil, []string{`--region "440"`, `--rule "sad"`, `--for "200h": at most`})
	run(t, h, nil, "silences", "create").want(t, ExitUsage, nil, []string{"--device or --region is required", "--for is required"})
	run(t, h, nil, "silences", "end", "x").want(t, ExitUsage, nil, []string{`SILENCE-ID "x"`})
	if n := len(h.requestsTo("POST", "/api/v1/silences")); n != 2 {
		t.Errorf("%d create requests: an invalid command line reached the hub", n)
	}
}

func TestWorkOrders(t *testing.T) {
	h := newFakeHub(t)
	run(t, h, nil, "workorders", "create", "41", "--assignee", "Li Wei", "--bring", "2 receipt paper rolls", "--note", "hall opens 08:30").
		want(t, 0, []string{"Li Wei", "2 receipt paper rolls", "open", "kf-0b11d3"}, nil)
	var sent api.CreateWorkOrder
	if reqs := h.requestsTo("POST", "/api/v1/alerts/41/workorders"); len(reqs) != 1 || json.Unmarshal([]byte(reqs[0].Body), &sent) != nil ||
		sent != (api.CreateWorkOrder{Assignee: "Li Wei", Bring: "2 receipt paper rolls", Note: "hall opens 08:30"}) {
		t.Fatalf("sent %+v", reqs)
	}
	run(t, h, nil, "workorders", "list").want(t, 0, []string{"ASSIGNEE", "Li Wei"}, nil)
	run(t, h, nil, "workorders", "close", "1", "--note", "paper replaced").want(t, 0, []string{"closed by admin: paper replaced"}, nil)
	run(t, h, nil, "workorders", "close", "1").want(t, ExitError, nil, []string{"conflict (HTTP 409)"})
	run(t, h, nil, "workorders", "list", "--all", "-o", "json").want(t, 0, []string{`"state": "closed"`, `"closing": "paper replaced"`}, nil)
	if reqs := h.requestsTo("GET", "/api/v1/workorders"); len(reqs) != 2 || reqs[1].Query != "all=1" {
		t.Errorf("list queries %+v", reqs)
	}
	run(t, h, nil, "workorders", "create", "77", "--assignee", "x").want(t, ExitNotFound, nil, []string{"no alert 77"})
	run(t, h, nil, "workorders", "create", "0").want(t, ExitUsage, nil, []string{`ALERT-ID "0"`, "--assignee is required"})
}
