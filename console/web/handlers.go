package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/kioskfleet/kioskfleet/console/internal/mask"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
	"github.com/kioskfleet/kioskfleet/pkg/redact"
)

// overviewData is the overview page: counts per site and region, problem kiosks first.
type overviewData struct {
	Total    count
	BySite   []count
	ByRegion []count
	Problems []row
}

func (s *Server) overview(w http.ResponseWriter, r *http.Request) {
	l := s.lang(w, r)
	p := &page{L: l, Title: l.T("overview"), Nav: "overview"}
	rows, _, err := s.rows(r, api.DeviceQuery{})
	d := overviewData{}
	if err != nil {
		var status int
		p.Err, status = s.hubError(l, "list devices", err)
		p.Data = d
		s.render(w, r, status, "overview", p)
		return
	}
	d.BySite, d.Total = tally(rows, func(r row) (string, string) { return r.SiteID, r.SiteName })
	d.ByRegion, _ = tally(rows, func(r row) (string, string) { return r.Region, "" })
	for _, r := range rows {
		if r.Level.Problem() {
			d.Problems = append(d.Problems, r)
		}
	}
	p.Data = d
	s.render(w, r, http.StatusOK, "overview", p)
}

// rows lists kiosks with their assessment and site names, problems first, and the sites.
func (s *Server) rows(r *http.Request, q api.DeviceQuery) ([]row, []fleet.Site, error) {
	ctx, cancel := s.ctx(r)
	defer cancel()
	devs, err := s.hub(r).ListDevices(ctx, q)
	if err != nil {
		return nil, nil, err
	}
	names := map[string]string{}
	sites, _ := s.hub(r).ListSites(ctx) // names are a nicety: IDs do without
	for _, st := range sites {
		names[st.ID] = st.Name
	}
	rows := make([]row, len(devs))
	for i, d := range devs {
		rows[i] = row{Device: d, Assessment: assess(d, s.cfg.Now()), SiteName: names[d.SiteID]}
	}
	sortProblemsFirst(rows)
	return rows, sites, nil
}

// devicesData is the devices list with its filters.
type devicesData struct {
	Site, Region, Status string
	Sites                []fleet.Site
	Rows                 []row
	Filtered             bool
}

// Console-side status filters; online and offline go to the hub as they are.
var levelFilters = map[string]func(Level) bool{
	"problem":  Level.Problem,
	"fault":    func(l Level) bool { return l == LevelFault },
	"degraded": func(l Level) bool { return l == LevelDegraded },
	"revoked":  func(l Level) bool { return l == LevelRevoked },
}

func (s *Server) devices(w http.ResponseWriter, r *http.Request) {
	l := s.lang(w, r)
	q := r.URL.Query()
	d := devicesData{Site: strings.TrimSpace(q.Get("site")), Region: strings.TrimSpace(q.Get("region")), Status: q.Get("status")}
	d.Filtered = d.Site != "" || d.Region != "" || d.Status != ""
	p := &page{L: l, Title: l.T("devices"), Nav: "devices", Data: &d}
	aq := api.DeviceQuery{Site: d.Site, Region: d.Region}
	keep := levelFilters[d.Status]
	if keep == nil {
		aq.Status = d.Status // online, offline, or something the hub will explain is wrong
	}
	rows, sites, err := s.rows(r, aq)
	d.Sites = sites
	if err != nil {
		var status int
		p.Err, status = s.hubError(l, "list devices", err)
		s.render(w, r, status, "devices", p)
		return
	}
	for _, r := range rows {
		if keep == nil || keep(r.Level) {
			d.Rows = append(d.Rows, r)
		}
	}
	s.render(w, r, http.StatusOK, "devices", p)
}

// deviceData is the device page.
type deviceData struct {
	row
	Detail      api.DeviceDetail
	Health      health
	Periph      []peripheral
	PeriphErr   string // why the peripherals body does not decode
	Commands    []commandView
	Flash       string
	Cmd         commandForm
	DesiredDoc  string
	CmdErr      *shownError
	DesiredErr  *shownError
	RevokeErr   *shownError
	Suggestions []api.CommandSpec
	Quick       []string
	Sessions    []sessionView // the presence history, newest first
	SessionsErr *shownError
	Log         *api.DeviceLog // the log tail's latest lines; nil: the hub does not serve them
	LogErr      *shownError
	LogTails    []logTailButton
}

// logTailButton asks the kiosk to stream its log (the log-tail command) for a while, or stops it.
type logTailButton struct {
	Label string
	Args  string
}

// logShown bounds the log lines the device page shows: the newest.
const logShown = 200

// sessionView is an ended session of the presence history, with its duration in words.
type sessionView struct {
	fleet.Session
	Lasted string
}

// commandForm is the command form's values, kept when sending fails.
type commandForm struct{ Name, Args, TTL string }

type commandView struct {
	fleet.Command
	ArgsText, OutputText string
}

// Terminal reports whether the command has finished.
func (c commandView) Terminal() bool { return c.State.Terminal() }

// quick are the commands that need neither arguments nor someone at the kiosk: each gets a
// button. The form offers all of api.CommandSpecs.
var quick = func() (q []string) {
	for _, c := range api.CommandSpecs {
		if !c.ArgsRequired && !c.Attended {
			q = append(q, c.Name)
		}
	}
	return q
}()

func (s *Server) device(w http.ResponseWriter, r *http.Request) {
	l := s.lang(w, r)
	q := r.URL.Query()
	var flash string
	switch {
	case q.Get("sent") != "":
		flash = l.T("sent") + ": " + q.Get("sent")
	case q.Get("desired") != "":
		flash = l.T("desired-saved") + " " + q.Get("desired")
	case q.Get("revoked") != "":
		flash = l.T("revoked-done")
	}
	s.showDevice(w, r, l, http.StatusOK, func(d *deviceData) { d.Flash = flash })
}

// showDevice renders the device page; edit fills in form values and errors.
func (s *Server) showDevice(w http.ResponseWriter, r *http.Request, l *L, status int, edit func(*deviceData)) {
	id := r.PathValue("id")
	ctx, cancel := s.ctx(r)
	defer cancel()
	det, err := s.hub(r).Device(ctx, id)
	if err != nil {
		e, st := s.hubError(l, "device", err)
		s.render(w, r, st, "error", &page{L: l, Title: id, Nav: "device", Err: e})
		return
	}
	d := &deviceData{
		row:         row{Device: det.Device, Assessment: assess(det.Device, s.cfg.Now())},
		Detail:      det,
		Health:      heartbeat(det.Device.Health),
		Cmd:         commandForm{Name: api.CmdPing, TTL: "1h"},
		DesiredDoc:  "{}",
		Suggestions: api.CommandSpecs,
		Quick:       quick,
	}
	if ps, err := peripherals(det.Device.Peripherals); err != nil {
		d.PeriphErr = err.Error()
	} else {
		d.Periph = ps
	}
	if det.Desired != nil {
		d.DesiredDoc = prettyJSON(det.Desired.Doc)
	}
	for _, c := range det.Commands {
		v := commandView{Command: c}
		if !isEmpty(c.Args) {
			v.ArgsText = compactJSON(c.Args, 200)
		}
		if !isEmpty(c.Output) {
			v.OutputText = compactJSON(c.Output, 300)
		}
		d.Commands = append(d.Commands, v)
	}
	if ph, ok := s.hub(r).(Presences); ok {
		if pr, err := ph.Presence(ctx, id, 20); err != nil {
			d.SessionsErr, _ = s.hubError(l, "presence-history", err)
		} else {
			for _, ss := range pr.Sessions {
				d.Sessions = append(d.Sessions, sessionView{ss, (time.Duration(ss.DurationMs) * time.Millisecond).Round(time.Second).String()})
			}
		}
	}
	if lh, ok := s.hub(r).(Logs); ok {
		if lg, err := lh.DeviceLog(ctx, id, 0); err != nil {
			d.LogErr, _ = s.hubError(l, "log", err)
		} else {
			lg.Lines = lg.Lines[max(0, len(lg.Lines)-logShown):]
			for i := range lg.Lines { // the hub redacts them; so does the page, in depth
				lg.Lines[i].Text = redact.String(lg.Lines[i].Text)
			}
			d.Log = &lg
		}
		for _, m := range []string{"5m", "15m"} {
			d.LogTails = append(d.LogTails, logTailButton{Label: l.T("log-tail-for", m), Args: `{"for":"` + m + `"}`})
		}
		d.LogTails = append(d.LogTails, logTailButton{Label: l.T("log-tail-stop"), Args: `{"stop":true}`})
	}
	if edit != nil {
		edit(d)
	}
	s.render(w, r, status, "device", &page{L: l, Title: det.Device.ID, Nav: "device", Data: d})
}

// form checks a POST's CSRF token; it answers 403 and returns false when the check fails.
func (s *Server) form(w http.ResponseWriter, r *http.Request, l *L) bool {
	r.Body = http.MaxBytesReader(w, r.Body, 256<<10)
	if err := s.checkCSRF(r); err != nil {
		s.cfg.Log.Warn("form refused", "path", r.URL.Path, "origin", r.Header.Get("Origin"), "err", err)
		msg := l.T("csrf")
		if errors.Is(err, errCSRFNoCookie) {
			msg = l.T("csrf-cookie")
		}
		s.fail(w, r, http.StatusForbidden, msg, nil)
		return false
	}
	return true
}

func (s *Server) sendCommand(w http.ResponseWriter, r *http.Request) {
	l := s.lang(w, r)
	if !s.form(w, r, l) {
		return
	}
	f := commandForm{Name: strings.TrimSpace(r.PostFormValue("name")), Args: strings.TrimSpace(r.PostFormValue("args")), TTL: strings.TrimSpace(r.PostFormValue("ttl"))}
	var fields []string
	spec, known := api.LookupCommand(f.Name)
	switch {
	case f.Name == "":
		fields = append(fields, l.T("err.name-required"))
	case !known:
		fields = append(fields, l.T("err.name-unknown", f.Name, strings.Join(api.CommandNames(), ", ")))
	case spec.ArgsRequired && f.Args == "":
		fields = append(fields, l.T("err.args-required", f.Name, spec.Args))
	}
	if f.Args != "" {
		var v any
		if err := json.Unmarshal([]byte(f.Args), &v); err != nil {
			fields = append(fields, l.T("err.args-json", err))
		}
	}
	fail := func(e *shownError, status int) {
		s.showDevice(w, r, l, status, func(d *deviceData) { d.Cmd, d.CmdErr = f, e })
	}
	if len(fields) > 0 {
		fail(&shownError{Title: l.T("form-error"), Fields: fields}, http.StatusBadRequest)
		return
	}
	req := api.CreateCommand{Name: f.Name, TTL: f.TTL}
	if f.Args != "" {
		req.Args = json.RawMessage(f.Args)
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	c, err := s.hub(r).SendCommand(ctx, r.PathValue("id"), req)
	if err != nil {
		fail(s.hubError(l, "send command", err))
		return
	}
	s.cfg.Log.Info("command sent", "device", c.DeviceID, "command", c.ID, "name", c.Name)
	anchor := "commands"
	if c.Name == api.CmdLogTail {
		anchor = "log"
	}
	s.redirect(w, r, "sent", c.Name+" ("+c.ID+")", anchor)
}

func (s *Server) setDesired(w http.ResponseWriter, r *http.Request) {
	l := s.lang(w, r)
	if !s.form(w, r, l) {
		return
	}
	doc := strings.TrimSpace(r.PostFormValue("doc"))
	fail := func(e *shownError, status int) {
		s.showDevice(w, r, l, status, func(d *deviceData) { d.DesiredDoc, d.DesiredErr = doc, e })
	}
	var v any
	if err := json.Unmarshal([]byte(doc), &v); err != nil {
		fail(&shownError{Title: l.T("form-error"), Fields: []string{l.T("err.doc-json", err)}}, http.StatusBadRequest)
		return
	}
	if _, ok := v.(map[string]any); !ok {
		fail(&shownError{Title: l.T("form-error"), Fields: []string{l.T("err.doc-object")}}, http.StatusBadRequest)
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	st, err := s.hub(r).SetDesired(ctx, r.PathValue("id"), json.RawMessage(doc))
	if err != nil {
		fail(s.hubError(l, "set desired", err))
		return
	}
	s.cfg.Log.Info("desired state set", "device", st.DeviceID, "version", st.Version)
	s.redirect(w, r, "desired", fmt.Sprint(st.Version), "state")
}

func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	l := s.lang(w, r)
	if !s.form(w, r, l) {
		return
	}
	if r.PostFormValue("confirm") != "yes" {
		s.showDevice(w, r, l, http.StatusBadRequest, func(d *deviceData) {
			d.RevokeErr = &shownError{Title: l.T("form-error"), Fields: []string{l.T("err.confirm-revoke")}}
		})
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	d, err := s.hub(r).Revoke(ctx, r.PathValue("id"))
	if err != nil {
		e, status := s.hubError(l, "revoke", err)
		s.showDevice(w, r, l, status, func(d *deviceData) { d.RevokeErr = e })
		return
	}
	s.cfg.Log.Info("device revoked", "device", d.ID)
	s.redirect(w, r, "revoked", "1", "")
}

// redirect sends the browser back to the device page after a successful POST (303 See Other), so
// that a reload does not repeat it.
func (s *Server) redirect(w http.ResponseWriter, r *http.Request, key, value, anchor string) {
	u := "/devices/" + url.PathEscape(r.PathValue("id")) + "?" + url.Values{key: {value}}.Encode()
	if anchor != "" {
		u += "#" + anchor
	}
	http.Redirect(w, r, u, http.StatusSeeOther)
}

// humanBytes shows a byte count in binary units: "512 B", "3.5 KiB", "19.6 GiB".
func humanBytes(n float64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return fmt.Sprintf("%.0f B", n)
	}
	i := -1
	for n >= 1024 && i < len(units)-1 {
		n /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %ciB", n, units[i])
}

// prettyJSON indents a JSON value for a page, with identity fields masked.
func prettyJSON(raw json.RawMessage) string {
	m, ok := mask.JSON(raw)
	var b bytes.Buffer
	if !ok || json.Indent(&b, m, "", "  ") != nil {
		return string(raw)
	}
	return b.String()
}

// compactJSON shows a JSON value on one line of at most max bytes, with identity fields masked.
func compactJSON(raw json.RawMessage, max int) string {
	m, ok := mask.JSON(raw)
	if !ok {
		m = raw
	}
	return clip(string(m), max)
}
