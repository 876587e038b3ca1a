package httpapi

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"

	"github.com/kioskfleet/kioskfleet/hub/catalog"
	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// catalogStaff may call the catalog's endpoints; hub/catalog decides what each may do there.
var catalogStaff = []string{"admin", catalog.RoleDeveloper, catalog.RoleReviewer, catalog.RoleOperator}

// kioskOrStaff may read a kiosk's catalog: staff, each in its region scope, and the kiosk itself.
var kioskOrStaff = append(slices.Clip(staff), RoleKiosk)

func (a *API) catalogRoutes() {
	route(a, "GET /departments", catalogStaff, http.StatusOK, a.listDepartments)
	route(a, "POST /departments", admins, http.StatusCreated, a.createDepartment)
	route(a, "GET /apps", catalogStaff, http.StatusOK, a.listApps)
	route(a, "POST /apps", catalogStaff, http.StatusCreated, a.createApp)
	route(a, "GET /apps/{id}", catalogStaff, http.StatusOK, a.getApp)
	route(a, "GET /apps/{id}/audit", catalogStaff, http.StatusOK, a.appAudit)
	route(a, "POST /apps/{id}/versions", catalogStaff, http.StatusCreated, a.createVersion)
	route(a, "GET /apps/{id}/versions/{version}", catalogStaff, http.StatusOK, a.getVersion)
	route(a, "PUT /apps/{id}/versions/{version}", catalogStaff, http.StatusOK, a.updateVersion)
	route(a, "POST /apps/{id}/versions/{version}/transitions", catalogStaff, http.StatusOK, a.transition)
	route(a, "GET /devices/{id}/catalog", kioskOrStaff, http.StatusOK, a.kioskCatalog)
}

// actor is the caller as the catalog sees it.
func actor(r *http.Request) catalog.Actor {
	p := principal(r)
	return catalog.Actor{ID: p.Subject, Roles: p.Roles, Department: p.Department}
}

func (a *API) listDepartments(r *http.Request, _ none) (api.Departments, error) {
	ds, err := a.cfg.Catalog.Departments(r.Context())
	return api.Departments{Departments: ds}, err
}

func (a *API) createDepartment(r *http.Request, d api.Department) (api.Department, error) {
	return a.cfg.Catalog.CreateDepartment(r.Context(), actor(r), d)
}

func (a *API) listApps(r *http.Request, _ none) (api.Apps, error) {
	q := r.URL.Query()
	as, err := a.cfg.Catalog.Apps(r.Context(), actor(r), store.AppFilter{DepartmentID: q.Get("department"), Kind: q.Get("kind")})
	return api.Apps{Apps: as}, err
}

func (a *API) createApp(r *http.Request, req api.CreateApp) (api.App, error) {
	return a.cfg.Catalog.CreateApp(r.Context(), actor(r), req)
}

func (a *API) getApp(r *http.Request, _ none) (api.App, error) {
	return a.cfg.Catalog.App(r.Context(), actor(r), r.PathValue("id"))
}

func (a *API) appAudit(r *http.Request, _ none) (api.Audit, error) {
	q := r.URL.Query()
	limit := 0
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 10000 {
			return api.Audit{}, apiErr(http.StatusBadRequest, "bad_request", "limit: want 1 to 10000, got %q", s)
		}
		limit = n
	}
	es, err := a.cfg.Catalog.Audit(r.Context(), actor(r), r.PathValue("id"), q.Get("version"), limit)
	return api.Audit{Entries: es}, err
}

func (a *API) createVersion(r *http.Request, req api.CreateVersion) (api.AppVersion, error) {
	return a.cfg.Catalog.CreateVersion(r.Context(), actor(r), r.PathValue("id"), req)
}

func (a *API) getVersion(r *http.Request, _ none) (api.AppVersion, error) {
	return a.cfg.Catalog.Version(r.Context(), actor(r), r.PathValue("id"), r.PathValue("version"))
}

func (a *API) updateVersion(r *http.Request, req api.CreateVersion) (api.AppVersion, error) {
	return a.cfg.Catalog.UpdateVersion(r.Context(), actor(r), r.PathValue("id"), r.PathValue("version"), req)
}

func (a *API) transition(r *http.Request, req api.Transition) (api.Audit, error) {
	es, err := a.cfg.Catalog.Transition(r.Context(), actor(r), r.PathValue("id"), r.PathValue("version"), req)
	return api.Audit{Entries: es}, err
}

// kioskCatalog answers what a kiosk can offer now: the kiosk channel's listed apps gated by the
// kiosk's latest peripherals body, each with the version the kiosk reports installed. What a
// kiosk runs is not public (it tells which known flaws it still has): staff read it in their
// region scope, and a kiosk its own, authenticated by its device key (KioskAssertions).
func (a *API) kioskCatalog(r *http.Request, _ none) (api.KioskCatalog, error) {
	id := r.PathValue("id")
	if own := principal(r).Device; own != "" && own != id {
		return api.KioskCatalog{}, apiErr(http.StatusForbidden, "forbidden", "kiosk %s may read its own catalog only, not %s's", own, id)
	}
	d, err := a.device(r)
	if err == nil && (d.Revoked || !d.RetiredAt.IsZero()) {
		err = apiErr(http.StatusNotFound, "not_found", "device %s is out of service", id)
	}
	if err != nil {
		return api.KioskCatalog{}, err
	}
	s, err := a.cfg.Catalog.Published(r.Context())
	if err != nil {
		return api.KioskCatalog{}, err
	}
	var installed wire.UpdateStatus
	if rep, err := a.cfg.Store.GetReported(r.Context(), id); err == nil {
		var doc struct {
			Updates wire.UpdateStatus `json:"updates"`
		}
		if json.Unmarshal(rep.Doc, &doc) == nil {
			installed = doc.Updates
		}
	}
	periph, perr := api.DecodePeripherals(d.Peripherals)
	out := api.KioskCatalog{Kiosk: id, Generation: s.Generation, PeriphAt: d.PeriphAt, Apps: []api.KioskApp{}, Withheld: []api.WithheldApp{}}
	for _, e := range s.Entries(api.ChannelKiosk) {
		ok, why := api.Offered(e.Peripherals, periph)
		if len(e.Peripherals) > 0 && (len(d.Peripherals) == 0 || perr != nil) {
			ok, why = false, "the kiosk has not reported its peripherals"
		}
		if !ok {
			out.Withheld = append(out.Withheld, api.WithheldApp{App: e.App, Reason: why})
			continue
		}
		out.Apps = append(out.Apps, api.KioskApp{CatalogEntry: e, Installed: installed.Bundles[e.App].Active})
	}
	return out, nil
}
