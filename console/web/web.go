// Package web is the fleet console: server-rendered pages for field ops, readable on a phone,
// that show which kiosks are down or degraded and why, and let a technician send a command, set a
// kiosk's desired configuration or revoke it, or do one of those to every kiosk a filter selects
// (bulk actions, the hub's bulk jobs). It talks to the hub only over its HTTP API
// (docs/api.md) through a Hub, normally a *api.Client. Pages are zh-CN by default, English via
// ?lang=en or Accept-Language; templates, styles and the small live-update script are embedded.
//
// Staff log in through the hub (Login: the console is an OpenID Connect relying party, sessions
// are kept server-side) and act with their own token, so that the hub enforces each one's roles
// and region scope. Without Login the console runs in setup mode: everybody acts with one token
// (the hub's bootstrap token), for first setup only, and every page says so.
package web

import (
	"bytes"
	"compress/gzip"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
)

// Hub is the part of the hub's API the console uses.
type Hub interface {
	ListSites(ctx context.Context) ([]fleet.Site, error)
	ListDevices(ctx context.Context, q api.DeviceQuery) ([]fleet.Device, error)
	Device(ctx context.Context, id string) (api.DeviceDetail, error)
	SendCommand(ctx context.Context, deviceID string, req api.CreateCommand) (fleet.Command, error)
	SetDesired(ctx context.Context, deviceID string, doc json.RawMessage) (fleet.DocState, error)
	Revoke(ctx context.Context, id string) (fleet.Device, error)
}

// Catalog is the part of the hub's API the apps pages use: a Hub that has it shows them.
type Catalog interface {
	ListApps(ctx context.Context, q api.AppQuery) ([]api.App, error)
	App(ctx context.Context, id string) (api.App, error)
	AppAudit(ctx context.Context, appID, version string, limit int) ([]api.AuditEntry, error)
}

// Presences is the part of the hub's API the device page's presence history uses: a Hub that
// has it shows each ended session and why it ended.
type Presences interface {
	Presence(ctx context.Context, id string, limit int) (api.Presence, error)
}

// Logs is the part of the hub's API the device page's log tail uses: a Hub that has it shows
// the lines the kiosk streamed, live.
type Logs interface {
	DeviceLog(ctx context.Context, id string, after uint64) (api.DeviceLog, error)
}

var (
	_ Hub       = (*api.Client)(nil)
	_ Catalog   = (*api.Client)(nil)
	_ Presences = (*api.Client)(nil)
	_ Logs      = (*api.Client)(nil)
)

// ErrNoHub is returned by New without a Hub or a Login.
var ErrNoHub = errors.New("web: no hub client")

// Config configures the console: Login (staff log in) or Hub (setup mode), not both.
type Config struct {
	// Login lets staff log in through the hub's OpenID Provider and act with their own tokens.
	Login *Login
	// Hub, without Login, is setup mode: every visitor acts with Hub's token.
	Hub Hub
	// SessionIdle ends a session unused this long (default 12h); SessionMax any session this
	// old (default 7 days).
	SessionIdle, SessionMax time.Duration
	Log                     *slog.Logger     // nil: discard
	Location                *time.Location   // times are shown in this zone; nil: UTC
	Refresh                 time.Duration    // how often pages refresh their data; 0: 5s
	Timeout                 time.Duration    // per call to the hub; 0: 10s
	Now                     func() time.Time // nil: time.Now
	// SecureCookies marks cookies Secure; set it when the console is served over HTTPS.
	SecureCookies bool
}

// Server serves the console's pages.
type Server struct {
	cfg      Config
	pages    map[string]*template.Template
	mux      *http.ServeMux
	login    *login    // nil in setup mode
	sessions *sessions // of logged-in staff
}

//go:embed templates static
var assets embed.FS

// Cookie names.
const (
	csrfCookieName = "kf_csrf" // see Server.csrfCookie
	langCookie     = "kf_lang"
)

// New builds the console.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.Hub == nil && (cfg.Login == nil || cfg.Login.Hub == nil):
		return nil, ErrNoHub
	case cfg.Hub != nil && cfg.Login != nil:
		return nil, errors.New("web: give Login or Hub (setup mode), not both")
	case cfg.Login != nil && (cfg.Login.ClientID == "" || cfg.Login.URL == ""):
		return nil, errors.New("web: Login needs the client ID and the console's URL")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = 5 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SessionIdle <= 0 {
		cfg.SessionIdle = 12 * time.Hour
	}
	if cfg.SessionMax <= 0 {
		cfg.SessionMax = 7 * 24 * time.Hour
	}
	s := &Server{cfg: cfg, pages: map[string]*template.Template{}, mux: http.NewServeMux(),
		sessions: newSessions(cfg.SessionIdle, cfg.SessionMax, 100000, cfg.Now)}
	if cfg.Login != nil {
		s.login = &login{cfg: *cfg.Login, log: cfg.Log, pending: map[string]pendingLogin{}}
	}
	funcs := template.FuncMap{
		"bytes":  func(n uint64) string { return humanBytes(float64(n)) },
		"pct":    func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) + "%" },
		"json":   prettyJSON,
		"clip":   clip,
		"dur":    func(s int64) string { return (time.Duration(s) * time.Second).String() },
		"esc":    url.PathEscape,
		"reason": func(code string) Reason { return Reason{Code: code} },
		"list":   func(s ...string) []string { return s },
		"card":   func(l *L, r row) cardData { return cardData{l, r} },
		"counts": func(l *L, kind string, rows []count) countsData { return countsData{l, kind, rows} },
		"stars":  func(avg float64) string { return strconv.FormatFloat(avg, 'f', 2, 64) },
		"filt":   func(l *L, f filters) filtersData { return filtersData{l, f} },
		"add1":   func(i int) int { return i + 1 },
		"pctOf":  pctOf,
	}
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	for _, p := range []string{"overview", "devices", "device", "apps", "app", "rollouts", "error", "heat", "funnel", "ratings", "recommendations", "login", "alerts", "audit", "bulk", "bulkjob", "workorder", "workorders"} {
		t, err := template.Must(base.Clone()).ParseFS(assets, "templates/"+p+".html")
		if err != nil {
			return nil, err
		}
		s.pages[p] = t
	}
	static, _ := fs.Sub(assets, "static")
	s.mux.Handle("GET /static/", http.StripPrefix("/static/", cacheFor(time.Hour, http.FileServerFS(static))))
	s.mux.HandleFunc("GET /{$}", s.overview)
	s.mux.HandleFunc("GET /devices", s.devices)
	s.mux.HandleFunc("GET /devices/{id}", s.device)
	s.mux.HandleFunc("POST /devices/{id}/commands", s.sendCommand)
	s.mux.HandleFunc("POST /devices/{id}/desired", s.setDesired)
	s.mux.HandleFunc("POST /devices/{id}/revoke", s.revoke)
	s.mux.HandleFunc("GET /alerts", s.alerts)
	s.mux.HandleFunc("GET /bulk", s.bulk)
	s.mux.HandleFunc("POST /bulk", s.startBulk)
	s.mux.HandleFunc("GET /bulk/{id}", s.bulkJob)
	s.mux.HandleFunc("GET /audit", s.audit)
	s.mux.HandleFunc("POST /alerts/{id}/{action}", s.moveAlert)
	s.mux.HandleFunc("POST /alerts/{id}/silence", s.silenceAlert)
	s.mux.HandleFunc("GET /alerts/{id}/workorder", s.workOrderPage)
	s.mux.HandleFunc("POST /alerts/{id}/workorder", s.createWorkOrder)
	s.mux.HandleFunc("GET /workorders", s.workOrders)
	s.mux.HandleFunc("POST /workorders/{id}/close", s.closeWorkOrder)
	s.mux.HandleFunc("GET /live", s.live)
	s.mux.HandleFunc("GET /login", s.startLogin)
	s.mux.HandleFunc("GET /callback", s.callback)
	s.mux.HandleFunc("POST /logout", s.logout)
	s.mux.HandleFunc("GET /apps", s.apps)
	s.mux.HandleFunc("GET /apps/{id}", s.app)
	s.mux.HandleFunc("GET /rollouts", s.rollouts)
	s.dataRoutes()
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, http.StatusNotFound, s.lang(w, r).T("not-found"), nil)
	})
	return s, nil
}

// ServeHTTP serves the console with security headers on every response. Every page but the
// static files and the login steps needs a logged-in user (setup mode: everybody is one).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'"+s.login.origin()+"; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	switch r.URL.Path {
	case "/login", "/callback", "/logout":
		s.mux.ServeHTTP(w, r)
		return
	}
	if strings.HasPrefix(r.URL.Path, "/static/") {
		s.mux.ServeHTTP(w, r)
		return
	}
	u, ok := s.user(w, r)
	if !ok {
		return
	}
	s.mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, u)))
}

func cacheFor(d time.Duration, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age="+strconv.Itoa(int(d/time.Second)))
		h.ServeHTTP(w, r)
	})
}

type cardData struct {
	L *L
	R row
}

type countsData struct {
	L    *L
	Kind string
	Rows []count
}

// page is what every template gets.
type page struct {
	L       *L
	User    *user // nil on the login pages
	Title   string
	Nav     string // overview, devices, device, apps, rollouts
	CSRF    string
	Refresh int         // milliseconds
	LangURL string      // this page in the other language
	LiveURL string      // where the live-update script fetches this page's live part
	Err     *shownError // a failure to show at the top
	Data    any
}

// shownError is an error from the hub or a form, in words for the page.
type shownError struct {
	Title   string
	Message string
	Fields  []string
}

func (s *Server) lang(w http.ResponseWriter, r *http.Request) *L {
	lang, remember := negotiate(r)
	if remember {
		http.SetCookie(w, &http.Cookie{Name: langCookie, Value: lang, Path: "/", MaxAge: 365 * 24 * 3600,
			HttpOnly: true, Secure: s.cfg.SecureCookies, SameSite: http.SameSiteLaxMode})
	}
	return &L{Lang: lang, Loc: s.cfg.Location, Now: s.cfg.Now()}
}

// render writes a page, or, for the live-update script (?live=1), the page's live part as JSON:
// {"html": "..."}.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, p *page) {
	p.Refresh = int(s.cfg.Refresh / time.Millisecond)
	// The page's own address: a form's POST renders the device page it came from.
	path, q := r.URL.Path, r.URL.Query()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		path, q = r.URL.Path, url.Values{}
		if strings.HasPrefix(path, "/devices/") {
			path = "/devices/" + url.PathEscape(r.PathValue("id"))
		}
	}
	q.Del("live")
	q.Del("lang")
	p.LiveURL = path + "?" + url.Values{"live": {"1"}}.Encode()
	if len(q) > 0 {
		p.LiveURL += "&" + q.Encode()
	}
	q.Set("lang", map[string]string{"en": "zh-CN", "zh-CN": "en"}[p.L.Lang])
	p.LangURL = path + "?" + q.Encode()
	if p.CSRF == "" {
		p.CSRF = s.csrfToken(w, r)
	}
	if p.User == nil {
		p.User, _ = r.Context().Value(userKey{}).(*user)
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Vary", "Accept-Language, Cookie")
	var buf bytes.Buffer
	if r.URL.Query().Get("live") == "1" {
		if err := s.pages[name].ExecuteTemplate(&buf, "live", p); err != nil {
			s.cfg.Log.Error("render live", "page", name, "err", err)
			http.Error(w, "render failed", http.StatusInternalServerError)
			return
		}
		var out bytes.Buffer
		enc := json.NewEncoder(&out)
		enc.SetEscapeHTML(false) // served as JSON with nosniff: no need to escape markup twice
		enc.Encode(struct {
			HTML string `json:"html"`
			Err  string `json:"error,omitempty"`
		}{buf.String(), errText(p.Err)})
		h.Set("Content-Type", "application/json")
		writeBody(w, r, status, out.Bytes())
		return
	}
	if err := s.pages[name].ExecuteTemplate(&buf, "layout.html", p); err != nil {
		s.cfg.Log.Error("render", "page", name, "err", err)
		http.Error(w, "render failed", http.StatusInternalServerError)
		return
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	writeBody(w, r, status, buf.Bytes())
}

// writeBody writes a response, gzipped when it is large and the client takes gzip (pages of a
// big fleet are hundreds of kilobytes of repetitive markup, refreshed every few seconds on a
// phone).
func writeBody(w http.ResponseWriter, r *http.Request, status int, b []byte) {
	w.Header().Add("Vary", "Accept-Encoding")
	if len(b) < 1024 || !acceptsGzip(r.Header.Get("Accept-Encoding")) {
		w.WriteHeader(status)
		w.Write(b)
		return
	}
	w.Header().Set("Content-Encoding", "gzip")
	w.WriteHeader(status)
	zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
	zw.Write(b)
	zw.Close()
}

func acceptsGzip(h string) bool {
	for part := range strings.SplitSeq(h, ",") {
		coding, params, _ := strings.Cut(part, ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			return strings.TrimSpace(params) != "q=0"
		}
	}
	return false
}

func errText(e *shownError) string {
	if e == nil {
		return ""
	}
	return e.Title + ": " + e.Message
}

// fail renders the error page.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, status int, msg string, fields []string) {
	l := s.lang(w, r)
	s.render(w, r, status, "error", &page{L: l, Title: l.T("console"), Err: &shownError{Title: http.StatusText(status), Message: msg, Fields: fields}})
}

// hubError turns an error from the hub into words and the status the console answers with: the
// hub's own 4xx, or 502 when the hub failed or could not be reached.
func (s *Server) hubError(l *L, op string, err error) (*shownError, int) {
	var ae *api.Error
	if errors.As(err, &ae) {
		s.cfg.Log.Warn("hub refused", "op", op, "status", ae.Status, "code", ae.Code, "message", ae.Message)
		status := ae.Status
		if status < 400 || status > 499 {
			status = http.StatusBadGateway
		}
		return &shownError{Title: l.T("hub-error") + " (" + ae.Code + ")", Message: ae.Message, Fields: ae.Fields}, status
	}
	s.cfg.Log.Warn("hub unreachable", "op", op, "err", err)
	return &shownError{Title: l.T("hub-down"), Message: err.Error()}, http.StatusBadGateway
}

func (s *Server) ctx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), s.cfg.Timeout)
}
