package httpapi

import (
	"errors"
	"net/http"

	"github.com/kioskfleet/kioskfleet/hub/bulk"
	"github.com/kioskfleet/kioskfleet/hub/ratelimit"
	"github.com/kioskfleet/kioskfleet/pkg/api"
)

func (a *API) bulkRoutes() {
	route(a, "POST /bulk", staff, http.StatusAccepted, a.createBulk)
	route(a, "GET /bulk", staff, http.StatusOK, a.listBulk)
	route(a, "GET /bulk/{id}", staff, http.StatusOK, a.getBulk)
	route(a, "GET /bulk/{id}/devices", staff, http.StatusOK, a.bulkItems)
}

// createBulk answers a dry run with the count of the kiosks a filter selects in the caller's
// scope, or starts a bulk job on them (hub/bulk). The hub, not the page, decides which kiosks:
// the caller's region scope bounds the selection.
func (a *API) createBulk(r *http.Request, req api.BulkRequest) (api.BulkJob, error) {
	p := principal(r)
	who := bulk.Actor{Name: p.Username, Roles: p.Roles, Scope: p.Regions}
	if who.Name == "" {
		who.Name = p.Subject
	}
	if addr := ratelimit.ClientAddr(r, a.cfg.TrustedProxies); addr.IsValid() {
		who.Source = addr.String()
	}
	j, err := a.cfg.Bulk.Create(r.Context(), who, req)
	switch {
	case errors.Is(err, bulk.ErrCountChanged):
		return j, apiErr(http.StatusConflict, "count_changed", "%v", err)
	case errors.Is(err, bulk.ErrKeyReused):
		return j, apiErr(http.StatusConflict, "conflict", "%v", err)
	}
	return j, err
}

func (a *API) listBulk(r *http.Request, _ none) (api.BulkJobs, error) {
	js, err := a.cfg.Bulk.List(r.Context(), principal(r).Regions)
	return api.BulkJobs{Jobs: js}, err
}

func (a *API) getBulk(r *http.Request, _ none) (api.BulkJob, error) {
	return a.cfg.Bulk.Get(r.Context(), principal(r).Regions, r.PathValue("id"))
}

func (a *API) bulkItems(r *http.Request, _ none) (api.BulkItems, error) {
	items, err := a.cfg.Bulk.Items(r.Context(), principal(r).Regions, r.PathValue("id"))
	return api.BulkItems{Items: items}, err
}
