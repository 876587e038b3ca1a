package httpapi

import (
	"cmp"
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/kioskfleet/kioskfleet/hub/ratelimit"
	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
)

func (a *API) auditRoutes() {
	route(a, "GET /audit", admins, http.StatusOK, a.listAudit)
}

// audit appends a staff action to the audit log: who, what, on which path, from where, with
// what result. The action is done by then: a failure to record it is logged, not answered.
func (a *API) audit(r *http.Request, p Principal, action string, status int, err error) {
	e := store.StaffAction{At: a.cfg.Now(), Actor: p.Username, Roles: strings.Join(p.Roles, ","), Action: action,
		Target: r.URL.Path, Status: status, Result: "ok"}
	if e.Actor == "" {
		e.Actor = p.Subject
	}
	if err != nil {
		ae := a.apiError(err)
		e.Status, e.Result = ae.Status, ae.Code
	}
	if addr := ratelimit.ClientAddr(r, a.cfg.TrustedProxies); addr.IsValid() {
		e.Source = addr.String()
	}
	if _, err := a.cfg.Store.AppendAudit(context.WithoutCancel(r.Context()), e); err != nil {
		a.cfg.Log.Error("audit entry lost", "actor", e.Actor, "action", action, "target", e.Target, "err", err)
	}
}

// noteSecurity counts a security event of the caller p, from the request's client address.
func (a *API) noteSecurity(r *http.Request, p Principal, kind, device, detail string) {
	if a.cfg.Security == nil {
		return
	}
	source := ""
	if addr := ratelimit.ClientAddr(r, a.cfg.TrustedProxies); addr.IsValid() {
		source = addr.String()
	}
	a.cfg.Security.Note(kind, device, cmp.Or(p.Username, p.Subject), source, detail)
}

// listAudit lists the audit log, newest first: ?actor=, ?target= (a path), ?before= (an ID),
// ?limit= (at most 1000).
func (a *API) listAudit(r *http.Request, _ none) (api.StaffActions, error) {
	q := r.URL.Query()
	f := store.StaffActionFilter{Actor: q.Get("actor"), Target: q.Get("target"), Limit: 100}
	f.BeforeID, _ = strconv.ParseInt(q.Get("before"), 10, 64)
	if n, err := strconv.Atoi(q.Get("limit")); err == nil && n > 0 {
		f.Limit = min(n, 1000)
	}
	es, err := a.cfg.Store.ListAudit(r.Context(), f)
	if err != nil {
		return api.StaffActions{}, err
	}
	out := api.StaffActions{Entries: make([]api.StaffAction, len(es))}
	for i, e := range es {
		out.Entries[i] = api.StaffAction{ID: e.ID, At: e.At, Actor: e.Actor, Roles: e.Roles, Action: e.Action, Target: e.Target,
			Source: e.Source, Status: e.Status, Result: e.Result, Prev: e.Prev, Hash: e.Hash}
	}
	return out, nil
}
