package fleetctl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
)

// This file holds a fake hub for fleetctl's formatting and exit-code tests. It serves the
// endpoints fleetctl calls with the bodies, status codes and errors of docs/api.md, from
// realistic data; the real hub is exercised by the hub's own end-to-end tests.

const testToken = "kfa_test-admin-token"

// now is the fake clock: device times below are relative to it.
var now = time.Date(2026, 11, 25, 20, 15, 0, 0, time.UTC)

type request struct {
	Method, Path, Query, Body string
}

type fakeHub struct {
	t   testing.TB
	srv *httptest.Server

	mu       sync.Mutex
	requests []request
	health   api.Health
	sites    []fleet.Site
	devices  []fleet.Device
	desired  map[string]*fleet.DocState
	reported map[string]*fleet.DocState
	commands []*fleet.Command
	script   map[string][]fleet.Command // command ID -> states still to come, one per poll
	records  []fleet.Record
	nextID   int

	failPolls int // answer this many command polls with 503, as a hub restarting would

	silences   []api.Silence
	workOrders []api.WorkOrder
}

// commandScripts says how a command of a given name moves through its life cycle on the fake hub:
// each long poll advances it one step. Names not listed never change state.
var commandScripts = map[string][]fleet.Command{
	"print-test-page": {
		{State: api.CommandDelivered}, {State: api.CommandAccepted},
		{State: api.CommandSucceeded, Output: json.RawMessage(`{"pages":1,"printer":"receipt"}`)},
	},
	"idcard-selftest": {{State: api.CommandDelivered}, {State: api.CommandFailed, Error: "no card on the reader"}},
	"diagnostics":     {{State: api.CommandExpired, Error: "not accepted before its expiry"}},
}

func newFakeHub(t testing.TB) *fakeHub {
	h := &fakeHub{
		t:        t,
		health:   api.Health{Status: "ok", Version: "0.1.0", Store: "sqlite", Broker: "127.0.0.1:8883", ConnectedCount: 1, Devices: 3},
		desired:  map[string]*fleet.DocState{},
		reported: map[string]*fleet.DocState{},
		script:   map[string][]fleet.Command{},
	}
	h.sites = []fleet.Site{
		{ID: "gz-tianhe-2", Name: "Tianhe Government Service Hall", Region: "440106"},
		{ID: "sz-futian-1", Name: "Futian Citizen Service Centre", Region: "440304", Address: "Fuzhong 3rd Road 8"},
	}
	enrolled := now.Add(-30 * 24 * time.Hour)
	h.devices = []fleet.Device{
		{
			ID: "kf-0b11d3", SiteID: "gz-tianhe-2", Region: "440106", Model: "KF-A4", CertSerial: "51c0",
			CertExpiry: enrolled.Add(365 * 24 * time.Hour), EnrolledAt: enrolled,
			Online: false, PresenceAt: now.Add(-3 * time.Hour), LastSeen: now.Add(-3*time.Hour - 5*time.Second),
			AgentVersion: "0.0.9",
			Health:       json.RawMessage(`{"uptimeS":86400,"cpuPercent":3,"memUsedBytes":1073741824,"memTotalBytes":4294967296,"diskFreeBytes":1073741824,"diskTotalBytes":68719476736,"agentVersion":"0.0.9","outboxDepth":420,"rssBytes":52428800}`),
			HealthAt:     now.Add(-3 * time.Hour),
			Peripherals: json.RawMessage(`{"devices":[` +
				`{"id":"a4","class":"document-printer","manufacturer":"HP","model":"M404","connected":true,"status":"ok","since":1795713000000},` +
				`{"id":"scanner","class":"document-scanner","connected":false,"status":"fault","reasons":["disconnected"],"since":1795713000000}]}`),
			PeriphAt: now.Add(-3 * time.Hour),
		},
		{
			ID: "kf-7c2a9e", SiteID: "sz-futian-1", Region: "440304", Model: "KF-K200", CertSerial: "3f9a0c",
			CertExpiry: enrolled.Add(365 * 24 * time.Hour), EnrolledAt: enrolled,
			Online: true, PresenceAt: now.Add(-14 * time.Minute), LastSeen: now.Add(-12 * time.Second),
			AgentVersion: "0.1.0",
			Health:       json.RawMessage(`{"uptimeS":8123,"cpuPercent":12.5,"memUsedBytes":858993459,"memTotalBytes":4294967296,"diskFreeBytes":22548578304,"diskTotalBytes":68719476736,"agentVersion":"0.1.0","outboxDepth":0,"rssBytes":41943040}`),
			HealthAt:     now.Add(-30 * time.Second),
			Peripherals: json.RawMessage(`{"devices":[` +
				`{"id":"receipt","class":"receipt-printer","model":"KF-80","connected":true,"status":"fault","reasons":["paper-out"],"consumables":[{"name":"paper","level":"empty"}],"since":1795723800000},` +
				`{"id":"idcard","class":"id-reader","model":"GA467-USB","connected":true,"status":"ok","since":1795723800000}]}`),
			PeriphAt: now.Add(-3 * time.Minute),
		},
		{
			ID: "kf-9e0001", SiteID: "sz-futian-1", Region: "440304", CertSerial: "77aa",
			CertExpiry: enrolled.Add(365 * 24 * time.Hour), EnrolledAt: enrolled,
			Revoked: true, RevokedAt: now.Add(-2 * 24 * time.Hour),
			Peripherals: json.RawMessage(`42`),
		},
	}
	h.desired["kf-7c2a9e"] = &fleet.DocState{DeviceID: "kf-7c2a9e", Version: 4, Doc: json.RawMessage(`{"printer":{"receipt":"escpos-80"},"idle":"90s"}`), UpdatedAt: now.Add(-5 * time.Minute)}
	h.reported["kf-7c2a9e"] = &fleet.DocState{DeviceID: "kf-7c2a9e", Version: 3, Doc: json.RawMessage(`{"printer":{"receipt":"escpos-58"},"idle":"90s"}`), Error: `printer profile "escpos-80" unknown`, UpdatedAt: now.Add(-4 * time.Minute)}
	h.commands = []*fleet.Command{
		{ID: "cmd_0002", DeviceID: "kf-7c2a9e", Name: "print-test-page", State: api.CommandFailed, Error: "paper out",
			CreatedAt: now.Add(-10 * time.Minute), ExpiresAt: now.Add(50 * time.Minute), DeliveredAt: now.Add(-10 * time.Minute), UpdatedAt: now.Add(-9 * time.Minute)},
		{ID: "cmd_0001", DeviceID: "kf-7c2a9e", Name: "diagnostics", State: api.CommandSucceeded,
			CreatedAt: now.Add(-2 * time.Hour), ExpiresAt: now.Add(-time.Hour), DeliveredAt: now.Add(-2 * time.Hour), UpdatedAt: now.Add(-2 * time.Hour)},
	}
	h.nextID = 3
	for i := range 5 {
		h.records = append(h.records, fleet.Record{
			ID: int64(1000 + i), DeviceID: "kf-7c2a9e", Epoch: "e1", Seq: uint64(500 + i), Kind: []string{"heartbeat", "alert"}[i%2],
			Class: []api.RecordClass{api.ClassTelemetry, api.ClassBusiness}[i%2], DeviceTS: now.Add(time.Duration(i-10)*time.Second - 800*time.Millisecond),
			RecvTS: now.Add(time.Duration(i-10) * time.Second), Body: json.RawMessage(`{"code":"paper-low","message":"receipt paper low"}`),
		})
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/health", h.auth(h.getHealth))
	mux.HandleFunc("GET /api/v1/sites", h.auth(h.listSites))
	mux.HandleFunc("POST /api/v1/sites", h.auth(h.createSite))
	mux.HandleFunc("POST /api/v1/enrollment-tokens", h.auth(h.createToken))
	mux.HandleFunc("GET /api/v1/devices", h.auth(h.listDevices))
	mux.HandleFunc("GET /api/v1/devices/{id}", h.auth(h.device(h.getDevice)))
	mux.HandleFunc("POST /api/v1/devices/{id}/revoke", h.auth(h.device(h.revoke)))
	mux.HandleFunc("POST /api/v1/devices/{id}/commands", h.auth(h.device(h.sendCommand)))
	mux.HandleFunc("GET /api/v1/devices/{id}/commands", h.auth(h.device(h.listCommands)))
	mux.HandleFunc("GET /api/v1/commands/{id}", h.auth(h.getCommand))
	mux.HandleFunc("PUT /api/v1/devices/{id}/desired", h.auth(h.device(h.setDesired)))
	mux.HandleFunc("GET /api/v1/devices/{id}/state", h.auth(h.device(h.getState)))
	mux.HandleFunc("GET /api/v1/devices/{id}/records", h.auth(h.device(h.listRecords)))
	mux.HandleFunc("GET /api/v1/security-events", h.auth(h.listSecurityEvents))
	mux.HandleFunc("GET /api/v1/alerts", h.auth(h.listAlerts))
	mux.HandleFunc("POST /api/v1/silences", h.auth(h.createSilence))
	mux.HandleFunc("GET /api/v1/silences", h.auth(h.listSilences))
	mux.HandleFunc("POST /api/v1/silences/{id}/end", h.auth(h.endSilence))
	mux.HandleFunc("POST /api/v1/alerts/{id}/workorders", h.auth(h.createWorkOrder))
	mux.HandleFunc("GET /api/v1/workorders", h.auth(h.listWorkOrders))
	mux.HandleFunc("POST /api/v1/workorders/{id}/close", h.auth(h.closeWorkOrder))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, http.StatusNotFound, "not_found", "no such endpoint "+r.Method+" "+r.URL.Path)
	})
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		h.mu.Lock()
		h.requests = append(h.requests, request{r.Method, r.URL.Path, r.URL.RawQuery, string(body)})
		h.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// requestsTo returns the requests made to path so far.
func (h *fakeHub) requestsTo(method, path string) []request {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []request
	for _, r := range h.requests {
		if r.Method == method && r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

func (h *fakeHub) reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		h.t.Errorf("fake hub: encode: %v", err)
	}
}

func (h *fakeHub) fail(w http.ResponseWriter, status int, code, msg string, fields ...string) {
	h.reply(w, status, api.ErrorBody{Error: api.Error{Code: code, Message: msg, Fields: fields}})
}

func (h *fakeHub) auth(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+testToken {
			w.Header().Set("WWW-Authenticate", "Bearer")
			h.fail(w, http.StatusUnauthorized, "unauthorized", "missing or invalid bearer token")
			return
		}
		next(w, r)
	}
}

// device resolves {id} to a device index, answering 404 for an unknown one.
func (h *fakeHub) device(next func(http.ResponseWriter, *http.Request, int)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		defer h.mu.Unlock()
		for i := range h.devices {
			if h.devices[i].ID == r.PathValue("id") {
				next(w, r, i)
				return
			}
		}
		h.fail(w, http.StatusNotFound, "not_found", fmt.Sprintf("device %q not found", r.PathValue("id")))
	}
}

// decode reads a request body strictly, as the hub does.
func (h *fakeHub) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	d := json.NewDecoder(r.Body)
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		h.fail(w, http.StatusBadRequest, "bad_request", "invalid request body: "+err.Error())
		return false
	}
	return true
}

func (h *fakeHub) getHealth(w http.ResponseWriter, _ *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reply(w, http.StatusOK, h.health)
}

func (h *fakeHub) listSites(w http.ResponseWriter, _ *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reply(w, http.StatusOK, api.Sites{Sites: h.sites})
}

func (h *fakeHub) createSite(w http.ResponseWriter, r *http.Request) {
	var s api.CreateSite
	if !h.decode(w, r, &s) {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, x := range h.sites {
		if x.ID == s.ID {
			h.fail(w, http.StatusConflict, "conflict", fmt.Sprintf("site %q exists", s.ID))
			return
		}
	}
	h.sites = append(h.sites, s)
	h.reply(w, http.StatusCreated, s)
}

func (h *fakeHub) createToken(w http.ResponseWriter, r *http.Request) {
	var req api.CreateToken
	if !h.decode(w, r, &req) {
		return
	}
	ttl := 24 * time.Hour
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d > 720*time.Hour {
			h.fail(w, http.StatusBadRequest, "bad_request", "ttl must be a duration of at most 720h", "ttl")
			return
		}
		ttl = d
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.sites {
		if s.ID == req.SiteID {
			h.reply(w, http.StatusCreated, api.Token{ID: "tok_01", Secret: "kfe_4q9Zr-s3cret", SiteID: s.ID, ExpiresAt: now.Add(ttl)})
			return
		}
	}
	h.fail(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("siteId: no site %q", req.SiteID))
}

func (h *fakeHub) listDevices(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if s := q.Get("status"); s != "" && s != "online" && s != "offline" {
		h.fail(w, http.StatusBadRequest, "bad_request", "status must be online or offline", "status")
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	out := []fleet.Device{}
	for _, d := range h.devices {
		if (q.Get("site") == "" || d.SiteID == q.Get("site")) && strings.HasPrefix(d.Region, q.Get("region")) &&
			(q.Get("status") == "" || (q.Get("status") == "online") == d.Online) {
			out = append(out, d)
		}
	}
	h.reply(w, http.StatusOK, api.Devices{Devices: out})
}

func drift(desired, reported *fleet.DocState) bool {
	return desired != nil && (reported == nil || reported.Version != desired.Version)
}

func (h *fakeHub) deviceCommands(id string) []fleet.Command {
	out := []fleet.Command{}
	for _, c := range h.commands {
		if c.DeviceID == id {
			out = append(out, *c)
		}
	}
	return out
}

func (h *fakeHub) getDevice(w http.ResponseWriter, _ *http.Request, i int) {
	d := h.devices[i]
	h.reply(w, http.StatusOK, api.DeviceDetail{Device: d, Desired: h.desired[d.ID], Reported: h.reported[d.ID],
		Drift: drift(h.desired[d.ID], h.reported[d.ID]), Commands: h.deviceCommands(d.ID)})
}

func (h *fakeHub) revoke(w http.ResponseWriter, _ *http.Request, i int) {
	h.devices[i].Revoked, h.devices[i].RevokedAt, h.devices[i].Online = true, now, false
	h.reply(w, http.StatusOK, h.devices[i])
}

func (h *fakeHub) sendCommand(w http.ResponseWriter, r *http.Request, i int) {
	var req api.CreateCommand
	if !h.decode(w, r, &req) {
		return
	}
	ttl := time.Hour
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d > 168*time.Hour {
			msg := fmt.Sprintf("ttl: want a duration between 1s and 168h0m0s, got %q", req.TTL)
			h.fail(w, http.StatusBadRequest, "bad_request", "invalid request: "+msg, msg)
			return
		}
		ttl = d
	}
	if h.devices[i].Revoked {
		h.fail(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("invalid request: device: device %s is revoked", h.devices[i].ID), "device: device "+h.devices[i].ID+" is revoked")
		return
	}
	c := &fleet.Command{ID: fmt.Sprintf("cmd_%04d", h.nextID), DeviceID: h.devices[i].ID, Name: req.Name, Args: req.Args,
		State: api.CommandQueued, CreatedAt: now, ExpiresAt: now.Add(ttl), UpdatedAt: now}
	h.nextID++
	h.commands = append([]*fleet.Command{c}, h.commands...)
	h.script[c.ID] = commandScripts[req.Name]
	h.reply(w, http.StatusAccepted, c)
}

func (h *fakeHub) listCommands(w http.ResponseWriter, r *http.Request, i int) {
	cmds := h.deviceCommands(h.devices[i].ID)
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			h.fail(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("limit: want 1..1000, got %q", s))
			return
		}
		cmds = cmds[:min(n, len(cmds))]
	}
	h.reply(w, http.StatusOK, api.Commands{Commands: cmds})
}

// getCommand long-polls as docs/api.md says: it returns at once when the command is terminal or
// changes state (here: its script has a next step), else when wait has passed.
func (h *fakeHub) getCommand(w http.ResponseWriter, r *http.Request) {
	var wait time.Duration
	if s := r.URL.Query().Get("wait"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 || d > 60*time.Second {
			h.fail(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("wait %q must be a duration of at most 60s", s), "wait")
			return
		}
		wait = d
	}
	h.mu.Lock()
	if h.failPolls > 0 {
		h.failPolls--
		h.mu.Unlock()
		http.Error(w, "hub restarting", http.StatusServiceUnavailable)
		return
	}
	var c *fleet.Command
	for _, x := range h.commands {
		if x.ID == r.PathValue("id") {
			c = x
		}
	}
	if c == nil {
		h.mu.Unlock()
		h.fail(w, http.StatusNotFound, "not_found", fmt.Sprintf("command %q not found", r.PathValue("id")))
		return
	}
	if steps := h.script[c.ID]; wait > 0 && len(steps) > 0 && !c.State.Terminal() {
		step := steps[0]
		h.script[c.ID] = steps[1:]
		c.State, c.Output, c.Error = step.State, step.Output, step.Error
		c.UpdatedAt = c.UpdatedAt.Add(700 * time.Millisecond)
		if c.State == api.CommandDelivered {
			c.DeliveredAt = c.UpdatedAt
		}
		out := *c
		h.mu.Unlock()
		h.reply(w, http.StatusOK, out)
		return
	}
	out := *c
	h.mu.Unlock()
	if !out.State.Terminal() && wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		}
	}
	h.reply(w, http.StatusOK, out)
}

func (h *fakeHub) setDesired(w http.ResponseWriter, r *http.Request, i int) {
	var req api.SetDesired
	if !h.decode(w, r, &req) {
		return
	}
	var obj map[string]any
	if json.Unmarshal(req.Doc, &obj) != nil || obj == nil {
		h.fail(w, http.StatusBadRequest, "bad_request", "doc must be a JSON object", "doc")
		return
	}
	id := h.devices[i].ID
	v := int64(1)
	if d := h.desired[id]; d != nil {
		v = d.Version + 1
	}
	h.desired[id] = &fleet.DocState{DeviceID: id, Version: v, Doc: req.Doc, UpdatedAt: now}
	h.reply(w, http.StatusOK, h.desired[id])
}

func (h *fakeHub) getState(w http.ResponseWriter, _ *http.Request, i int) {
	id := h.devices[i].ID
	h.reply(w, http.StatusOK, api.State{Desired: h.desired[id], Reported: h.reported[id], Drift: drift(h.desired[id], h.reported[id])})
}

func (h *fakeHub) listRecords(w http.ResponseWriter, r *http.Request, i int) {
	q := r.URL.Query()
	var bad []string
	after, limit := int64(0), 100
	if s := q.Get("after"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			bad = append(bad, "after")
		}
		after = n
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			bad = append(bad, "limit")
		}
		limit = n
	}
	if len(bad) > 0 {
		h.fail(w, http.StatusBadRequest, "bad_request", "invalid query parameters", bad...)
		return
	}
	out := api.Records{Records: []fleet.Record{}, Next: after}
	for _, rec := range h.records {
		if rec.DeviceID == h.devices[i].ID && rec.ID > after && (q.Get("kind") == "" || rec.Kind == q.Get("kind")) && len(out.Records) < limit {
			out.Records = append(out.Records, rec)
			out.Next = rec.ID
		}
	}
	h.reply(w, http.StatusOK, out)
}
