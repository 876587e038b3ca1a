// Package webtest is a stand-in for the hub's HTTP API (docs/api.md) holding a small, realistic
// fleet, for tests of the fleet console: the endpoints the console calls, with the hub's bearer
// check, filters, validation and error bodies. It records every request it serves.
package webtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
)

// Token is the bearer token the fake hub accepts.
const Token = "kf-test-token"

// Device IDs of the fleet NewHub holds.
const (
	OK        = "k-ok-0001"      // online, everything fine
	PaperOut  = "k-paper-0002"   // online, receipt printer out of paper (fault)
	CardFault = "k-card-0003"    // online, ID card reader SAM fault (fault)
	DiskLow   = "k-disk-0004"    // online, disk nearly full (degraded), desired state drifts
	Offline   = "k-offline-0005" // offline for two hours
	Revoked   = "k-revoked-0006" // revoked
	Odd       = "k-odd-0007"     // online, peripherals and health in shapes the agent does not send (stored before the hub checked them)
	Unknown   = "k-unknown-0099" // not in the fleet: 404
)

// LeakedIDNumber is a made-up resident ID number that one command's output carries in an identity
// field (idNumber), as a faulty agent might send it; a page must never show it.
const LeakedIDNumber = "11010519491231002X"

// Hub is a fake hub API server.
type Hub struct {
	URL string
	Now time.Time

	mu       sync.Mutex
	sites    []fleet.Site
	devices  []fleet.Device
	desired  map[string]*fleet.DocState
	reported map[string]*fleet.DocState
	commands map[string][]fleet.Command
	apps     []api.App // with their versions
	audit    map[string][]api.AuditEntry
	requests []string
	nextID   int
}

// NewHub starts a fake hub on 127.0.0.1 holding seven kiosks at three sites; it stops with t.
func NewHub(t testing.TB) *Hub {
	h := &Hub{Now: time.Now().UTC().Truncate(time.Second)}
	h.seed()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	h.URL = srv.URL
	return h
}

// Client returns an API client for the fake hub.
func (h *Hub) Client() *api.Client { return &api.Client{BaseURL: h.URL, Token: Token} }

// Requests returns "METHOD /path?query" of every request served so far.
func (h *Hub) Requests() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.requests)
}

// Commands returns a device's commands, most recent first.
func (h *Hub) Commands(id string) []fleet.Command {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.commands[id])
}

// Desired returns a device's desired state, or nil.
func (h *Hub) Desired(id string) *fleet.DocState {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.desired[id]
}

// Update changes a device in place, e.g. to make it go offline.
func (h *Hub) Update(id string, f func(*fleet.Device)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if i := h.find(id); i >= 0 {
		f(&h.devices[i])
	}
}

func (h *Hub) seed() {
	now := h.Now
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	h.sites = []fleet.Site{
		{ID: "gz-tianhe-1", Name: "天河区政务服务中心", Region: "440106", Address: "天府路1号"},
		{ID: "sz-futian-1", Name: "福田区市民服务中心", Region: "440304", Address: "福中三路8号"},
		{ID: "sz-nanshan-2", Name: "南山区行政服务大厅", Region: "440305"},
	}
	hb := func(cpu float64, diskFree uint64, outbox int64) json.RawMessage {
		b, _ := json.Marshal(api.Heartbeat{UptimeS: 81234, CPUPercent: cpu, MemUsedBytes: 1_812_000_000, MemTotal: 4_000_000_000,
			DiskFree: diskFree, DiskTotal: 64_000_000_000, AgentVersion: "0.1.0", OutboxDepth: outbox, RSSBytes: 41_000_000})
		return b
	}
	since := now.Add(-37 * time.Minute).UnixMilli()
	periph := func(receipt, idcard string) json.RawMessage {
		return json.RawMessage(fmt.Sprintf(`{"devices":[
 {"id":"receipt0","class":"receipt-printer","manufacturer":"Hengtai","model":"KP-80S","profile":"hengtai-kp80-serial","connected":true,%s,"since":%d},
 {"id":"idcard0","class":"id-reader","manufacturer":"Shensi","model":"SS628","connected":true,%s,"since":%d},
 {"id":"a4","class":"document-printer","model":"IPP Everywhere","connected":true,"status":"ok","consumables":[{"name":"paper","level":"ok"},{"name":"toner","level":"low"}],"since":%d}]}`,
			receipt, since, idcard, since, since))
	}
	const (
		recOK    = `"status":"ok","consumables":[{"name":"paper","level":"ok"}]`
		recEmpty = `"status":"fault","reasons":["paper-out"],"consumables":[{"name":"paper","level":"empty"}]`
		idOK     = `"status":"ok"`
		idSAM    = `"status":"fault","reasons":["sam-fault"]`
	)
	dev := func(id, site, region string, online bool, seen time.Duration) fleet.Device {
		return fleet.Device{ID: id, SiteID: site, Region: region, Model: "KF-K200", CertSerial: "3f9a0c1b",
			CertExpiry: now.AddDate(1, 0, 0), EnrolledAt: ago(40 * 24 * time.Hour), Online: online,
			PresenceAt: ago(seen + 3*time.Hour), LastSeen: ago(seen), AgentVersion: "0.1.0",
			HealthAt: ago(seen + 20*time.Second), PeriphAt: ago(seen + 37*time.Minute)}
	}
	d1 := dev(OK, "sz-futian-1", "440304", true, 5*time.Second)
	d1.Health, d1.Peripherals = hb(12.5, 21_000_000_000, 0), periph(recOK, idOK)
	d2 := dev(PaperOut, "sz-futian-1", "440304", true, 3*time.Second)
	d2.Health, d2.Peripherals = hb(8, 30_000_000_000, 2), periph(recEmpty, idOK)
	d3 := dev(CardFault, "sz-nanshan-2", "440305", true, 10*time.Second)
	d3.Health, d3.Peripherals = hb(15, 25_000_000_000, 1), periph(recOK, idSAM)
	d4 := dev(DiskLow, "gz-tianhe-1", "440106", true, 2*time.Second)
	d4.Health, d4.Peripherals = hb(22, 2_500_000_000, 0), periph(recOK, idOK)
	d5 := dev(Offline, "sz-nanshan-2", "440305", false, 2*time.Hour)
	d5.PresenceAt = ago(2 * time.Hour)
	d5.Health, d5.Peripherals = hb(10, 20_000_000_000, 0), periph(recOK, idOK)
	d6 := dev(Revoked, "gz-tianhe-1", "440106", false, 30*24*time.Hour)
	d6.Revoked, d6.RevokedAt = true, ago(29*24*time.Hour)
	d7 := dev(Odd, "gz-tianhe-1", "440106", true, 4*time.Second)
	d7.Health = json.RawMessage(`{"cpuPercent":"high","temperatureC":61,"fans":[1200,1180]}`)
	d7.Peripherals = json.RawMessage(`{"scanner":"ok","printer":{"status":"degraded","reasons":["media-low"]}}`)
	h.devices = []fleet.Device{d1, d2, d3, d4, d5, d6, d7}
	h.desired = map[string]*fleet.DocState{
		DiskLow: {DeviceID: DiskLow, Version: 4, Doc: json.RawMessage(`{"heartbeatInterval":"10s","logLevel":"debug"}`), UpdatedAt: ago(15 * time.Minute)},
		OK:      {DeviceID: OK, Version: 2, Doc: json.RawMessage(`{"heartbeatInterval":"30s"}`), UpdatedAt: ago(24 * time.Hour)},
	}
	h.reported = map[string]*fleet.DocState{
		DiskLow: {DeviceID: DiskLow, Version: 3, Doc: json.RawMessage(`{"heartbeatInterval":"30s","logLevel":"info"}`), UpdatedAt: ago(2 * time.Hour),
			Error: `settings: logLevel "verbose": want debug, info, warn or error`},
		OK: {DeviceID: OK, Version: 2, Doc: json.RawMessage(`{"heartbeatInterval":"30s"}`), UpdatedAt: ago(23 * time.Hour)},
	}
	h.commands = map[string][]fleet.Command{
		CardFault: {
			// An agent that wrongly put an ID number in its output: the console must not show it.
			{ID: "c-0000000000000009", DeviceID: CardFault, Name: "idcard-selftest", State: api.CommandFailed, CreatedAt: ago(5 * time.Minute),
				ExpiresAt: ago(5 * time.Minute).Add(time.Hour), UpdatedAt: ago(5 * time.Minute),
				Output: json.RawMessage(`{"reader":"idcard0","cardType":"resident","idNumber":"` + LeakedIDNumber + `"}`),
				Error:  "idcard-selftest: read: sam-fault"},
		},
		PaperOut: {
			{ID: "c-0000000000000002", DeviceID: PaperOut, Name: "print-test-page", Args: json.RawMessage(`{"printer":"receipt0"}`),
				State: api.CommandFailed, CreatedAt: ago(10 * time.Minute), ExpiresAt: ago(10 * time.Minute).Add(time.Hour),
				DeliveredAt: ago(10 * time.Minute), UpdatedAt: ago(9 * time.Minute),
				Output: json.RawMessage(`{"device":"receipt0","state":"refused","reasons":["paper-out"],"millis":120}`), Error: "print-test-page: printer not ready: paper-out"},
			{ID: "c-0000000000000001", DeviceID: PaperOut, Name: "ping", State: api.CommandSucceeded, CreatedAt: ago(time.Hour),
				ExpiresAt: ago(time.Hour).Add(time.Hour), DeliveredAt: ago(time.Hour), UpdatedAt: ago(time.Hour), Output: json.RawMessage(`{"pong":true}`)},
		},
	}
	h.nextID = 3
	v := func(app, ver, state string, channels map[string]string, at time.Duration) api.AppVersion {
		return api.AppVersion{App: app, Version: ver, State: state, Channels: channels, CreatedAt: ago(at), CreatedBy: "u_dev", UpdatedAt: ago(at / 2)}
	}
	h.apps = []api.App{
		{ID: "tax-print", Department: "tax", Kind: api.KindKioskBundle, Name: "完税证明打印", CreatedAt: ago(30 * 24 * time.Hour),
			Channels: map[string]api.ChannelVersion{api.ChannelKiosk: {Version: "1.4.0", State: api.StateListed}},
			Versions: []api.AppVersion{v("tax-print", "1.3.0", api.StateApproved, map[string]string{api.ChannelKiosk: api.StateDelisted}, 20*24*time.Hour),
				v("tax-print", "1.4.0", api.StateApproved, map[string]string{api.ChannelKiosk: api.StateListed}, 2*24*time.Hour),
				v("tax-print", "1.5.0", api.StateSubmitted, map[string]string{}, time.Hour)}},
		{ID: "hr-web", Department: "hr", Kind: api.KindWebLink, Name: "社保查询", CreatedAt: ago(10 * 24 * time.Hour),
			Channels: map[string]api.ChannelVersion{api.ChannelWeb: {Version: "2.0.0", State: api.StatePublished}}},
	}
	h.audit = map[string][]api.AuditEntry{"tax-print": {
		{N: 1, App: "tax-print", Version: "1.4.0", From: "", To: api.StateDraft, Actor: "u_dev", At: ago(2 * 24 * time.Hour)},
		{N: 2, App: "tax-print", Version: "1.4.0", Channel: api.ChannelKiosk, From: api.StateListed, To: api.StateDelisted, Actor: "u_op",
			Reason: "superseded by 1.4.0", At: ago(24 * time.Hour)},
	}}
}

// catalog serves GET /apps, /apps/{id} and /apps/{id}/audit.
func (h *Hub) catalog(w http.ResponseWriter, r *http.Request, parts []string) {
	if len(parts) == 0 {
		out := []api.App{}
		for _, a := range h.apps {
			if d := r.URL.Query().Get("department"); d == "" || d == a.Department {
				a.Versions = nil
				out = append(out, a)
			}
		}
		writeJSON(w, http.StatusOK, api.Apps{Apps: out})
		return
	}
	i := slices.IndexFunc(h.apps, func(a api.App) bool { return a.ID == parts[0] })
	switch {
	case i < 0:
		apiError(w, http.StatusNotFound, "not_found", "store: not found: app "+parts[0])
	case len(parts) == 1:
		a := h.apps[i]
		a.Channels = nil
		writeJSON(w, http.StatusOK, a)
	case len(parts) == 2 && parts[1] == "audit":
		writeJSON(w, http.StatusOK, api.Audit{Entries: append([]api.AuditEntry{}, h.audit[parts[0]]...)})
	default:
		apiError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+r.URL.Path)
	}
}

func (h *Hub) find(id string) int {
	return slices.IndexFunc(h.devices, func(d fleet.Device) bool { return d.ID == id })
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func apiError(w http.ResponseWriter, status int, code, msg string, fields ...string) {
	if len(fields) > 0 {
		msg += ": " + strings.Join(fields, "; ")
	}
	writeJSON(w, status, api.ErrorBody{Error: api.Error{Code: code, Message: msg, Fields: fields}})
}

// ServeHTTP serves the API.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.requests = append(h.requests, r.Method+" "+r.URL.RequestURI())
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "bearer") || tok != Token {
		w.Header().Set("WWW-Authenticate", `Bearer realm="kioskfleet"`)
		apiError(w, http.StatusUnauthorized, "unauthorized", "missing or invalid bearer token")
		return
	}
	path, ok := strings.CutPrefix(r.URL.Path, api.Prefix+"/")
	if !ok {
		apiError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+r.URL.Path)
		return
	}
	parts := strings.Split(path, "/")
	switch {
	case r.Method == http.MethodGet && path == "sites":
		writeJSON(w, http.StatusOK, api.Sites{Sites: h.sites})
	case r.Method == http.MethodGet && path == "devices":
		h.list(w, r)
	case r.Method == http.MethodGet && parts[0] == "apps":
		h.catalog(w, r, parts[1:])
	case r.Method == http.MethodGet && path == "rollouts":
		writeJSON(w, http.StatusOK, api.Rollouts{Rollouts: []api.Rollout{{ID: "ro-1", State: api.RolloutRunning, Wave: 2,
			Spec: api.RolloutSpec{Kind: api.RolloutBundle, App: "tax-print", Version: "1.5.0", Soak: "30m"}, CreatedBy: "u_op", CreatedAt: h.Now,
			Waves: []api.WaveProgress{{Percent: 10, Counts: api.Counts{Devices: 2, Updated: 2}, StartedAt: h.Now, DoneAt: h.Now},
				{Percent: 100, Counts: api.Counts{Devices: 18, Updated: 9, Failed: 1, Assigned: 8, Offline: 3}, StartedAt: h.Now}},
			Totals: api.Counts{Devices: 20, Updated: 11, Failed: 1, Assigned: 8, Offline: 3}}}})
	case parts[0] == "devices" && len(parts) >= 2:
		id := parts[1]
		if !api.ValidDeviceID(id) {
			apiError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("invalid device id %q", id))
			return
		}
		i := h.find(id)
		if i < 0 {
			apiError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no device %q", id))
			return
		}
		switch rest := strings.Join(parts[2:], "/"); {
		case r.Method == http.MethodGet && rest == "":
			h.detail(w, i)
		case r.Method == http.MethodGet && rest == "presence":
			h.presence(w, i)
		case r.Method == http.MethodGet && rest == "log":
			h.log(w, i)
		case r.Method == http.MethodPost && rest == "commands":
			h.command(w, r, i)
		case r.Method == http.MethodPut && rest == "desired":
			h.setDesired(w, r, i)
		case r.Method == http.MethodPost && rest == "revoke":
			d := &h.devices[i]
			if !d.Revoked {
				d.Revoked, d.RevokedAt, d.Online = true, time.Now().UTC(), false
			}
			writeJSON(w, http.StatusOK, d)
		default:
			apiError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+r.URL.Path)
		}
	default:
		apiError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+r.URL.Path)
	}
}

func (h *Hub) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	site, region, status := q.Get("site"), q.Get("region"), q.Get("status")
	var fields []string
	if status != "" && status != "online" && status != "offline" {
		fields = append(fields, fmt.Sprintf("status: want online or offline, got %q", status))
	}
	if region != "" && (len(region) > 6 || strings.Trim(region, "0123456789") != "") {
		fields = append(fields, fmt.Sprintf("region: want 1 to 6 digits of a GB/T 2260 code, got %q", region))
	}
	if len(fields) > 0 {
		apiError(w, http.StatusBadRequest, "bad_request", "invalid query", fields...)
		return
	}
	out := []fleet.Device{}
	for _, d := range h.devices {
		if (site == "" || d.SiteID == site) && strings.HasPrefix(d.Region, region) &&
			(status == "" || (status == "online") == d.Online) {
			out = append(out, d)
		}
	}
	writeJSON(w, http.StatusOK, api.Devices{Devices: out})
}

// presence answers the presence history: the offline kiosk lost its network two hours ago after
// a clean restart the day before; the revoked one was cut; the others have none.
func (h *Hub) presence(w http.ResponseWriter, i int) {
	d := h.devices[i]
	out := api.Presence{DeviceID: d.ID, Online: d.Online, Replica: d.Replica, PresenceAt: d.PresenceAt, Sessions: []fleet.Session{}}
	session := func(ended time.Time, lasted time.Duration, reason fleet.DisconnectReason, detail string) fleet.Session {
		return fleet.Session{Replica: "hub-1", StartedAt: ended.Add(-lasted), EndedAt: ended, DurationMs: lasted.Milliseconds(), Reason: reason, Detail: detail}
	}
	switch d.ID {
	case Offline:
		out.Sessions = append(out.Sessions,
			session(d.PresenceAt, 20*time.Hour, fleet.DisconnectKeepAlive, "read tcp 10.0.0.1:8883->10.8.1.20:50122: i/o timeout"),
			session(d.PresenceAt.Add(-20*time.Hour-time.Minute), 72*time.Hour, fleet.DisconnectClean, ""))
	case Revoked:
		out.Sessions = append(out.Sessions, session(d.RevokedAt, time.Hour, fleet.DisconnectRevoked, "broker: session revoked"))
	}
	writeJSON(w, http.StatusOK, out)
}

// log answers the log tail: the paper-out kiosk streams until a minute from now, one of its
// lines carrying LeakedIDNumber as a faulty hub might pass it on; the others have none.
func (h *Hub) log(w http.ResponseWriter, i int) {
	d := h.devices[i]
	out := api.DeviceLog{DeviceID: d.ID, Lines: []api.LogLine{}}
	if d.ID == PaperOut {
		out.Active, out.Until, out.Tail, out.Next, out.Dropped = true, h.Now.Add(time.Minute), "c-tail", 2, 3
		out.Lines = append(out.Lines,
			api.LogLine{N: 1, At: h.Now.Add(-time.Second), Received: h.Now, Level: "INFO", Text: "log tail started command=c-tail for=5m0s"},
			api.LogLine{N: 2, At: h.Now, Received: h.Now, Level: "WARN", Text: "printer paper-out idNumber=" + LeakedIDNumber})
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Hub) detail(w http.ResponseWriter, i int) {
	d := h.devices[i]
	det := api.DeviceDetail{Device: d, Desired: h.desired[d.ID], Reported: h.reported[d.ID], Commands: h.commands[d.ID]}
	if det.Commands == nil {
		det.Commands = []fleet.Command{}
	}
	if des := det.Desired; des != nil {
		rep := det.Reported
		det.Drift = rep == nil || rep.Version != des.Version || rep.Error != ""
	}
	writeJSON(w, http.StatusOK, det)
}

// decode reads a request body strictly, as the hub does.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		apiError(w, http.StatusBadRequest, "bad_request", "invalid request: "+err.Error())
		return false
	}
	return true
}

func (h *Hub) command(w http.ResponseWriter, r *http.Request, i int) {
	var req api.CreateCommand
	if !decode(w, r, &req) {
		return
	}
	d := h.devices[i]
	var fields []string
	if req.Name == "" || len(req.Name) > 64 || strings.Trim(req.Name, "abcdefghijklmnopqrstuvwxyz0123456789._-") != "" || req.Name[0] < 'a' || req.Name[0] > 'z' {
		fields = append(fields, fmt.Sprintf("name: want 1..64 of [a-z0-9._-] starting with a letter, got %q", req.Name))
	}
	ttl := time.Hour
	if req.TTL != "" {
		t, err := time.ParseDuration(req.TTL)
		if err != nil || t < time.Second || t > 168*time.Hour {
			fields = append(fields, fmt.Sprintf("ttl: want a duration between 1s and 168h0m0s, got %q", req.TTL))
		}
		ttl = t
	}
	if d.Revoked {
		fields = append(fields, fmt.Sprintf("device: %s is revoked", d.ID))
	}
	if len(fields) > 0 {
		apiError(w, http.StatusBadRequest, "bad_request", "invalid request", fields...)
		return
	}
	now := time.Now().UTC()
	c := fleet.Command{ID: fmt.Sprintf("c-%016x", h.nextID), DeviceID: d.ID, Name: req.Name, Args: req.Args,
		State: api.CommandQueued, CreatedAt: now, ExpiresAt: now.Add(ttl), UpdatedAt: now}
	h.nextID++
	if d.Online {
		c.State, c.DeliveredAt = api.CommandDelivered, now
	}
	h.commands[d.ID] = append([]fleet.Command{c}, h.commands[d.ID]...)
	writeJSON(w, http.StatusAccepted, c)
}

func (h *Hub) setDesired(w http.ResponseWriter, r *http.Request, i int) {
	var req api.SetDesired
	if !decode(w, r, &req) {
		return
	}
	var m map[string]any
	if json.Unmarshal(req.Doc, &m) != nil || m == nil {
		apiError(w, http.StatusBadRequest, "bad_request", "invalid request", "doc: want a JSON object")
		return
	}
	id := h.devices[i].ID
	v := int64(1)
	if old := h.desired[id]; old != nil {
		v = old.Version + 1
	}
	st := &fleet.DocState{DeviceID: id, Version: v, Doc: req.Doc, UpdatedAt: time.Now().UTC()}
	h.desired[id] = st
	writeJSON(w, http.StatusOK, st)
}
