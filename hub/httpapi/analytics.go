package httpapi

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/events"
	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// Analytics is the event room's queries as the API serves them (hub/events): every answer
// already leaves out the cells under K.
type Analytics interface {
	Heat(ctx context.Context, q store.HeatQuery) ([]store.HeatCell, error)
	Funnel(ctx context.Context, q store.FunnelQuery) ([]store.FunnelStep, error)
	SearchMisses(ctx context.Context, q store.MissQuery) ([]store.SearchMiss, error)
	CoUse(ctx context.Context, service string) ([]store.CoUse, error)
	K() int
	Now() time.Time
}

func (a *API) analyticsRoutes() {
	if a.cfg.Analytics == nil {
		return
	}
	routeRaw(a, "GET /analytics/heat", staff, a.heat)
	routeRaw(a, "GET /analytics/funnel", staff, a.funnel)
	routeRaw(a, "GET /analytics/search-misses", staff, a.searchMisses)
	routeRaw(a, "GET /analytics/co-use", staff, a.coUse)
}

// coUse answers which services those who used ?service= used too.
func (a *API) coUse(w http.ResponseWriter, r *http.Request) error {
	pairs, err := a.cfg.Analytics.CoUse(r.Context(), r.URL.Query().Get("service"))
	out := api.CoUses{K: a.cfg.Analytics.K(), Pairs: []api.CoUse{}}
	t := table{json: &out, header: []string{"from", "to", "citizens"}}
	for _, p := range pairs {
		out.Pairs = append(out.Pairs, api.CoUse(p))
		t.rows = append(t.rows, []string{p.From, p.To, itoa(p.Citizens)})
	}
	return a.answer(w, r, "co-use", t, err)
}

// table is an answer that is JSON, or CSV with ?format=csv: a header and rows.
type table struct {
	json   any
	header []string
	rows   [][]string
}

func (a *API) answer(w http.ResponseWriter, r *http.Request, name string, t table, err error) error {
	if errors.Is(err, events.ErrQuery) {
		return apiErr(http.StatusBadRequest, "bad_request", "%v", err)
	}
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	switch r.URL.Query().Get("format") {
	case "", "json":
		w.Header().Set("Content-Type", "application/json")
		return json.NewEncoder(w).Encode(t.json)
	case "csv":
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.csv"`)
		cw := csv.NewWriter(w)
		cw.Write(t.header)
		for _, row := range t.rows {
			cw.Write(sanitizeCSV(row))
		}
		cw.Flush()
		return nil
	}
	return apiErr(http.StatusBadRequest, "bad_request", "format: want json or csv")
}

// sanitizeCSV keeps a cell from being read as a formula by a spreadsheet (OWASP CSV injection):
// search queries are what citizens typed.
func sanitizeCSV(row []string) []string {
	for i, c := range row {
		if c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
			row[i] = "'" + c
		}
	}
	return row
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func (a *API) heat(w http.ResponseWriter, r *http.Request) error {
	from, to, err := dayRange(r, a.cfg.Analytics.Now())
	if err != nil {
		return err
	}
	qv := r.URL.Query()
	q := store.HeatQuery{From: from, To: to, Service: qv.Get("service"), Channel: qv.Get("channel"), Region: qv.Get("region")}
	if by := qv.Get("by"); by != "" {
		q.By = strings.Split(by, ",")
	}
	cells, err := a.cfg.Analytics.Heat(r.Context(), q)
	out := api.Heat{From: from, To: to, By: append([]string{}, q.By...), K: a.cfg.Analytics.K(), Cells: []api.HeatCell{}}
	t := table{json: &out, header: []string{"service", "channel", "region", "hour", "events", "citizens"}}
	for _, c := range cells {
		hc := api.HeatCell{Service: c.Service, Channel: c.Channel, Region: c.Region, Events: c.Events, Citizens: c.Citizens}
		hour := ""
		if !c.Hour.IsZero() {
			h := c.Hour
			hc.Hour, hour = &h, h.Format(time.RFC3339)
		}
		out.Cells = append(out.Cells, hc)
		t.rows = append(t.rows, []string{c.Service, c.Channel, c.Region, hour, itoa(c.Events), itoa(c.Citizens)})
	}
	return a.answer(w, r, "heat", t, err)
}

func (a *API) funnel(w http.ResponseWriter, r *http.Request) error {
	from, to, err := dayRange(r, a.cfg.Analytics.Now())
	if err != nil {
		return err
	}
	qv := r.URL.Query()
	steps, err := a.cfg.Analytics.Funnel(r.Context(), store.FunnelQuery{From: from, To: to, Service: qv.Get("service"), Channel: qv.Get("channel")})
	out := api.Funnel{From: from, To: to, K: a.cfg.Analytics.K(), Steps: []api.FunnelStep{}}
	t := table{json: &out, header: []string{"service", "stage", "citizens"}}
	for _, s := range steps {
		out.Steps = append(out.Steps, api.FunnelStep(s))
		t.rows = append(t.rows, []string{s.Service, s.Stage, itoa(s.Citizens)})
	}
	return a.answer(w, r, "funnel", t, err)
}

func (a *API) searchMisses(w http.ResponseWriter, r *http.Request) error {
	from, to, err := dayRange(r, a.cfg.Analytics.Now())
	if err != nil {
		return err
	}
	misses, err := a.cfg.Analytics.SearchMisses(r.Context(), store.MissQuery{From: from, To: to})
	out := api.SearchMisses{From: from, To: to, K: a.cfg.Analytics.K(), Misses: []api.SearchMiss{}}
	t := table{json: &out, header: []string{"query", "searches", "citizens"}}
	for _, m := range misses {
		out.Misses = append(out.Misses, api.SearchMiss(m))
		t.rows = append(t.rows, []string{m.Query, itoa(m.Searches), itoa(m.Citizens)})
	}
	return a.answer(w, r, "search-misses", t, err)
}
