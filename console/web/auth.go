package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// user is who a request acts as: a logged-in staff member, or (setup mode) everybody with the
// shared token.
type user struct {
	Me    api.Me // who, with roles and region scope (setup mode: the shared token's)
	Setup bool   // setup mode: the shared token, for first setup only
	hub   Hub
	sess  *session
}

// Admin reports whether the user has the admin role.
func (u *user) Admin() bool { return u.Setup || slices.Contains(u.Me.Roles, "admin") }

// Scope shows the user's region scope: its prefixes, or "" for the whole country.
func (u *user) Scope() string { return strings.Join(u.Me.Regions, ", ") }

type userKey struct{}

// hub is the hub's API as the request's user: with their own token.
func (s *Server) hub(r *http.Request) Hub {
	if u, ok := r.Context().Value(userKey{}).(*user); ok {
		return u.hub
	}
	return nil // ServeHTTP puts a user in every request that reaches a handler calling the hub
}

// user finds who a request acts as. Without a live session it answers the request itself: the
// login page for the console's front page, a redirect to the login for a page, 401 for the
// live-update script and forms; and returns false.
func (s *Server) user(w http.ResponseWriter, r *http.Request) (*user, bool) {
	ctx, cancel := s.ctx(r)
	u := s.sessionUser(ctx, r)
	cancel()
	if u != nil {
		return u, true
	}
	l := s.lang(w, r)
	switch {
	case r.Method == http.MethodGet && r.URL.Query().Get("live") == "1", r.Method != http.MethodGet && r.Method != http.MethodHead,
		websocketUpgrade(r):
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusUnauthorized)
		json.NewEncoder(w).Encode(map[string]string{"error": l.T("logged-out")})
	case r.URL.Path == "/":
		s.render(w, r, http.StatusOK, "login", &page{L: l, Title: l.T("login")})
	default:
		http.Redirect(w, r, "/login?"+url.Values{"next": {r.URL.RequestURI()}}.Encode(), http.StatusSeeOther)
	}
	return nil, false
}

// sessionUser returns the user of r's session, with a fresh access token, or nil without a
// live session (setup mode: the shared token's user).
func (s *Server) sessionUser(ctx context.Context, r *http.Request) *user {
	if s.login == nil {
		return &user{Setup: true, hub: s.cfg.Hub, Me: api.Me{Subject: "setup", Roles: []string{"admin"}}}
	}
	c, err := r.Cookie(s.sessionCookie())
	if err != nil {
		return nil
	}
	sess := s.sessions.get(c.Value)
	if sess == nil {
		return nil
	}
	tok, err := s.login.fresh(ctx, sess)
	if err != nil {
		s.cfg.Log.Info("session ended: its token could not be refreshed", "user", sess.me.Username, "err", err)
		s.sessions.remove(sess)
		return nil
	}
	return &user{Me: sess.me, hub: s.login.client(tok), sess: sess}
}

func websocketUpgrade(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// startLogin sends the browser to the hub's login page: GET /login?next=PATH.
func (s *Server) startLogin(w http.ResponseWriter, r *http.Request) {
	l := s.lang(w, r)
	if s.login == nil {
		http.Redirect(w, r, "/", http.StatusSeeOther) // setup mode: nobody logs in
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	if err := s.login.setup(ctx); err != nil {
		e, status := s.hubError(l, "discovery", err)
		s.render(w, r, status, "login", &page{L: l, Title: l.T("login"), Err: e})
		return
	}
	to, binding := s.login.start(localPath(r.URL.Query().Get("next")), s.cfg.Now())
	http.SetCookie(w, &http.Cookie{Name: s.loginCookie(), Value: binding, Path: "/", MaxAge: loginCookieTTL,
		HttpOnly: true, Secure: s.cfg.SecureCookies, SameSite: http.SameSiteLaxMode})
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// loginCookie binds a login to the browser that started it (RFC 6749 §10.12: the state alone
// does not stop an attacker from finishing their own login in a victim's browser).
func (s *Server) loginCookie() string {
	if s.cfg.SecureCookies {
		return "__Host-kf_login"
	}
	return "kf_login"
}

// callback is where the hub sends the browser back with a code: GET /callback?code=&state=.
func (s *Server) callback(w http.ResponseWriter, r *http.Request) {
	l := s.lang(w, r)
	q := r.URL.Query()
	fail := func(status int, msg string) {
		s.render(w, r, status, "login", &page{L: l, Title: l.T("login"), Err: &shownError{Title: l.T("login-failed"), Message: msg}})
	}
	if s.login == nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: s.loginCookie(), Path: "/", MaxAge: -1, HttpOnly: true, Secure: s.cfg.SecureCookies,
		SameSite: http.SameSiteLaxMode})
	if e := q.Get("error"); e != "" { // RFC 6749 §4.1.2.1
		s.cfg.Log.Info("login refused by the hub", "error", e, "description", q.Get("error_description"))
		fail(http.StatusForbidden, clip(e+": "+q.Get("error_description"), 300))
		return
	}
	binding := ""
	if c, err := r.Cookie(s.loginCookie()); err == nil {
		binding = c.Value
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	sess, next, err := s.login.finish(ctx, q.Get("state"), q.Get("code"), binding)
	switch {
	case errors.Is(err, errNoRole):
		fail(http.StatusForbidden, l.T("no-role"))
		return
	case errors.Is(err, errLoginUnknown), errors.Is(err, errLoginBrowser):
		s.cfg.Log.Warn("login callback refused", "err", err)
		fail(http.StatusBadRequest, l.T("login-stale"))
		return
	case err != nil:
		s.cfg.Log.Warn("login failed", "err", err)
		fail(http.StatusBadGateway, err.Error())
		return
	}
	s.setSessionCookie(w, s.sessions.add(sess), 0)
	s.cfg.Log.Info("staff logged in", "user", sess.me.Username, "roles", sess.me.Roles, "regions", sess.me.Regions)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// logout ends the session here and at the hub: POST /logout (with the CSRF token).
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	l := s.lang(w, r)
	if !s.form(w, r, l) {
		return
	}
	if s.login == nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	to := "/"
	if c, err := r.Cookie(s.sessionCookie()); err == nil {
		if sess := s.sessions.get(c.Value); sess != nil {
			s.sessions.remove(sess)
			ctx, cancel := s.ctx(r)
			sess.mu.Lock()
			s.login.revoke(ctx, sess.tok.RefreshToken)
			sess.mu.Unlock()
			cancel()
			to = s.login.endSessionURL(sess.idToken)
			s.cfg.Log.Info("staff logged out", "user", sess.me.Username)
		}
	}
	s.setSessionCookie(w, "", -1)
	http.Redirect(w, r, to, http.StatusSeeOther)
}
