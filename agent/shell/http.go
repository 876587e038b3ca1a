package shell

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Paths of the shell.
const (
	Prefix    = "/shell/"
	WipedPath = "/shell/wiped" // the page after a wipe: it clears the origin's cookies and storage
	apiPrefix = "/shell/api/"
	cookie    = "kf_shell_session"
	// Header marks the shell's own API calls: a page of another origin cannot send it without a
	// CORS preflight, which the shell never grants.
	Header = "X-Kiosk-Shell"
)

// maxScanBytes bounds a scanned PDF kept for the session.
const maxScanBytes = 32 << 20

func (s *Shell) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /{$}", s.serveRoot)
	m.HandleFunc("GET "+WipedPath, s.serveWiped)
	m.Handle("GET "+Prefix, http.StripPrefix(Prefix, http.FileServerFS(fsys())))
	m.HandleFunc("GET "+Prefix+"voice/{lang}/{prompt}", s.voice.serve)
	api := func(pattern string, h func(w http.ResponseWriter, r *http.Request) (any, error)) {
		method, path, _ := strings.Cut(pattern, " ")
		m.HandleFunc(method+" "+apiPrefix+path, func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get(Header) != "1" {
				http.Error(w, "shell: only the kiosk shell's pages may call its API ("+Header+" header missing)", http.StatusForbidden)
				return
			}
			out, err := h(w, r)
			var he *httpError
			switch {
			case errors.As(err, &he):
				writeJSON(w, he.status, map[string]string{"error": he.msg})
			case err != nil:
				s.log.Error("shell: request failed", "path", r.URL.Path, "err", err)
				writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error"})
			case out != nil:
				writeJSON(w, http.StatusOK, out)
			}
		})
	}
	api("GET state", s.apiState)
	api("POST activity", s.apiActivity)
	api("POST session/guest", s.apiGuest)
	api("POST session/end", s.apiEnd)
	api("POST login/qr", s.apiStartQR)
	api("DELETE login/qr", s.apiStopQR)
	api("GET services", s.apiServices)
	api("GET materials", s.apiMaterials)
	api("GET materials/{id}", s.apiMaterial)
	api("POST scans", s.apiAddScan)
	api("GET cases", s.apiCases)
	api("GET case-events", s.apiCaseEvents)
	api("GET recommendations", s.apiRecommendations)
	api("PUT recommendations/opt-out", s.apiOptOut)
	api("GET guides", s.apiGuides)
	s.mux = m
}

// ServeHTTP serves the shell with headers that keep its pages to themselves: a Content Security
// Policy allowing only the agent's own origin (and its WebSocket), no caching of session data.
func (s *Shell) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	host := r.Host
	if h, p, err := net.SplitHostPort(r.Host); err == nil {
		host = net.JoinHostPort(h, p)
	}
	h.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self' ws://"+host+"; img-src 'self' data:; media-src 'self'; "+
		"style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	if strings.HasPrefix(r.URL.Path, apiPrefix) {
		h.Set("Cache-Control", "no-store")
	}
	s.mux.ServeHTTP(w, r)
}

type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func fail(status int, format string, a ...any) error {
	return &httpError{status, fmt.Sprintf(format, a...)}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// serveRoot sends the browser to the home URL (the homeUrl setting) or the shell.
func (s *Shell) serveRoot(w http.ResponseWriter, r *http.Request) {
	_, home := s.cfg.Settings()
	if home == "" {
		home = Prefix
	}
	http.Redirect(w, r, home, http.StatusFound)
}

// serveWiped is where the shell goes after a wipe: the response clears the origin's cookies,
// storage (localStorage, sessionStorage, IndexedDB, service workers) and cache in the browser
// (Clear-Site-Data, W3C), and the page's script clears what it can itself, then opens the home
// URL in a fresh page.
func (s *Shell) serveWiped(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Clear-Site-Data", `"cache", "cookies", "storage"`)
	w.Header().Set("Cache-Control", "no-store")
	http.SetCookie(w, &http.Cookie{Name: cookie, Value: "", Path: Prefix, MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	_, home := s.cfg.Settings()
	if home == "" {
		home = Prefix
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, `<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>…</title>`+
		`<link rel="stylesheet" href="%sshell.css"><script src="%swiped.js" defer></script></head>`+
		`<body class="wiped" data-home="%s"><main><p class="big">请稍候 · One moment</p></main></body></html>`,
		Prefix, Prefix, htmlAttr(home))
}

func htmlAttr(s string) string {
	return strings.NewReplacer(`&`, "&amp;", `"`, "&quot;", `<`, "&lt;", `>`, "&gt;").Replace(s)
}

// State is what the shell's pages poll: the session (none: the attract screen), the hub, what
// is unavailable and why. It holds no personal data.
type State struct {
	Device      string        `json:"device"`
	Session     *SessionState `json:"session"`
	Hub         HubState      `json:"hub"`
	Unavailable []string      `json:"unavailable"` // idcard-login, qr-login, cases, attach
	Voice       VoiceState    `json:"voice"`
	QR          string        `json:"qr,omitempty"` // a QR login: pending, expired, denied, tap-card (binding)
	Updating    bool          `json:"updating"`     // an app is being switched: no new session (Hold)
	Wipes       int64         `json:"wipes"`        // since the agent started
	LastWipe    *Attestation  `json:"lastWipe,omitempty"`
	Home        string        `json:"home"`
	IdleMs      int64         `json:"idleMs"` // the idle timeout
}

// SessionState is the session as its pages see it.
type SessionState struct {
	ID          string `json:"id"`
	ACR         string `json:"acr"`
	IdleMs      int64  `json:"idleMs"`      // the idle timeout
	RemainingMs int64  `json:"remainingMs"` // until the wipe
	WarnMs      int64  `json:"warnMs"`      // the countdown shows when remainingMs is below this
	Prints      int64  `json:"prints"`
	Scans       int64  `json:"scans"`
}

// HubState says whether the hub answers.
type HubState struct {
	Enrolled  bool `json:"enrolled"`
	Reachable bool `json:"reachable"`
}

// VoiceState says whether voice prompts are there, and why not.
type VoiceState struct {
	Available bool   `json:"available"`
	Reason    string `json:"reason,omitempty"`
}

// Snapshot returns the shell's state, as its pages see it.
func (s *Shell) Snapshot() State {
	idle, home := s.cfg.Settings()
	if home == "" {
		home = Prefix
	}
	if idle <= 0 {
		idle = s.idleTimeout()
	}
	st := State{Device: s.cfg.DeviceID, Unavailable: []string{}, Home: home, IdleMs: idle.Milliseconds()}
	st.Voice.Available, st.Voice.Reason = s.voice.status()
	s.mu.Lock()
	defer s.mu.Unlock()
	st.Hub = HubState{Enrolled: s.cfg.Hub != nil, Reachable: s.cfg.Hub != nil && s.online}
	if !st.Hub.Reachable {
		st.Unavailable = append(st.Unavailable, "idcard-login", "qr-login", "cases")
	}
	if s.cfg.Cases == nil || !st.Hub.Reachable {
		st.Unavailable = append(st.Unavailable, "attach")
	}
	if c := s.cur; c != nil {
		left := idle - s.cfg.Now().Sub(c.last)
		st.Session = &SessionState{ID: c.id, ACR: c.acr, IdleMs: idle.Milliseconds(), RemainingMs: max(0, left.Milliseconds()),
			WarnMs: warnBefore(idle).Milliseconds(), Prints: c.prints, Scans: c.scans}
	}
	if s.qr != nil {
		st.QR = s.qr.state
		if st.QR == QRTapCard && !s.cfg.Now().Before(s.qr.until) {
			st.QR = QRExpired
		}
	}
	st.Updating = s.held > 0
	st.Wipes = s.wipes
	if s.wipes > 0 {
		last := s.last
		st.LastWipe = &last
	}
	return st
}

func (s *Shell) apiState(w http.ResponseWriter, r *http.Request) (any, error) {
	st := s.Snapshot()
	if st.Session != nil {
		http.SetCookie(w, &http.Cookie{Name: cookie, Value: st.Session.ID, Path: Prefix, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	}
	return st, nil
}

func (s *Shell) apiActivity(w http.ResponseWriter, r *http.Request) (any, error) {
	s.touch()
	return s.Snapshot(), nil
}

func (s *Shell) apiGuest(w http.ResponseWriter, r *http.Request) (any, error) {
	if _, err := s.begin(r.Context(), ACRGuest); err != nil {
		if errors.Is(err, ErrUpdating) {
			return nil, fail(http.StatusServiceUnavailable, "%v", err)
		}
		return nil, err
	}
	return s.apiState(w, r)
}

func (s *Shell) apiEnd(w http.ResponseWriter, r *http.Request) (any, error) {
	a, ok := s.End(context.WithoutCancel(r.Context()), "logout")
	return map[string]any{"wiped": ok, "attestation": a}, nil
}

// apiStartQR shows a QR login; with ?purpose=bind, a QR code for real-name binding.
func (s *Shell) apiStartQR(w http.ResponseWriter, r *http.Request) (any, error) {
	bind := false
	switch p := r.URL.Query().Get("purpose"); p {
	case "", "login":
	case "bind":
		bind = true
	default:
		return nil, fail(http.StatusBadRequest, "purpose %q: want login or bind", p)
	}
	dl, code, err := s.startQR(r.Context(), bind)
	if err != nil {
		return nil, fail(http.StatusServiceUnavailable, "QR login is unavailable: %v", err)
	}
	return map[string]any{"userCode": dl.UserCode, "verificationUri": dl.VerificationURI,
		"verificationUriComplete": dl.VerificationURIComplete, "expiresIn": dl.ExpiresIn, "svg": code.SVG()}, nil
}

func (s *Shell) apiStopQR(w http.ResponseWriter, r *http.Request) (any, error) {
	s.stopQR()
	return map[string]bool{"stopped": true}, nil
}

// sessionOf returns the request's session: the current one, if the request's cookie names it.
func (s *Shell) sessionOf(r *http.Request) (*session, error) {
	c, err := r.Cookie(cookie)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil || err != nil || c.Value != s.cur.id {
		return nil, fail(http.StatusUnauthorized, "no citizen session: log in or continue as a guest")
	}
	return s.cur, nil
}

func (s *Shell) apiServices(w http.ResponseWriter, r *http.Request) (any, error) {
	st := s.Snapshot()
	if cur, err := s.sessionOf(r); err == nil {
		s.track(r.Context(), cur, "view", "kiosk.home", nil)
	}
	return map[string]any{"services": s.cfg.Catalog.Services(r.Context(), st), "source": s.cfg.Catalog.Source()}, nil
}

func (s *Shell) apiMaterials(w http.ResponseWriter, r *http.Request) (any, error) {
	cur, err := s.sessionOf(r)
	if err != nil {
		return nil, err
	}
	ms, err := s.cfg.Materials.List(r.Context(), cur.acr != ACRGuest)
	if err != nil {
		return nil, fail(http.StatusServiceUnavailable, "materials unavailable: %v", err)
	}
	certs, err := s.certificates(r.Context(), cur)
	if err != nil {
		s.log.Warn("shell: certificates unavailable", "err", err) // the forms are there all the same
	}
	ms = append(certs, ms...)
	return map[string]any{"materials": ms, "source": s.cfg.Materials.Source()}, nil
}

// apiMaterial serves a material's PDF from the session's spool, fetching it into the spool
// first: what was fetched stays printable for the session while the hub is unreachable.
func (s *Shell) apiMaterial(w http.ResponseWriter, r *http.Request) (any, error) {
	cur, err := s.sessionOf(r)
	if err != nil {
		return nil, err
	}
	id := r.PathValue("id")
	if !validID(id) {
		return nil, fail(http.StatusBadRequest, "material %q: not a material ID", id)
	}
	spool := filepath.Join(cur.dir, "spool", id+".pdf")
	b, err := os.ReadFile(spool)
	if err != nil {
		var cert bool
		if b, cert, err = s.certificate(r.Context(), cur, id); !cert {
			b, err = s.cfg.Materials.Fetch(r.Context(), id, cur.acr != ACRGuest)
		}
		if err != nil {
			return nil, fail(http.StatusNotFound, "material %s: %v", id, err)
		}
		if err := os.MkdirAll(filepath.Dir(spool), 0o700); err != nil {
			return nil, err
		}
		if err := os.WriteFile(spool, b, 0o600); err != nil {
			return nil, err
		}
	}
	sum := sha256.Sum256(b)
	s.mu.Lock()
	if s.cur == cur {
		cur.fetched[hex.EncodeToString(sum[:])] = id
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/pdf")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
	return nil, nil
}

// Scan is a scanned document kept for the session.
type Scan struct {
	ID     string `json:"id"`
	Bytes  int    `json:"bytes"`
	SHA256 string `json:"sha256"`
	Attach string `json:"attach"` // attached, queued, unavailable
}

// apiAddScan keeps a scanned PDF (from Scanner.Scan) in the session's folder, and attaches it
// to the citizen's case when the cases service is there.
func (s *Shell) apiAddScan(w http.ResponseWriter, r *http.Request) (any, error) {
	cur, err := s.sessionOf(r)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxScanBytes))
	if err != nil {
		return nil, fail(http.StatusRequestEntityTooLarge, "a scan of at most %d MiB", maxScanBytes>>20)
	}
	if !strings.HasPrefix(string(b[:min(len(b), 5)]), "%PDF-") {
		return nil, fail(http.StatusBadRequest, "a scan must be a PDF")
	}
	sum := sha256.Sum256(b)
	sc := Scan{ID: "scan-" + newID()[:8], Bytes: len(b), SHA256: hex.EncodeToString(sum[:]), Attach: "unavailable"}
	dir := filepath.Join(cur.dir, "scans")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, sc.ID+".pdf"), b, 0o600); err != nil {
		return nil, err
	}
	if s.cfg.Cases != nil && cur.acr != ACRGuest {
		sc.Attach = "queued"
		actx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		if err := s.cfg.Cases.Attach(actx, cur.id, sc.ID, b); err == nil {
			sc.Attach = "attached"
		}
		cancel()
	}
	clear(b)
	return sc, nil
}

func (s *Shell) apiCases(w http.ResponseWriter, r *http.Request) (any, error) {
	cur, err := s.sessionOf(r)
	if err != nil {
		return nil, err
	}
	if out, ok, err := s.realCases(r.Context(), cur); ok {
		if err == nil {
			s.track(r.Context(), cur, "view", "cases", nil)
		}
		return out, err
	}
	return demoCases(), nil
}

func (s *Shell) apiGuides(w http.ResponseWriter, r *http.Request) (any, error) {
	if gs, ok := s.cfg.Catalog.(GuideSource); ok {
		if gl := gs.Guides(r.Context()); len(gl) > 0 {
			return map[string]any{"demo": false, "guides": gl}, nil
		}
	}
	return demoGuides(), nil
}

func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
