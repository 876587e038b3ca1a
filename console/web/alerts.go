package web

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// alertHub is a Hub that keeps alerts (api.Client): the console then has an alerts page.
type alertHub interface {
	ListAlerts(ctx context.Context, all bool) ([]api.Alert, error)
	AckAlert(ctx context.Context, id int64) (api.Alert, error)
	ResolveAlert(ctx context.Context, id int64) (api.Alert, error)
}

var _ alertHub = (*api.Client)(nil)

// alertsData is the alerts page: the unresolved alerts, newest first (or all, ?all=1).
type alertsData struct {
	Alerts []alertRow
	All    bool
	Visits bool // the hub keeps silences and work orders
}

type alertRow struct {
	api.Alert
	What string // the condition in words
}

func (s *Server) alerts(w http.ResponseWriter, r *http.Request) {
	l := s.lang(w, r)
	p := &page{L: l, Title: l.T("alerts"), Nav: "alerts"}
	d := alertsData{All: r.URL.Query().Get("all") == "1"}
	p.Data = d
	ah, ok := s.hub(r).(alertHub)
	if !ok {
		s.fail(w, r, http.StatusNotImplemented, l.T("no-alerts"), nil)
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	as, err := ah.ListAlerts(ctx, d.All)
	if err != nil {
		var status int
		p.Err, status = s.hubError(l, "list alerts", err)
		s.render(w, r, status, "alerts", p)
		return
	}
	for _, a := range as {
		d.Alerts = append(d.Alerts, alertRow{Alert: a, What: alertWords(l, a)})
	}
	_, d.Visits = ah.(visitHub)
	p.Data = d
	s.render(w, r, http.StatusOK, "alerts", p)
}

// alertWords says what an alert is about: "receipt0：缺纸", "离线".
func alertWords(l *L, a api.Alert) string {
	if a.Subject == "" {
		return l.Or("rule.", a.Rule)
	}
	var parts []string
	for _, c := range strings.Split(a.Detail, ",") {
		if c != "" {
			parts = append(parts, l.Reason(Reason{Code: c, Device: a.Subject}))
		}
	}
	if len(parts) == 0 {
		return a.Subject + " " + l.Or("rule.", a.Rule)
	}
	return strings.Join(parts, "; ")
}

// moveAlert acknowledges or resolves an alert: POST /alerts/{id}/ack or /alerts/{id}/resolve.
func (s *Server) moveAlert(w http.ResponseWriter, r *http.Request) {
	l := s.lang(w, r)
	if !s.form(w, r, l) {
		return
	}
	ah, ok := s.hub(r).(alertHub)
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if !ok || err != nil {
		s.fail(w, r, http.StatusNotFound, l.T("not-found"), nil)
		return
	}
	move := ah.AckAlert
	if r.PathValue("action") == "resolve" {
		move = ah.ResolveAlert
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	a, err := move(ctx, id)
	if err != nil {
		e, status := s.hubError(l, "alert "+r.PathValue("action"), err)
		s.render(w, r, status, "error", &page{L: l, Title: l.T("alerts"), Err: e})
		return
	}
	s.cfg.Log.Info("alert "+a.State, "id", a.ID, "device", a.DeviceID)
	http.Redirect(w, r, "/alerts#alert-"+strconv.FormatInt(a.ID, 10), http.StatusSeeOther)
}
