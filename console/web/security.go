package web

import (
	"context"
	"net/http"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// securityHub is a Hub with security events (api.Client): the security page lists them.
type securityHub interface {
	ListSecurityEvents(ctx context.Context, q api.SecurityQuery) (api.SecurityEvents, error)
}

var _ securityHub = (*api.Client)(nil)

// securityKinds are the kind families the page filters by, in the order it offers them.
var securityKinds = []string{"login", "mqtt", "tls", "device", "api", "journal", "identity"}

// securityWindows are the time windows the page offers (?within=), the first the default.
var securityWindows = []string{"24h", "1h", "168h", "720h"}

// securityData is the security page: the newest security events of the caller's scope, of one
// kiosk, staff member, kind family, within a time window.
type securityData struct {
	Events                      []api.SecurityEvent
	Device, Staff, Kind, Within string
	Kinds, Windows              []string
}

func (s *Server) security(w http.ResponseWriter, r *http.Request) {
	l := s.lang(w, r)
	p := &page{L: l, Title: l.T("security"), Nav: "security"}
	q := r.URL.Query()
	d := securityData{Device: q.Get("device"), Staff: q.Get("staff"), Kind: q.Get("kind"), Within: q.Get("within"),
		Kinds: securityKinds, Windows: securityWindows}
	within, err := time.ParseDuration(d.Within)
	if err != nil || within <= 0 {
		d.Within, within = securityWindows[0], 24*time.Hour
	}
	p.Data = d
	sh, ok := s.hub(r).(securityHub)
	if !ok {
		s.fail(w, r, http.StatusNotImplemented, l.T("no-security"), nil)
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	evs, err := sh.ListSecurityEvents(ctx, api.SecurityQuery{Device: d.Device, Staff: d.Staff, Kind: d.Kind,
		Since: s.cfg.Now().Add(-within), Newest: true, Limit: 200})
	if err != nil {
		var status int
		p.Err, status = s.hubError(l, "security events", err)
		s.render(w, r, status, "security", p)
		return
	}
	d.Events = evs.Events
	p.Data = d
	s.render(w, r, http.StatusOK, "security", p)
}
