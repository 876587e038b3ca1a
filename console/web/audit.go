package web

import (
	"context"
	"net/http"
	"net/url"

	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// auditHub is a Hub with an audit log (api.Client): admins then have an audit page.
type auditHub interface {
	ListAudit(ctx context.Context, q url.Values) ([]api.StaffAction, error)
}

var _ auditHub = (*api.Client)(nil)

// auditData is the audit page: the hub's audit log, newest first, filtered by actor or target.
type auditData struct {
	Entries       []api.StaffAction
	Actor, Target string
	Before        int64 // the next page's ?before=, 0 for none
}

func (s *Server) audit(w http.ResponseWriter, r *http.Request) {
	l := s.lang(w, r)
	p := &page{L: l, Title: l.T("staff-audit"), Nav: "audit"}
	q := r.URL.Query()
	d := auditData{Actor: q.Get("actor"), Target: q.Get("target")}
	p.Data = d
	ah, ok := s.hub(r).(auditHub)
	if !ok {
		s.fail(w, r, http.StatusNotImplemented, l.T("no-audit"), nil)
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	hq := url.Values{"limit": {"100"}}
	for _, k := range []string{"actor", "target", "before"} {
		if v := q.Get(k); v != "" {
			hq.Set(k, v)
		}
	}
	es, err := ah.ListAudit(ctx, hq)
	if err != nil {
		var status int
		p.Err, status = s.hubError(l, "audit", err)
		s.render(w, r, status, "audit", p)
		return
	}
	d.Entries = es
	if len(es) == 100 {
		d.Before = es[len(es)-1].ID
	}
	p.Data = d
	s.render(w, r, http.StatusOK, "audit", p)
}
