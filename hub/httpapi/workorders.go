package httpapi

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kioskfleet/kioskfleet/hub/alerts"
	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

func (a *API) workOrderRoutes() {
	route(a, "POST /silences", staff, http.StatusCreated, a.createSilence)
	route(a, "GET /silences", staff, http.StatusOK, a.listSilences)
	route(a, "POST /silences/{id}/end", staff, http.StatusOK, a.endSilence)
	route(a, "POST /alerts/{id}/workorders", staff, http.StatusCreated, a.createWorkOrder)
	route(a, "GET /workorders", staff, http.StatusOK, a.listWorkOrders)
	route(a, "POST /workorders/{id}/close", staff, http.StatusOK, a.closeWorkOrder)
}

// Limits of silences and work orders.
const (
	maxSilence = 7 * 24 * time.Hour
	maxText    = 1000 // a reason, a note, what to bring (bytes)
)

// who is the caller as the audit log and the alerts name them.
func who(r *http.Request) string {
	p := principal(r)
	if p.Username != "" {
		return p.Username
	}
	return p.Subject
}

func textOK(s string) bool { return len(s) <= maxText && utf8.ValidString(s) }

// createSilence silences the alerts (of one rule, or all) of a kiosk, or of every kiosk under a
// region, for a while, if the kiosk or the whole region is in the caller's scope.
func (a *API) createSilence(r *http.Request, req api.CreateSilence) (api.Silence, error) {
	var iv invalid
	switch {
	case req.DeviceID != "" && req.Region != "":
		iv.check(false, "region", "a silence is of a kiosk (deviceId) or of a region, not both")
	case req.Region != "":
		iv.check(fleet.ValidScopePrefix(req.Region), "region", "want a GB/T 2260 prefix of 2, 4 or 6 digits, got %q", req.Region)
	default:
		iv.check(wire.ValidDeviceID(req.DeviceID), "deviceId", "%q is not a device id", req.DeviceID)
	}
	switch req.Rule {
	case "", alerts.RuleOffline, alerts.RulePeripheralFault, alerts.RulePeripheralDegraded:
	default:
		iv.check(false, "rule", "want offline, peripheral-fault, peripheral-degraded or none (every rule), got %q", req.Rule)
	}
	d, err := time.ParseDuration(req.For)
	iv.check(err == nil && d >= time.Minute && d <= maxSilence, "for", "want a duration from 1m to %s, got %q", maxSilence, req.For)
	iv.check(textOK(req.Reason), "reason", "at most %d bytes of UTF-8", maxText)
	if err := iv.err(); err != nil {
		return api.Silence{}, err
	}
	if err := a.silenceInScope(r, store.Silence{DeviceID: req.DeviceID, Region: req.Region}); err != nil {
		return api.Silence{}, err
	}
	now := a.cfg.Now()
	s, err := a.cfg.Store.CreateSilence(r.Context(), store.Silence{DeviceID: req.DeviceID, Region: req.Region, Rule: req.Rule, Reason: req.Reason,
		CreatedBy: who(r), StartsAt: now, EndsAt: now.Add(d)})
	return api.Silence(s), err
}

// silenceInScope refuses a silence of a kiosk outside the caller's scope, or of a region not
// wholly inside it.
func (a *API) silenceInScope(r *http.Request, s store.Silence) error {
	if s.Region == "" {
		_, err := a.scopedDevice(r, s.DeviceID)
		return err
	}
	if !principal(r).InScope(s.Region) {
		return outOfScope("region", s.Region)
	}
	return nil
}

// listSilences lists the silences active now on the kiosks in the caller's scope: of its kiosks,
// and of the regions that overlap it.
func (a *API) listSilences(r *http.Request, _ none) (api.Silences, error) {
	ss, err := a.cfg.Store.ListSilences(r.Context(), a.cfg.Now())
	if err != nil {
		return api.Silences{}, err
	}
	regions, err := a.regionsInScope(r)
	if err != nil {
		return api.Silences{}, err
	}
	out := api.Silences{Silences: []api.Silence{}}
	scope := principal(r).Regions
	for _, s := range ss {
		_, ours := regions[s.DeviceID]
		if s.Region != "" {
			ours = fleet.InScope(s.Region, scope) || slices.ContainsFunc(scope, func(p string) bool { return strings.HasPrefix(p, s.Region) })
		}
		if ours {
			out.Silences = append(out.Silences, api.Silence(s))
		}
	}
	return out, nil
}

// endSilence ends a silence of a kiosk in the caller's scope now.
func (a *API) endSilence(r *http.Request, _ none) (api.Silence, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return api.Silence{}, apiErr(http.StatusNotFound, "not_found", "no silence %q", r.PathValue("id"))
	}
	ss, err := a.cfg.Store.ListSilences(r.Context(), time.Time{})
	if err != nil {
		return api.Silence{}, err
	}
	i := slices.IndexFunc(ss, func(s store.Silence) bool { return s.ID == id })
	if i < 0 {
		return api.Silence{}, apiErr(http.StatusNotFound, "not_found", "no silence %d", id)
	}
	if err := a.silenceInScope(r, ss[i]); err != nil {
		return api.Silence{}, err
	}
	s, err := a.cfg.Store.EndSilence(r.Context(), id, who(r), a.cfg.Now())
	return api.Silence(s), err
}

// regionsInScope returns the regions of the kiosks (in service or retired) in the caller's scope,
// by kiosk.
func (a *API) regionsInScope(r *http.Request) (map[string]string, error) {
	regions := map[string]string{}
	for _, retired := range []bool{false, true} {
		ds, err := a.cfg.Store.ListDevices(r.Context(), store.DeviceFilter{Scope: principal(r).Regions, Retired: retired})
		if err != nil {
			return nil, err
		}
		for _, d := range ds {
			regions[d.ID] = d.Region
		}
	}
	return regions, nil
}

// createWorkOrder opens a work order for an unresolved alert of a kiosk in the caller's scope:
// who goes, what to bring.
func (a *API) createWorkOrder(r *http.Request, req api.CreateWorkOrder) (api.WorkOrder, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return api.WorkOrder{}, apiErr(http.StatusNotFound, "not_found", "no alert %q", r.PathValue("id"))
	}
	var iv invalid
	req.Assignee = strings.TrimSpace(req.Assignee)
	iv.check(req.Assignee != "" && len(req.Assignee) <= 128 && utf8.ValidString(req.Assignee), "assignee", "1 to 128 bytes of UTF-8")
	iv.check(textOK(req.Bring), "bring", "at most %d bytes of UTF-8", maxText)
	iv.check(textOK(req.Note), "note", "at most %d bytes of UTF-8", maxText)
	if err := iv.err(); err != nil {
		return api.WorkOrder{}, err
	}
	al, err := a.cfg.Store.GetAlert(r.Context(), id)
	if err != nil {
		return api.WorkOrder{}, err
	}
	d, err := a.scopedDevice(r, al.DeviceID)
	if err != nil {
		return api.WorkOrder{}, err
	}
	if al.State == store.AlertResolved {
		return api.WorkOrder{}, apiErr(http.StatusConflict, "conflict", "alert %d is resolved", id)
	}
	w, err := a.cfg.Store.CreateWorkOrder(r.Context(), store.WorkOrder{AlertID: id, Assignee: req.Assignee, Bring: req.Bring, Note: req.Note,
		CreatedBy: who(r), CreatedAt: a.cfg.Now()})
	return workOrderView(w, d.Region), err
}

// listWorkOrders lists the work orders of the kiosks in the caller's scope, newest first: the
// open ones, or all with ?all=1; ?assignee= one person's.
func (a *API) listWorkOrders(r *http.Request, _ none) (api.WorkOrders, error) {
	q := r.URL.Query()
	ws, err := a.cfg.Store.ListWorkOrders(r.Context(), store.WorkOrderFilter{Open: q.Get("all") != "1", Assignee: q.Get("assignee")})
	if err != nil {
		return api.WorkOrders{}, err
	}
	regions, err := a.regionsInScope(r)
	if err != nil {
		return api.WorkOrders{}, err
	}
	out := api.WorkOrders{WorkOrders: []api.WorkOrder{}}
	for _, w := range ws {
		if region, ok := regions[w.DeviceID]; ok {
			out.WorkOrders = append(out.WorkOrders, workOrderView(w, region))
		}
	}
	return out, nil
}

// closeWorkOrder closes a work order of a kiosk in the caller's scope, as the caller.
func (a *API) closeWorkOrder(r *http.Request, req api.CloseWorkOrder) (api.WorkOrder, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return api.WorkOrder{}, apiErr(http.StatusNotFound, "not_found", "no work order %q", r.PathValue("id"))
	}
	var iv invalid
	iv.check(textOK(req.Note), "note", "at most %d bytes of UTF-8", maxText)
	if err := iv.err(); err != nil {
		return api.WorkOrder{}, err
	}
	w, err := a.cfg.Store.GetWorkOrder(r.Context(), id)
	if err != nil {
		return api.WorkOrder{}, err
	}
	d, err := a.scopedDevice(r, w.DeviceID)
	if err != nil {
		return api.WorkOrder{}, err
	}
	w, err = a.cfg.Store.CloseWorkOrder(r.Context(), id, who(r), req.Note, a.cfg.Now())
	return workOrderView(w, d.Region), err
}

func workOrderView(w store.WorkOrder, region string) api.WorkOrder {
	state := "closed"
	if w.Open {
		state = "open"
	}
	return api.WorkOrder{ID: w.ID, AlertID: w.AlertID, DeviceID: w.DeviceID, Region: region, Assignee: w.Assignee, Bring: w.Bring,
		Note: w.Note, State: state, CreatedBy: w.CreatedBy, CreatedAt: w.CreatedAt, ClosedBy: w.ClosedBy, ClosedAt: w.ClosedAt, Closing: w.Closing}
}
