// Package httpapi serves the hub's JSON HTTP API under /api/v1 (documented in docs/api.md): sites,
// enrollment, devices, commands, desired and reported state, records and health. Every endpoint but
// enrollment (authorised by its one-time token) requires a bearer token with a staff role.
package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/ca"
	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// Signer issues device certificates from CSRs.
type Signer interface {
	SignCSR(csrPEM []byte, deviceID string, validity time.Duration) (ca.Issued, error)
	CertPEM() []byte
}

// Sessions is the broker's view of live device sessions.
type Sessions interface {
	Disconnect(deviceID string)
	Connected(deviceID string) bool
}

// Dispatcher pushes commands and desired state to connected devices.
type Dispatcher interface {
	SendPending(ctx context.Context, deviceID string)
	PushDesired(ctx context.Context, deviceID string)
}

// Principal is an authenticated caller.
type Principal struct {
	Subject string
	Roles   []string
}

// Has reports whether p has any of roles.
func (p Principal) Has(roles ...string) bool {
	for _, r := range p.Roles {
		for _, want := range roles {
			if r == want {
				return true
			}
		}
	}
	return false
}

// Authenticator turns a request's credentials into a Principal.
type Authenticator interface {
	Authenticate(r *http.Request) (Principal, error)
}

// ErrUnauthenticated is returned by authenticators for missing or invalid credentials.
var ErrUnauthenticated = errors.New("httpapi: missing or invalid credentials")

// BootstrapToken authenticates the admin token printed at the hub's first start.
type BootstrapToken struct{ Hash [32]byte }

// NewBootstrapToken returns an authenticator for secret.
func NewBootstrapToken(secret string) BootstrapToken {
	return BootstrapToken{Hash: sha256.Sum256([]byte(secret))}
}

// Authenticate implements Authenticator.
func (b BootstrapToken) Authenticate(r *http.Request) (Principal, error) {
	tok, ok := bearer(r)
	if !ok {
		return Principal{}, ErrUnauthenticated
	}
	h := sha256.Sum256([]byte(tok))
	if subtle.ConstantTimeCompare(h[:], b.Hash[:]) != 1 {
		return Principal{}, ErrUnauthenticated
	}
	return Principal{Subject: "bootstrap-admin", Roles: []string{"admin"}}, nil
}

// AnyOf tries authenticators in order and returns the first success.
type AnyOf []Authenticator

// Authenticate implements Authenticator.
func (a AnyOf) Authenticate(r *http.Request) (Principal, error) {
	for _, au := range a {
		if p, err := au.Authenticate(r); err == nil {
			return p, nil
		}
	}
	return Principal{}, ErrUnauthenticated
}

// bearer returns the token of an "Authorization: Bearer" header. RFC 9110 §11.1: the scheme is
// case-insensitive.
func bearer(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	tok = strings.TrimSpace(tok)
	return tok, ok && strings.EqualFold(scheme, "Bearer") && tok != ""
}

// Store is the storage the API serves: the domains it has resources for.
type Store interface {
	store.Devices
	store.Commands
	store.State
	store.Records
	Ping(ctx context.Context) error
}

// Config configures the API.
type Config struct {
	Store    Store
	CA       Signer
	Sessions Sessions
	Dispatch Dispatcher
	Auth     Authenticator
	Log      *slog.Logger
	MQTTAddr string        // advertised to enrolling agents
	CertTTL  time.Duration // device certificate validity (default 365 days)
	Version  string
	Now      func() time.Time
}

// API is the HTTP API handler.
type API struct {
	cfg Config
	mux *http.ServeMux
}

// New returns the API handler.
func New(cfg Config) *API {
	if cfg.CertTTL <= 0 {
		cfg.CertTTL = 365 * 24 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	a := &API{cfg: cfg, mux: http.NewServeMux()}
	staff := []string{"admin", "fieldops"}
	p := api.Prefix
	a.handle("GET "+p+"/health", staff, a.health)
	a.handle("GET "+p+"/sites", staff, a.listSites)
	a.handle("POST "+p+"/sites", []string{"admin"}, a.createSite)
	a.handle("POST "+p+"/enrollment-tokens", staff, a.createToken)
	a.mux.HandleFunc("POST "+p+"/enroll", a.wrap(a.enroll))
	a.handle("GET "+p+"/devices", staff, a.listDevices)
	a.handle("GET "+p+"/devices/{id}", staff, a.getDevice)
	a.handle("POST "+p+"/devices/{id}/revoke", staff, a.revoke)
	a.handle("POST "+p+"/devices/{id}/commands", staff, a.createCommand)
	a.handle("GET "+p+"/devices/{id}/commands", staff, a.listCommands)
	a.handle("GET "+p+"/commands/{id}", staff, a.getCommand)
	a.handle("PUT "+p+"/devices/{id}/desired", staff, a.setDesired)
	a.handle("GET "+p+"/devices/{id}/state", staff, a.getState)
	a.handle("GET "+p+"/devices/{id}/records", staff, a.listRecords)
	a.mux.HandleFunc(p+"/", func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, a.cfg.Log, apiErr(http.StatusNotFound, "not_found", "no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	return a
}

func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

type handlerFunc func(w http.ResponseWriter, r *http.Request) (any, int, error)

func (a *API) wrap(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		out, status, err := h(w, r)
		if err != nil && r.Context().Err() != nil {
			// The client went away (or the server is shutting down): nobody reads an answer.
			a.cfg.Log.Debug("api request cancelled", "method", r.Method, "path", r.URL.Path, "err", err)
			return
		}
		if err != nil {
			writeErr(w, a.cfg.Log, err)
			return
		}
		writeJSON(w, status, out)
	}
}

func (a *API) handle(pattern string, roles []string, h handlerFunc) {
	a.mux.HandleFunc(pattern, a.wrap(func(w http.ResponseWriter, r *http.Request) (any, int, error) {
		p, err := a.cfg.Auth.Authenticate(r)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="kioskfleet"`)
			return nil, 0, apiErr(http.StatusUnauthorized, "unauthorized", "a valid bearer token is required")
		}
		if !p.Has(roles...) {
			return nil, 0, apiErr(http.StatusForbidden, "forbidden", "role %s required", strings.Join(roles, " or "))
		}
		return h(w, r)
	}))
}

func apiErr(status int, code, format string, a ...any) *api.Error {
	return &api.Error{Status: status, Code: code, Message: fmt.Sprintf(format, a...)}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, log *slog.Logger, err error) {
	var ae *api.Error
	switch {
	case errors.Is(err, context.Canceled):
		ae = apiErr(http.StatusServiceUnavailable, "canceled", "request canceled") // the client has gone
	case errors.As(err, &ae):
	case errors.Is(err, store.ErrNotFound):
		ae = apiErr(http.StatusNotFound, "not_found", "%v", err)
	case errors.Is(err, store.ErrExists):
		ae = apiErr(http.StatusConflict, "conflict", "%v", err)
	case errors.Is(err, store.ErrInvalid):
		ae = apiErr(http.StatusBadRequest, "bad_request", "%v", err)
	default:
		log.Error("api internal error", "err", err)
		ae = apiErr(http.StatusInternalServerError, "internal", "internal error")
	}
	writeJSON(w, ae.Status, api.ErrorBody{Error: *ae})
}

// maxBody is the largest request body accepted.
const maxBody = 1 << 20

// decode reads a strict JSON body: one object, unknown fields and trailing data refused, 1 MiB at
// most.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	d := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	d.DisallowUnknownFields()
	err := d.Decode(v)
	var mb *http.MaxBytesError
	if err == nil {
		if _, terr := d.Token(); errors.As(terr, &mb) {
			err = terr
		} else if terr != io.EOF {
			err = errors.New("trailing data after the JSON object")
		}
	}
	switch {
	case err == nil:
		return nil
	case errors.As(err, &mb):
		return apiErr(http.StatusBadRequest, "bad_request", "request body over %d bytes", mb.Limit)
	case errors.Is(err, io.EOF):
		return apiErr(http.StatusBadRequest, "bad_request", "invalid JSON body: empty")
	}
	return apiErr(http.StatusBadRequest, "bad_request", "invalid JSON body: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// invalid collects field problems so a request is answered with all of them at once.
type invalid []string

func (iv *invalid) check(ok bool, field, format string, a ...any) {
	if !ok {
		*iv = append(*iv, field+": "+fmt.Sprintf(format, a...))
	}
}

func (iv invalid) err() error {
	if len(iv) == 0 {
		return nil
	}
	return &api.Error{Status: http.StatusBadRequest, Code: "bad_request", Message: "invalid request: " + strings.Join(iv, "; "), Fields: iv}
}

func parseTTL(s string, def, maxTTL time.Duration, iv *invalid, field string) time.Duration {
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	iv.check(err == nil && d >= time.Second && d <= maxTTL, field, "want a duration between 1s and %s, got %q", maxTTL, s)
	return d
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand never fails on Linux (Go 1.24+ panics rather than return an error)
	return hex.EncodeToString(b)
}

func (a *API) health(w http.ResponseWriter, r *http.Request) (any, int, error) {
	h := api.Health{Status: "ok", Version: a.cfg.Version, Store: "ok", Broker: a.cfg.MQTTAddr}
	if err := a.cfg.Store.Ping(r.Context()); err != nil {
		a.cfg.Log.Warn("health: store does not answer", "err", err)
		h.Status, h.Store = "degraded", err.Error()
		return h, http.StatusOK, nil
	}
	devs, err := a.cfg.Store.ListDevices(r.Context(), store.DeviceFilter{})
	if err != nil {
		return nil, 0, err
	}
	h.Devices = len(devs)
	for _, d := range devs {
		if a.cfg.Sessions.Connected(d.ID) {
			h.ConnectedCount++
		}
	}
	return h, http.StatusOK, nil
}

func validRegionPrefix(s string) bool {
	return len(s) <= 6 && strings.Trim(s, "0123456789") == ""
}

func validRegion(s string) bool {
	if len(s) != 6 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != "000000"
}

func (a *API) createSite(w http.ResponseWriter, r *http.Request) (any, int, error) {
	var s fleet.Site
	if err := decode(w, r, &s); err != nil {
		return nil, 0, err
	}
	var iv invalid
	iv.check(wire.ValidDeviceID(s.ID), "id", "3-64 characters of a-z, 0-9 and '-'")
	iv.check(strings.TrimSpace(s.Name) != "" && len(s.Name) <= 200, "name", "required, at most 200 bytes")
	iv.check(validRegion(s.Region), "region", "a six-digit GB/T 2260 administrative division code, got %q", s.Region)
	if err := iv.err(); err != nil {
		return nil, 0, err
	}
	if err := a.cfg.Store.CreateSite(r.Context(), store.Site(s)); err != nil {
		return nil, 0, err
	}
	return s, http.StatusCreated, nil
}

func (a *API) listSites(w http.ResponseWriter, r *http.Request) (any, int, error) {
	s, err := a.cfg.Store.ListSites(r.Context())
	return api.Sites{Sites: convert(s, apiSite)}, http.StatusOK, err
}

func (a *API) createToken(w http.ResponseWriter, r *http.Request) (any, int, error) {
	var req api.CreateToken
	if err := decode(w, r, &req); err != nil {
		return nil, 0, err
	}
	var iv invalid
	iv.check(req.SiteID != "", "siteId", "required")
	ttl := parseTTL(req.TTL, 24*time.Hour, 30*24*time.Hour, &iv, "ttl")
	if err := iv.err(); err != nil {
		return nil, 0, err
	}
	if _, err := a.cfg.Store.GetSite(r.Context(), req.SiteID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			iv.check(false, "siteId", "no site %q", req.SiteID)
			return nil, 0, iv.err()
		}
		return nil, 0, err
	}
	secret := "kfe_" + randomHex(20)
	h := sha256.Sum256([]byte(secret))
	now := a.cfg.Now()
	t := store.EnrollmentToken{ID: "tok-" + randomHex(6), Hash: h[:], SiteID: req.SiteID, CreatedAt: now, ExpiresAt: now.Add(ttl)}
	if err := a.cfg.Store.CreateEnrollmentToken(r.Context(), t); err != nil {
		return nil, 0, err
	}
	return api.Token{ID: t.ID, Secret: secret, SiteID: t.SiteID, ExpiresAt: t.ExpiresAt}, http.StatusCreated, nil
}

func (a *API) enroll(w http.ResponseWriter, r *http.Request) (any, int, error) {
	var req api.Enroll
	if err := decode(w, r, &req); err != nil {
		return nil, 0, err
	}
	var iv invalid
	iv.check(req.Token != "", "token", "required")
	iv.check(strings.Contains(req.CSR, "CERTIFICATE REQUEST"), "csr", "a PEM certificate request is required")
	iv.check(len(req.Model) <= 100, "model", "at most 100 bytes")
	if err := iv.err(); err != nil {
		return nil, 0, err
	}
	h := sha256.Sum256([]byte(req.Token))
	id := "k-" + randomHex(8)
	issued, err := a.cfg.CA.SignCSR([]byte(req.CSR), id, a.cfg.CertTTL)
	if err != nil {
		return nil, 0, apiErr(http.StatusBadRequest, "bad_request", "csr: %v", err)
	}
	now := a.cfg.Now()
	d, err := a.cfg.Store.EnrollDevice(r.Context(), h[:], store.Device{
		ID: id, Model: req.Model, CertSerial: issued.Serial, CertExpiry: issued.NotAfter, CertPEM: issued.CertPEM, EnrolledAt: now,
	}, now)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, 0, apiErr(http.StatusUnauthorized, "unauthorized", "unknown enrollment token")
	case errors.Is(err, store.ErrTokenUsed):
		return nil, 0, apiErr(http.StatusGone, "gone", "enrollment token already used")
	case errors.Is(err, store.ErrTokenExpired):
		return nil, 0, apiErr(http.StatusGone, "gone", "enrollment token expired")
	case err != nil:
		return nil, 0, err
	}
	a.cfg.Log.Info("device enrolled", "device", d.ID, "site", d.SiteID, "serial", issued.Serial)
	return api.Enrolled{DeviceID: d.ID, Certificate: string(issued.CertPEM), CACertificate: string(a.cfg.CA.CertPEM()),
		MQTTAddr: a.cfg.MQTTAddr, NotAfter: issued.NotAfter}, http.StatusCreated, nil
}

func (a *API) listDevices(w http.ResponseWriter, r *http.Request) (any, int, error) {
	q := r.URL.Query()
	f := store.DeviceFilter{SiteID: q.Get("site"), Region: q.Get("region")}
	var iv invalid
	switch st := q.Get("status"); st {
	case "":
	case "online", "offline":
		on := st == "online"
		f.Online = &on
	default:
		iv.check(false, "status", "want online or offline, got %q", st)
	}
	iv.check(f.Region == "" || validRegionPrefix(f.Region), "region", "want 1..6 digits of a GB/T 2260 code, got %q", f.Region)
	if err := iv.err(); err != nil {
		return nil, 0, err
	}
	ds, err := a.cfg.Store.ListDevices(r.Context(), f)
	return api.Devices{Devices: convert(ds, apiDevice)}, http.StatusOK, err
}

func (a *API) device(r *http.Request) (store.Device, error) {
	id := r.PathValue("id")
	if !wire.ValidDeviceID(id) {
		return store.Device{}, apiErr(http.StatusBadRequest, "bad_request", "id: %q is not a device id", id)
	}
	return a.cfg.Store.GetDevice(r.Context(), id)
}

func (a *API) state(ctx context.Context, id string) (api.State, error) {
	var s api.State
	if d, err := a.cfg.Store.GetDesired(ctx, id); err == nil {
		s.Desired = apiDocState(d)
	} else if !errors.Is(err, store.ErrNotFound) {
		return s, err
	}
	if d, err := a.cfg.Store.GetReported(ctx, id); err == nil {
		s.Reported = apiDocState(d)
	} else if !errors.Is(err, store.ErrNotFound) {
		return s, err
	}
	if s.Desired != nil {
		s.Drift = s.Reported == nil || s.Reported.Version != s.Desired.Version || s.Reported.Error != ""
	}
	return s, nil
}

func (a *API) getDevice(w http.ResponseWriter, r *http.Request) (any, int, error) {
	d, err := a.device(r)
	if err != nil {
		return nil, 0, err
	}
	s, err := a.state(r.Context(), d.ID)
	if err != nil {
		return nil, 0, err
	}
	cmds, err := a.cfg.Store.ListCommands(r.Context(), d.ID, 20)
	return api.DeviceDetail{Device: apiDevice(d), Desired: s.Desired, Reported: s.Reported, Drift: s.Drift,
		Commands: convert(cmds, apiCommand)}, http.StatusOK, err
}

func (a *API) revoke(w http.ResponseWriter, r *http.Request) (any, int, error) {
	d, err := a.device(r)
	if err != nil {
		return nil, 0, err
	}
	if err := a.cfg.Store.RevokeDevice(r.Context(), d.ID, a.cfg.Now()); err != nil {
		return nil, 0, err
	}
	a.cfg.Sessions.Disconnect(d.ID)
	a.cfg.Log.Info("device revoked", "device", d.ID)
	d, err = a.cfg.Store.GetDevice(r.Context(), d.ID)
	return apiDevice(d), http.StatusOK, err
}

func (a *API) createCommand(w http.ResponseWriter, r *http.Request) (any, int, error) {
	d, err := a.device(r)
	if err != nil {
		return nil, 0, err
	}
	var req api.CreateCommand
	if err := decode(w, r, &req); err != nil {
		return nil, 0, err
	}
	var iv invalid
	iv.check(wire.ValidKind(req.Name), "name", "1-64 characters of a-z, 0-9, '.', '_', '-', starting with a letter")
	iv.check(len(req.Args) == 0 || json.Valid(req.Args), "args", "must be JSON")
	iv.check(len(req.Args) <= 32<<10, "args", "at most 32 KiB")
	ttl := parseTTL(req.TTL, time.Hour, 7*24*time.Hour, &iv, "ttl")
	iv.check(!d.Revoked, "device", "device %s is revoked", d.ID)
	if err := iv.err(); err != nil {
		return nil, 0, err
	}
	now := a.cfg.Now()
	c := store.Command{ID: "c-" + randomHex(10), DeviceID: d.ID, Name: req.Name, Args: req.Args, State: wire.CmdQueued,
		CreatedAt: now, ExpiresAt: now.Add(ttl), UpdatedAt: now}
	if err := a.cfg.Store.CreateCommand(r.Context(), c); err != nil {
		return nil, 0, err
	}
	a.cfg.Dispatch.SendPending(r.Context(), d.ID)
	if c2, err := a.cfg.Store.GetCommand(r.Context(), c.ID); err == nil {
		c = c2
	}
	return apiCommand(c), http.StatusAccepted, nil
}

func (a *API) listCommands(w http.ResponseWriter, r *http.Request) (any, int, error) {
	d, err := a.device(r)
	if err != nil {
		return nil, 0, err
	}
	limit := 50
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		var iv invalid
		iv.check(err == nil && n >= 1 && n <= 1000, "limit", "want 1..1000, got %q", s)
		if err := iv.err(); err != nil {
			return nil, 0, err
		}
		limit = n
	}
	cs, err := a.cfg.Store.ListCommands(r.Context(), d.ID, limit)
	return api.Commands{Commands: convert(cs, apiCommand)}, http.StatusOK, err
}

// getCommand returns a command; with ?wait=D it holds the request until the command is terminal
// or D (at most 60 s) has passed.
func (a *API) getCommand(w http.ResponseWriter, r *http.Request) (any, int, error) {
	id := r.PathValue("id")
	var wait time.Duration
	if s := r.URL.Query().Get("wait"); s != "" {
		d, err := time.ParseDuration(s)
		var iv invalid
		iv.check(err == nil && d >= 0 && d <= 60*time.Second, "wait", "want a duration from 0s to 60s, got %q", s)
		if err := iv.err(); err != nil {
			return nil, 0, err
		}
		wait = d
	}
	deadline := time.Now().Add(wait)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		c, err := a.cfg.Store.GetCommand(r.Context(), id)
		if err != nil || c.State.Terminal() || !time.Now().Before(deadline) {
			return apiCommand(c), http.StatusOK, err
		}
		select {
		case <-r.Context().Done():
			return nil, 0, r.Context().Err()
		case <-tick.C:
		}
	}
}

func (a *API) setDesired(w http.ResponseWriter, r *http.Request) (any, int, error) {
	d, err := a.device(r)
	if err != nil {
		return nil, 0, err
	}
	var req api.SetDesired
	if err := decode(w, r, &req); err != nil {
		return nil, 0, err
	}
	var obj map[string]json.RawMessage
	var iv invalid
	iv.check(json.Unmarshal(req.Doc, &obj) == nil && obj != nil, "doc", "must be a JSON object")
	iv.check(len(req.Doc) <= 32<<10, "doc", "at most 32 KiB")
	if err := iv.err(); err != nil {
		return nil, 0, err
	}
	s, err := a.cfg.Store.SetDesired(r.Context(), d.ID, req.Doc, a.cfg.Now())
	if err != nil {
		return nil, 0, err
	}
	a.cfg.Dispatch.PushDesired(r.Context(), d.ID)
	return apiDocState(s), http.StatusOK, nil
}

func (a *API) getState(w http.ResponseWriter, r *http.Request) (any, int, error) {
	d, err := a.device(r)
	if err != nil {
		return nil, 0, err
	}
	s, err := a.state(r.Context(), d.ID)
	return s, http.StatusOK, err
}

func (a *API) listRecords(w http.ResponseWriter, r *http.Request) (any, int, error) {
	d, err := a.device(r)
	if err != nil {
		return nil, 0, err
	}
	q := r.URL.Query()
	f := store.RecordFilter{DeviceID: d.ID, Kind: q.Get("kind"), Limit: 100}
	var iv invalid
	if s := q.Get("after"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		iv.check(err == nil && n >= 0, "after", "want a record id, got %q", s)
		f.AfterID = n
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		iv.check(err == nil && n >= 1 && n <= 1000, "limit", "want 1..1000, got %q", s)
		f.Limit = n
	}
	if err := iv.err(); err != nil {
		return nil, 0, err
	}
	recs, err := a.cfg.Store.ListRecords(r.Context(), f)
	if errors.Is(err, store.ErrInvalid) && f.AfterID > 0 {
		iv.check(false, "after", "%d is not a record of device %s", f.AfterID, d.ID)
		return nil, 0, iv.err()
	}
	if err != nil {
		return nil, 0, err
	}
	out := api.Records{Records: convert(recs, apiRecord), Next: f.AfterID}
	if n := len(recs); n > 0 {
		out.Next = recs[n-1].ID
	}
	return out, http.StatusOK, nil
}

// The API shows the store's records as pkg/fleet's types.

func apiSite(s store.Site) fleet.Site          { return fleet.Site(s) }
func apiCommand(c store.Command) fleet.Command { return fleet.Command(c) }
func apiRecord(r store.Record) fleet.Record    { return fleet.Record(r) }

func apiDocState(d store.DocState) *fleet.DocState {
	out := fleet.DocState(d)
	return &out
}

func apiDevice(d store.Device) fleet.Device {
	return fleet.Device{ID: d.ID, SiteID: d.SiteID, Region: d.Region, Model: d.Model, CertSerial: d.CertSerial,
		CertExpiry: d.CertExpiry, EnrolledAt: d.EnrolledAt, Revoked: d.Revoked, RevokedAt: d.RevokedAt,
		Online: d.Online, PresenceAt: d.PresenceAt, LastSeen: d.LastSeen, AgentVersion: d.AgentVersion,
		Health: d.Health, HealthAt: d.HealthAt, Peripherals: d.Peripherals, PeriphAt: d.PeriphAt}
}

// convert converts a list, never to nil: an empty list is shown as [].
func convert[S, T any](in []S, f func(S) T) []T {
	out := make([]T, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}
