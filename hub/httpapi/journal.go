package httpapi

import (
	"cmp"
	"errors"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

func (a *API) journalRoutes() {
	route(a, "GET /devices/{id}/journal", staff, http.StatusOK, a.getJournal)
	route(a, "GET /security-events", staff, http.StatusOK, a.listSecurityEvents)
}

// getJournal shows how far the kiosk's transaction journal is verified (hub/journal), with its
// first 100 security events.
func (a *API) getJournal(r *http.Request, _ none) (api.Journal, error) {
	d, err := a.device(r)
	if err != nil {
		return api.Journal{}, err
	}
	out := api.Journal{DeviceID: d.ID, Intact: true}
	h, err := a.cfg.Store.JournalHead(r.Context(), d.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return api.Journal{}, err
	default:
		out = api.Journal{DeviceID: d.ID, Chain: h.Chain, Index: h.Index, Hash: h.Hash, Checkpoint: h.Checkpoint,
			Entries: h.Entries, Intact: h.Events == 0, UpdatedAt: h.UpdatedAt}
	}
	evs, err := a.cfg.Store.ListSecurityEvents(r.Context(), store.SecurityEventFilter{DeviceID: d.ID, Kind: "journal", Limit: 100})
	if err != nil {
		return api.Journal{}, err
	}
	out.Events = convert(evs, apiSecurityEvent)
	return out, nil
}

// listSecurityEvents lists security events of every source (store.SecurityEvents): ?device=,
// ?staff= (a username), ?kind= (a kind, or a family: "login"), ?since= (RFC 3339: still
// happening then), ?after= (an event ID), ?limit= (default 100, at most 1000); the oldest first,
// or the newest with ?order=newest. A caller with a region scope sees the events of its kiosks
// and its own, never those of no kiosk (a refused TLS handshake, another's login).
func (a *API) listSecurityEvents(r *http.Request, _ none) (api.SecurityEvents, error) {
	q := r.URL.Query()
	f := store.SecurityEventFilter{DeviceID: q.Get("device"), Staff: q.Get("staff"), Kind: q.Get("kind"), Limit: 100}
	var iv invalid
	iv.check(f.DeviceID == "" || wire.ValidDeviceID(f.DeviceID), "device", "%q is not a device id", f.DeviceID)
	iv.check(len(f.Staff) <= 128, "staff", "at most 128 bytes")
	iv.check(f.Kind == "" || securityKindRE.MatchString(f.Kind), "kind", "want a kind such as login.failed or a family such as login, got %q", f.Kind)
	if s := q.Get("after"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		iv.check(err == nil && n >= 0, "after", "want an event id, got %q", s)
		f.AfterID = n
	}
	if s := q.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		iv.check(err == nil, "since", "want an RFC 3339 time, got %q", s)
		f.Since = t
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		iv.check(err == nil && n >= 1 && n <= 1000, "limit", "want 1..1000, got %q", s)
		f.Limit = n
	}
	switch q.Get("order") {
	case "", "oldest":
	case "newest":
		f.Newest = true
	default:
		iv.check(false, "order", "want oldest or newest, got %q", q.Get("order"))
	}
	if err := iv.err(); err != nil {
		return api.SecurityEvents{}, err
	}
	p := principal(r)
	var scoped map[string]bool // the kiosks in the caller's scope, when it has one
	switch {
	case f.DeviceID != "":
		if _, err := a.scopedDevice(r, f.DeviceID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return api.SecurityEvents{}, err
		}
	case len(p.Regions) > 0:
		var err error
		if scoped, err = a.scopeIDs(r); err != nil {
			return api.SecurityEvents{}, err
		}
	}
	evs, err := a.cfg.Store.ListSecurityEvents(r.Context(), f)
	if err != nil {
		return api.SecurityEvents{}, err
	}
	out := api.SecurityEvents{Next: f.AfterID}
	if n := len(evs); n > 0 && !f.Newest {
		out.Next = evs[n-1].ID // a page of a scoped caller may hold fewer than limit: Next still moves on
	}
	if scoped != nil {
		me := cmp.Or(p.Username, p.Subject)
		evs = slices.DeleteFunc(evs, func(e store.SecurityEvent) bool { return !scoped[e.DeviceID] && (e.Staff == "" || e.Staff != me) })
	}
	out.Events = convert(evs, apiSecurityEvent)
	return out, nil
}

// securityKindRE is a security event's kind or family: lowercase words joined by dots.
var securityKindRE = regexp.MustCompile(`^[a-z0-9-]+(\.[a-z0-9-]+)*$`)

// scopeIDs returns the IDs of every kiosk in the caller's region scope, retired ones included.
func (a *API) scopeIDs(r *http.Request) (map[string]bool, error) {
	ids := map[string]bool{}
	for _, retired := range []bool{false, true} {
		ds, err := a.cfg.Store.ListDevices(r.Context(), store.DeviceFilter{Scope: principal(r).Regions, Retired: retired})
		if err != nil {
			return nil, err
		}
		for _, d := range ds {
			ids[d.ID] = true
		}
	}
	return ids, nil
}

func apiSecurityEvent(e store.SecurityEvent) api.SecurityEvent {
	return api.SecurityEvent{ID: e.ID, DeviceID: e.DeviceID, Kind: e.Kind, RecordID: e.RecordID, Index: e.Index, Detail: e.Detail, At: e.At,
		Staff: e.Staff, Source: e.Source, Count: e.Count, Last: e.Last}
}
