package web

import (
	"context"
	"encoding/csv"
	"fmt"
	"html/template"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// DataHub is the part of the hub's API the data pages use (unified data: heat, funnels,
// ratings, recommendations). It is an optional capability of the Hub: a console whose Hub lacks
// it shows no data pages.
type DataHub interface {
	Heat(ctx context.Context, q api.AnalyticsQuery) (api.Heat, error)
	Funnel(ctx context.Context, q api.AnalyticsQuery) (api.Funnel, error)
	SearchMisses(ctx context.Context, q api.AnalyticsQuery) (api.SearchMisses, error)
	CoUse(ctx context.Context, service string) (api.CoUses, error)
	RatingSummary(ctx context.Context, q api.AnalyticsQuery) (api.RatingSummary, error)
	FollowUps(ctx context.Context, all bool) (api.FollowUps, error)
	ResolveFollowUp(ctx context.Context, id, note string) (api.FollowUps, error)
}

var _ DataHub = (*api.Client)(nil)

// minK is the least suppression threshold: whatever the hub says, the console never shows nor
// exports a cell of fewer distinct citizens.
const minK = 10

func (s *Server) dataRoutes() {
	if _, ok := s.cfg.Hub.(DataHub); !ok {
		return
	}
	s.mux.HandleFunc("GET /data/heat", s.heatPage)
	s.mux.HandleFunc("GET /data/funnel", s.funnelPage)
	s.mux.HandleFunc("GET /data/ratings", s.ratingsPage)
	s.mux.HandleFunc("POST /data/ratings/follow-ups/{id}/resolve", s.resolveFollowUp)
	s.mux.HandleFunc("GET /data/recommendations", s.recommendationsPage)
	s.mux.HandleFunc("GET /data/export/{what}", s.export)
}

// filtersData is what the filter form of a data page gets.
type filtersData struct {
	L *L
	F filters
}

// filters are a data page's query: the range and the filters, as typed.
type filters struct {
	From, To, Service, Channel, Region, By string
}

func readFilters(r *http.Request) filters {
	q := r.URL.Query()
	get := func(k string) string { return strings.TrimSpace(q.Get(k)) }
	return filters{From: get("from"), To: get("to"), Service: get("service"), Channel: get("channel"), Region: get("region"), By: get("by")}
}

func (f filters) query(by ...string) api.AnalyticsQuery {
	return api.AnalyticsQuery{From: f.From, To: f.To, Service: f.Service, Channel: f.Channel, Region: f.Region, By: by}
}

// Encode is the filters as a query string (for the export links).
func (f filters) Encode() string {
	v := url.Values{}
	for k, s := range map[string]string{"from": f.From, "to": f.To, "service": f.Service, "channel": f.Channel, "region": f.Region, "by": f.By} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v.Encode()
}

// threshold is the suppression threshold to apply: the hub's, never below minK.
func threshold(hubK int) int { return max(hubK, minK) }

// heatData is the heat page: a grid of services by hour of day, the services' bars and the
// cells by service, channel and region.
type heatData struct {
	F       filters
	Hours   []int
	Grid    []heatRow
	Bars    template.HTML
	Cells   []api.HeatCell
	K       int
	MaxCell int64
}

type heatRow struct {
	Service string
	Cells   []heatCell // one per hour of day
}

type heatCell struct {
	Citizens int64
	Class    string // h0 (suppressed or none) .. h5 (hottest)
}

func (s *Server) dataHub() DataHub { return s.cfg.Hub.(DataHub) }

func (s *Server) heatPage(w http.ResponseWriter, r *http.Request) {
	l := s.lang(w, r)
	d := &heatData{F: readFilters(r)}
	p := &page{L: l, Title: l.T("heat"), Nav: "heat", Data: d}
	ctx, cancel := s.ctx(r)
	defer cancel()
	byHour, err := s.dataHub().Heat(ctx, d.F.query("service", "hour"))
	var bySvc, cells api.Heat
	if err == nil {
		bySvc, err = s.dataHub().Heat(ctx, d.F.query("service"))
	}
	if err == nil {
		cells, err = s.dataHub().Heat(ctx, d.F.query("service", "channel", "region"))
	}
	if err != nil {
		var status int
		p.Err, status = s.hubError(l, "heat", err)
		s.render(w, r, status, "heat", p)
		return
	}
	d.K = threshold(byHour.K)
	// The grid: hours of the day in the console's zone, each service's busiest cells hottest.
	grid := map[string][]int64{}
	for _, c := range shown(byHour.Cells, d.K) {
		if c.Hour == nil {
			continue
		}
		if grid[c.Service] == nil {
			grid[c.Service] = make([]int64, 24)
		}
		h := c.Hour.In(s.cfg.Location).Hour()
		grid[c.Service][h] = max(grid[c.Service][h], c.Citizens) // over several days: the busiest
		d.MaxCell = max(d.MaxCell, c.Citizens)
	}
	for h := range 24 {
		d.Hours = append(d.Hours, h)
	}
	for _, svc := range slices.Sorted(maps.Keys(grid)) {
		row := heatRow{Service: svc}
		for _, n := range grid[svc] {
			row.Cells = append(row.Cells, heatCell{Citizens: n, Class: heatClass(n, d.MaxCell)})
		}
		d.Grid = append(d.Grid, row)
	}
	var labels []string
	var values []int64
	for _, c := range shown(bySvc.Cells, d.K) {
		labels, values = append(labels, c.Service), append(values, c.Citizens)
	}
	d.Bars = barChart(labels, values)
	d.Cells = shown(cells.Cells, d.K)
	s.render(w, r, http.StatusOK, "heat", p)
}

// shown leaves out the cells under k (the hub has, already).
func shown(cells []api.HeatCell, k int) []api.HeatCell {
	return slices.DeleteFunc(slices.Clone(cells), func(c api.HeatCell) bool { return c.Citizens < int64(k) })
}

func heatClass(n, most int64) string {
	if n == 0 || most == 0 {
		return "h0"
	}
	return "h" + strconv.Itoa(1+int(math.Min(4, math.Floor(float64(n)*5/float64(most+1)))))
}

// barChart draws horizontal bars as inline SVG (no script, no external file): one bar per label.
func barChart(labels []string, values []int64) template.HTML {
	if len(values) == 0 {
		return ""
	}
	const rowH, labelW, barW = 22, 170, 300
	most := slices.Max(values)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" role="img" viewBox="0 0 %d %d" width="100%%" xmlns="http://www.w3.org/2000/svg">`, labelW+barW+70, rowH*len(values)+4)
	for i, v := range values {
		y := i*rowH + 2
		w := 0
		if most > 0 {
			w = int(float64(v) / float64(most) * barW)
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end" font-size="12">%s</text>`, labelW-6, y+15, template.HTMLEscapeString(labels[i]))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="#2f6fb0"><title>%s: %d</title></rect>`, labelW, y+3, max(w, 1), rowH-6,
			template.HTMLEscapeString(labels[i]), v)
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="12">%d</text>`, labelW+w+6, y+15, v)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // every label escaped above
}

// funnelData is the funnel page: per service, the citizens at each stage and the conversion.
type funnelData struct {
	F        filters
	K        int
	Services []funnelRow
	Stages   []string
}

type funnelRow struct {
	Service string
	Steps   []funnelStep // one per stage; Shown false when suppressed
	Bars    template.HTML
}

type funnelStep struct {
	Citizens int64
	Shown    bool
	Of       string // conversion from the first stage
}

var stages = []string{"view", "start", "submit", "complete"}

func (s *Server) funnelPage(w http.ResponseWriter, r *http.Request) {
	l := s.lang(w, r)
	d := &funnelData{F: readFilters(r), Stages: stages}
	p := &page{L: l, Title: l.T("funnel"), Nav: "funnel", Data: d}
	ctx, cancel := s.ctx(r)
	defer cancel()
	f, err := s.dataHub().Funnel(ctx, d.F.query())
	if err != nil {
		var status int
		p.Err, status = s.hubError(l, "funnel", err)
		s.render(w, r, status, "funnel", p)
		return
	}
	d.K = threshold(f.K)
	by := map[string]map[string]int64{}
	for _, st := range f.Steps {
		if st.Citizens < int64(d.K) {
			continue
		}
		if by[st.Service] == nil {
			by[st.Service] = map[string]int64{}
		}
		by[st.Service][st.Stage] = st.Citizens
	}
	for _, svc := range slices.Sorted(maps.Keys(by)) {
		row := funnelRow{Service: svc}
		var labels []string
		var values []int64
		first := by[svc]["view"]
		for _, st := range stages {
			n, ok := by[svc][st]
			fs := funnelStep{Citizens: n, Shown: ok}
			if ok && first > 0 {
				fs.Of = strconv.Itoa(int(math.Round(float64(n)*100/float64(first)))) + "%"
			}
			row.Steps = append(row.Steps, fs)
			if ok {
				labels, values = append(labels, l.T("stage."+st)), append(values, n)
			}
		}
		row.Bars = barChart(labels, values)
		d.Services = append(d.Services, row)
	}
	s.render(w, r, http.StatusOK, "funnel", p)
}

// ratingsData is the ratings page: the summary by one dimension, and the follow-ups.
type ratingsData struct {
	F         filters
	By        string
	K         int
	Groups    []api.RatingGroup
	FollowUps []api.FollowUp
	Flash     string
}

func (s *Server) ratingsPage(w http.ResponseWriter, r *http.Request) {
	l := s.lang(w, r)
	d := &ratingsData{F: readFilters(r)}
	d.By = cmpOr(d.F.By, "service")
	p := &page{L: l, Title: l.T("ratings"), Nav: "ratings", Data: d}
	if r.URL.Query().Get("resolved") != "" {
		d.Flash = l.T("follow-up-resolved")
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	sum, err := s.dataHub().RatingSummary(ctx, d.F.query(d.By))
	var fs api.FollowUps
	if err == nil {
		fs, err = s.dataHub().FollowUps(ctx, false)
	}
	if err != nil {
		var status int
		p.Err, status = s.hubError(l, "ratings", err)
		s.render(w, r, status, "ratings", p)
		return
	}
	d.K = threshold(sum.K)
	d.Groups = slices.DeleteFunc(sum.Groups, func(g api.RatingGroup) bool { return g.Citizens < int64(d.K) })
	d.FollowUps = fs.FollowUps
	s.render(w, r, http.StatusOK, "ratings", p)
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (s *Server) resolveFollowUp(w http.ResponseWriter, r *http.Request) {
	l := s.lang(w, r)
	if err := s.checkCSRF(r); err != nil {
		s.fail(w, r, http.StatusForbidden, l.T("csrf")+": "+err.Error(), nil)
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	if _, err := s.dataHub().ResolveFollowUp(ctx, r.PathValue("id"), r.PostFormValue("note")); err != nil {
		e, status := s.hubError(l, "resolve follow-up", err)
		s.render(w, r, status, "error", &page{L: l, Title: l.T("ratings"), Err: e})
		return
	}
	http.Redirect(w, r, "/data/ratings?resolved=1", http.StatusSeeOther)
}

// recommendationsData is the 服务找人 page: what citizens looked for in vain, and which services
// go together.
type recommendationsData struct {
	F      filters
	K      int
	Misses []api.SearchMiss
	CoUse  []api.CoUse
	Bars   template.HTML
}

func (s *Server) recommendationsPage(w http.ResponseWriter, r *http.Request) {
	l := s.lang(w, r)
	d := &recommendationsData{F: readFilters(r)}
	p := &page{L: l, Title: l.T("recommendations"), Nav: "recommendations", Data: d}
	ctx, cancel := s.ctx(r)
	defer cancel()
	m, err := s.dataHub().SearchMisses(ctx, d.F.query())
	var co api.CoUses
	if err == nil && d.F.Service != "" {
		co, err = s.dataHub().CoUse(ctx, d.F.Service)
	}
	if err != nil {
		var status int
		p.Err, status = s.hubError(l, "recommendations", err)
		s.render(w, r, status, "recommendations", p)
		return
	}
	d.K = threshold(m.K)
	d.Misses = slices.DeleteFunc(m.Misses, func(x api.SearchMiss) bool { return x.Citizens < int64(d.K) })
	d.CoUse = slices.DeleteFunc(co.Pairs, func(x api.CoUse) bool { return x.Citizens < int64(d.K) })
	var labels []string
	var values []int64
	for _, c := range d.CoUse {
		labels, values = append(labels, c.To), append(values, c.Citizens)
	}
	d.Bars = barChart(labels, values)
	s.render(w, r, http.StatusOK, "recommendations", p)
}

// export writes a data page's cells as CSV, with the same suppression as the pages.
func (s *Server) export(w http.ResponseWriter, r *http.Request) {
	l := s.lang(w, r)
	f := readFilters(r)
	ctx, cancel := s.ctx(r)
	defer cancel()
	var header []string
	var rows [][]string
	var err error
	n := func(v int64) string { return strconv.FormatInt(v, 10) }
	switch what := r.PathValue("what"); what {
	case "heat.csv":
		by := strings.Split(cmpOr(f.By, "service,channel,region,hour"), ",")
		var h api.Heat
		if h, err = s.dataHub().Heat(ctx, f.query(by...)); err == nil {
			header = []string{"service", "channel", "region", "hour", "events", "citizens"}
			for _, c := range shown(h.Cells, threshold(h.K)) {
				hour := ""
				if c.Hour != nil {
					hour = c.Hour.In(s.cfg.Location).Format(time.RFC3339)
				}
				rows = append(rows, []string{c.Service, c.Channel, c.Region, hour, n(c.Events), n(c.Citizens)})
			}
		}
	case "funnel.csv":
		var fu api.Funnel
		if fu, err = s.dataHub().Funnel(ctx, f.query()); err == nil {
			header = []string{"service", "stage", "citizens"}
			for _, st := range fu.Steps {
				if st.Citizens >= int64(threshold(fu.K)) {
					rows = append(rows, []string{st.Service, st.Stage, n(st.Citizens)})
				}
			}
		}
	case "ratings.csv":
		var sum api.RatingSummary
		if sum, err = s.dataHub().RatingSummary(ctx, f.query(cmpOr(f.By, "service"))); err == nil {
			header = []string{sum.By, "ratings", "citizens", "average", "bad", "score1", "score2", "score3", "score4", "score5"}
			for _, g := range sum.Groups {
				if g.Citizens >= int64(threshold(sum.K)) {
					rows = append(rows, []string{g.Key, n(g.Ratings), n(g.Citizens), strconv.FormatFloat(g.Average, 'f', 2, 64), n(g.Bad),
						n(g.Scores[0]), n(g.Scores[1]), n(g.Scores[2]), n(g.Scores[3]), n(g.Scores[4])})
				}
			}
		}
	case "search-misses.csv":
		var m api.SearchMisses
		if m, err = s.dataHub().SearchMisses(ctx, f.query()); err == nil {
			header = []string{"query", "searches", "citizens"}
			for _, x := range m.Misses {
				if x.Citizens >= int64(threshold(m.K)) {
					rows = append(rows, []string{x.Query, n(x.Searches), n(x.Citizens)})
				}
			}
		}
	default:
		s.fail(w, r, http.StatusNotFound, l.T("not-found"), nil)
		return
	}
	if err != nil {
		e, status := s.hubError(l, "export", err)
		s.render(w, r, status, "error", &page{L: l, Title: l.T("export"), Err: e})
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+r.PathValue("what")+`"`)
	w.Header().Set("Cache-Control", "no-store")
	w.Write([]byte("\ufeff")) // a byte order mark: spreadsheets then read the Chinese right
	cw := csv.NewWriter(w)
	cw.Write(header)
	for _, row := range rows {
		for i, c := range row { // a cell a spreadsheet would run as a formula (OWASP CSV injection)
			if c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
				row[i] = "'" + c
			}
		}
		cw.Write(row)
	}
	cw.Flush()
}

func init() {
	for k, v := range map[string][2]string{
		"data":               {"数据", "Data"},
		"heat":               {"服务热度", "Service heat"},
		"funnel":             {"办理漏斗", "Funnels"},
		"ratings":            {"好差评", "Ratings"},
		"recommendations":    {"服务找人", "Recommendations"},
		"from":               {"自", "From"},
		"to":                 {"至", "To"},
		"service":            {"服务", "Service"},
		"channel":            {"渠道", "Channel"},
		"by":                 {"按", "By"},
		"hour-of-day":        {"时段", "Hour of day"},
		"citizens":           {"人数", "Citizens"},
		"events":             {"事件数", "Events"},
		"export":             {"导出 CSV", "Export CSV"},
		"suppressed-note":    {"少于 %d 人的格子不显示、不导出。", "Cells of fewer than %d citizens are neither shown nor exported."},
		"no-data":            {"没有可显示的数据。", "No data to show."},
		"stage.view":         {"查看指南", "Guide viewed"},
		"stage.start":        {"开始办理", "Started"},
		"stage.submit":       {"提交申请", "Submitted"},
		"stage.complete":     {"办结", "Done"},
		"ratings-count":      {"评价数", "Ratings"},
		"average":            {"平均分", "Average"},
		"bad":                {"差评", "Bad"},
		"follow-ups":         {"差评回访", "Follow-ups of bad ratings"},
		"due":                {"期限", "Due"},
		"overdue":            {"已超期", "Overdue"},
		"score":              {"评分", "Score"},
		"tags":               {"标签", "Tags"},
		"comment":            {"意见", "Comment"},
		"note":               {"处理说明", "Note"},
		"resolve":            {"办结回访", "Resolve"},
		"follow-up-resolved": {"回访已办结。", "Follow-up resolved."},
		"no-follow-ups":      {"没有待回访的差评。", "No bad rating awaits a follow-up."},
		"search-misses":      {"搜索无结果", "Searches that found nothing"},
		"query":              {"搜索词", "Query"},
		"searches":           {"次数", "Searches"},
		"co-use":             {"用过此服务的市民还常用", "Citizens who used it also used"},
		"department":         {"部门", "Department"},
		"show":               {"显示", "Show"},
	} {
		messages[k] = v
	}
}
