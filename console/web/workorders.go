package web

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// visitHub is a Hub that keeps alert silences and work orders (api.Client): the alerts page then
// offers them, and the console has a work orders page.
type visitHub interface {
	CreateSilence(ctx context.Context, req api.CreateSilence) (api.Silence, error)
	CreateWorkOrder(ctx context.Context, alertID int64, req api.CreateWorkOrder) (api.WorkOrder, error)
	ListWorkOrders(ctx context.Context, all bool) ([]api.WorkOrder, error)
	CloseWorkOrder(ctx context.Context, id int64, note string) (api.WorkOrder, error)
}

var _ visitHub = (*api.Client)(nil)

// bringFor suggests what to bring for an alert, from its kiosk's peripheral data: a paper roll
// for the printer's model when its paper is out or low, a spare of the peripheral's model when it
// is at fault; "" for an alert about no peripheral.
func bringFor(ctx context.Context, l *L, h Hub, a api.Alert) string {
	if a.Subject == "" {
		return ""
	}
	d, err := h.Device(ctx, a.DeviceID)
	if err != nil {
		return ""
	}
	body, err := api.DecodePeripherals(d.Device.Peripherals)
	if err != nil {
		return ""
	}
	if j := slices.IndexFunc(body.Devices, func(p api.Peripheral) bool { return p.ID == a.Subject }); j >= 0 {
		return bring(l, body.Devices[j], a.Detail)
	}
	return ""
}

// bring says what to bring for a peripheral in trouble (detail: the alert's reasons).
func bring(l *L, p api.Peripheral, detail string) string {
	what := "bring.spare"
	for _, r := range strings.Split(detail, ",") {
		switch {
		case strings.Contains(r, "paper"):
			what = "bring.paper"
		case strings.Contains(r, "ribbon"):
			what = "bring.ribbon"
		case strings.Contains(r, "cover"):
			what = "bring.nothing"
		}
	}
	for _, c := range p.Consumables {
		if c.Level == api.ConsumableEmpty || c.Level == api.ConsumableLow {
			if strings.Contains(c.Name, "paper") {
				what = "bring.paper"
			}
		}
	}
	model := strings.TrimSpace(p.Manufacturer + " " + p.Model)
	if model == "" {
		model = p.Profile
	}
	out := l.T(what) + " · " + strings.TrimSpace(l.Or("class.", p.Class)+" "+p.ID)
	if model != "" {
		out += " · " + model
	}
	return out
}

// silenceAlert serves POST /alerts/{id}/silence: the alert's rule is silenced, on its kiosk or on
// every kiosk of its region (county), for the time chosen (a maintenance window).
func (s *Server) silenceAlert(w http.ResponseWriter, r *http.Request) {
	s.visitAction(w, r, "alerts", func(ctx context.Context, vh visitHub, id int64) (string, error) {
		_, err := vh.CreateSilence(ctx, api.CreateSilence{DeviceID: r.PostFormValue("device"), Region: r.PostFormValue("region"), Rule: r.PostFormValue("rule"),
			For: r.PostFormValue("for"), Reason: strings.TrimSpace(r.PostFormValue("reason"))})
		return "/alerts#alert-" + strconv.FormatInt(id, 10), err
	})
}

// visitAction runs a form's action on the alert or work order the path's {id} names: the CSRF
// check, then act with the hub; it shows act's error, or sends the browser where act says.
func (s *Server) visitAction(w http.ResponseWriter, r *http.Request, title string, act func(ctx context.Context, vh visitHub, id int64) (string, error)) {
	l := s.lang(w, r)
	if !s.form(w, r, l) {
		return
	}
	vh, ok := s.hub(r).(visitHub)
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if !ok || err != nil {
		s.fail(w, r, http.StatusNotFound, l.T("not-found"), nil)
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	to, err := act(ctx, vh, id)
	if err != nil {
		e, status := s.hubError(l, r.URL.Path, err)
		s.render(w, r, status, "error", &page{L: l, Title: l.T(title), Err: e})
		return
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// workOrderForm is the page to open a work order for an alert.
type workOrderForm struct {
	Alert alertRow
	Bring string
}

// workOrderPage serves GET /alerts/{id}/workorder: the form for a work order, with what to bring
// suggested from the kiosk's peripheral data.
func (s *Server) workOrderPage(w http.ResponseWriter, r *http.Request) {
	l := s.lang(w, r)
	ah, ok := s.hub(r).(alertHub)
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if _, visits := s.hub(r).(visitHub); !ok || !visits || err != nil {
		s.fail(w, r, http.StatusNotFound, l.T("not-found"), nil)
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	p := &page{L: l, Title: l.T("workorder"), Nav: "alerts"}
	as, err := ah.ListAlerts(ctx, false)
	if err != nil {
		var status int
		p.Err, status = s.hubError(l, "list alerts", err)
		s.render(w, r, status, "error", p)
		return
	}
	i := slices.IndexFunc(as, func(a api.Alert) bool { return a.ID == id })
	if i < 0 {
		s.fail(w, r, http.StatusNotFound, l.T("not-found"), nil)
		return
	}
	p.Data = workOrderForm{Alert: alertRow{Alert: as[i], What: alertWords(l, as[i])}, Bring: bringFor(ctx, l, s.hub(r), as[i])}
	s.render(w, r, http.StatusOK, "workorder", p)
}

// createWorkOrder serves POST /alerts/{id}/workorder: a visit for the alert, who goes and what
// to bring.
func (s *Server) createWorkOrder(w http.ResponseWriter, r *http.Request) {
	s.visitAction(w, r, "workorders", func(ctx context.Context, vh visitHub, id int64) (string, error) {
		wo, err := vh.CreateWorkOrder(ctx, id, api.CreateWorkOrder{Assignee: strings.TrimSpace(r.PostFormValue("assignee")),
			Bring: strings.TrimSpace(r.PostFormValue("bring")), Note: strings.TrimSpace(r.PostFormValue("note"))})
		return "/workorders#wo-" + strconv.FormatInt(wo.ID, 10), err
	})
}

// workOrdersData is the work orders page: the open ones, newest first (or all, ?all=1).
type workOrdersData struct {
	WorkOrders []api.WorkOrder
	All        bool
}

func (s *Server) workOrders(w http.ResponseWriter, r *http.Request) {
	l := s.lang(w, r)
	p := &page{L: l, Title: l.T("workorders"), Nav: "workorders"}
	d := workOrdersData{All: r.URL.Query().Get("all") == "1"}
	p.Data = d
	vh, ok := s.hub(r).(visitHub)
	if !ok {
		s.fail(w, r, http.StatusNotImplemented, l.T("no-alerts"), nil)
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	status := http.StatusOK
	var err error
	if d.WorkOrders, err = vh.ListWorkOrders(ctx, d.All); err != nil {
		p.Err, status = s.hubError(l, "list work orders", err)
	}
	p.Data = d
	s.render(w, r, status, "workorders", p)
}

// closeWorkOrder serves POST /workorders/{id}/close: done, from the phone.
func (s *Server) closeWorkOrder(w http.ResponseWriter, r *http.Request) {
	s.visitAction(w, r, "workorders", func(ctx context.Context, vh visitHub, id int64) (string, error) {
		_, err := vh.CloseWorkOrder(ctx, id, strings.TrimSpace(r.PostFormValue("note")))
		return "/workorders#wo-" + strconv.FormatInt(id, 10), err
	})
}
