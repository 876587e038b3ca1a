package web

import (
	"context"
	"net/http"
	"strings"

	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// appsData is the apps page: every app the console may see, with its state on each channel.
type appsData struct {
	Department, Kind string
	Apps             []api.App
	Channels         []string
	Filtered         bool
}

func (s *Server) apps(w http.ResponseWriter, r *http.Request) {
	l := s.lang(w, r)
	q := r.URL.Query()
	d := &appsData{Department: strings.TrimSpace(q.Get("department")), Kind: q.Get("kind"), Channels: api.Channels}
	d.Filtered = d.Department != "" || d.Kind != ""
	p := &page{L: l, Title: l.T("apps"), Nav: "apps", Data: d}
	cat, ok := s.catalog(w, r, l)
	if !ok {
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	as, err := cat.ListApps(ctx, api.AppQuery{Department: d.Department, Kind: d.Kind})
	if err != nil {
		var status int
		p.Err, status = s.hubError(l, "list apps", err)
		s.render(w, r, status, "apps", p)
		return
	}
	d.Apps = as
	s.render(w, r, http.StatusOK, "apps", p)
}

// appData is one app's page: its versions and their state per channel, and its audit trail.
type appData struct {
	App      api.App
	Audit    []api.AuditEntry // newest first
	Channels []string
}

// auditShown is how many of the latest audit entries the app page shows.
const auditShown = 100

func (s *Server) app(w http.ResponseWriter, r *http.Request) {
	l := s.lang(w, r)
	id := r.PathValue("id")
	cat, ok := s.catalog(w, r, l)
	if !ok {
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	a, err := cat.App(ctx, id)
	var es []api.AuditEntry
	if err == nil {
		es, err = cat.AppAudit(ctx, id, "", auditShown)
	}
	if err != nil {
		e, st := s.hubError(l, "app", err)
		s.render(w, r, st, "error", &page{L: l, Title: id, Nav: "apps", Err: e})
		return
	}
	for i, j := 0, len(es)-1; i < j; i, j = i+1, j-1 {
		es[i], es[j] = es[j], es[i]
	}
	for i, j := 0, len(a.Versions)-1; i < j; i, j = i+1, j-1 {
		a.Versions[i], a.Versions[j] = a.Versions[j], a.Versions[i]
	}
	s.render(w, r, http.StatusOK, "app", &page{L: l, Title: a.Name, Nav: "apps", Data: &appData{App: a, Audit: es, Channels: api.Channels}})
}

// catalog returns the hub's catalog API, or answers 404 when the hub client has none.
func (s *Server) catalog(w http.ResponseWriter, r *http.Request, l *L) (Catalog, bool) {
	cat, ok := s.cfg.Hub.(Catalog)
	if !ok {
		s.fail(w, r, http.StatusNotFound, l.T("not-found"), nil)
	}
	return cat, ok
}

// Rollouts is the part of the hub's API the rollouts page uses.
type Rollouts interface {
	ListRollouts(ctx context.Context) ([]api.Rollout, error)
}

var _ Rollouts = (*api.Client)(nil)

// rolloutsData is the rollouts page: each rollout with its progress per wave.
type rolloutsData struct {
	Rollouts []api.Rollout
}

func (s *Server) rollouts(w http.ResponseWriter, r *http.Request) {
	l := s.lang(w, r)
	ro, ok := s.cfg.Hub.(Rollouts)
	if !ok {
		s.fail(w, r, http.StatusNotFound, l.T("not-found"), nil)
		return
	}
	p := &page{L: l, Title: l.T("rollouts"), Nav: "rollouts", Data: &rolloutsData{}}
	ctx, cancel := s.ctx(r)
	defer cancel()
	rs, err := ro.ListRollouts(ctx)
	if err != nil {
		var status int
		p.Err, status = s.hubError(l, "list rollouts", err)
		s.render(w, r, status, "rollouts", p)
		return
	}
	p.Data = &rolloutsData{Rollouts: rs}
	s.render(w, r, http.StatusOK, "rollouts", p)
}

// pctOf is n as a whole percentage of total (0 when total is 0), for progress bars.
func pctOf(n, total int) int {
	if total == 0 {
		return 0
	}
	return n * 100 / total
}
