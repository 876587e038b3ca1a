package httpapi

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/alerts"
	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// AlertChanged is told about an alert a person acknowledged or resolved (alerts.Engine.Changed:
// live viewers and notifications).
type AlertChanged func(d store.Device, a store.Alert)

func (a *API) alertRoutes() {
	route(a, "GET /alerts", staff, http.StatusOK, a.listAlerts)
	route(a, "POST /alerts/{id}/ack", staff, http.StatusOK, a.ackAlert)
	route(a, "POST /alerts/{id}/resolve", staff, http.StatusOK, a.resolveAlert)
}

// listAlerts lists the alerts of the kiosks in the caller's scope, newest first: the unresolved
// ones, or all with ?all=1; ?device= one kiosk's.
func (a *API) listAlerts(r *http.Request, _ none) (api.Alerts, error) {
	q := r.URL.Query()
	f := store.AlertFilter{DeviceID: q.Get("device"), Unresolved: q.Get("all") != "1", Limit: 1000}
	if n, err := strconv.Atoi(q.Get("limit")); err == nil && n > 0 && n < f.Limit {
		f.Limit = n
	}
	regions, err := a.regionsInScope(r)
	if err != nil {
		return api.Alerts{}, err
	}
	as, err := a.cfg.Store.ListAlerts(r.Context(), f)
	if err != nil {
		return api.Alerts{}, err
	}
	now := a.cfg.Now()
	silences, err := a.cfg.Store.ListSilences(r.Context(), now)
	if err != nil {
		return api.Alerts{}, err
	}
	out := api.Alerts{Alerts: []api.Alert{}}
	for _, al := range as {
		if region, ok := regions[al.DeviceID]; ok {
			v := alerts.View(al, region)
			v.Silenced = al.State != store.AlertResolved &&
				slices.ContainsFunc(silences, func(s store.Silence) bool { return s.Matches(al.DeviceID, region, al.Rule, now) })
			out.Alerts = append(out.Alerts, v)
		}
	}
	return out, nil
}

func (a *API) ackAlert(r *http.Request, _ none) (api.Alert, error) {
	return a.moveAlert(r, a.cfg.Store.AckAlert)
}

func (a *API) resolveAlert(r *http.Request, _ none) (api.Alert, error) {
	return a.moveAlert(r, a.cfg.Store.ResolveAlert)
}

// moveAlert acknowledges or resolves an alert of a kiosk in the caller's scope, as the caller.
func (a *API) moveAlert(r *http.Request, move func(ctx context.Context, id int64, by string, at time.Time) (store.Alert, error)) (api.Alert, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return api.Alert{}, apiErr(http.StatusNotFound, "not_found", "no alert %q", r.PathValue("id"))
	}
	al, err := a.cfg.Store.GetAlert(r.Context(), id)
	if err != nil {
		return api.Alert{}, err
	}
	d, err := a.scopedDevice(r, al.DeviceID)
	if err != nil {
		return api.Alert{}, err
	}
	p := principal(r)
	by := p.Username
	if by == "" {
		by = p.Subject
	}
	if al, err = move(r.Context(), id, by, a.cfg.Now()); err != nil {
		return api.Alert{}, err
	}
	if a.cfg.AlertChanged != nil {
		a.cfg.AlertChanged(d, al)
	}
	return alerts.View(al, d.Region), nil
}
