package web

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// session is a staff member's login to the console. The browser holds only its random ID (in
// the session cookie); the tokens the hub issued stay here, in the console's memory.
type session struct {
	key     [32]byte // SHA-256 of the cookie's value
	mu      sync.Mutex
	tok     *oauth2.Token // access and refresh token; refreshed before the access token expires
	idToken string        // for logout at the hub (id_token_hint)
	me      api.Me        // who, with roles and region scope, as the hub's API says
	created time.Time
	used    time.Time
	ended   chan struct{} // closed when the session ends by logout or refresh failure: live pages close
}

// sessions holds the console's sessions. They live in memory: a restarted console asks its
// users to log in again (the hub's own login session usually lets them straight through).
type sessions struct {
	mu   sync.Mutex
	m    map[[32]byte]*session
	idle time.Duration // a session unused this long ends
	max  time.Duration // and any session this old
	most int           // sessions held at most: the oldest unused one gives way
	now  func() time.Time
}

func newSessions(idle, max time.Duration, most int, now func() time.Time) *sessions {
	return &sessions{m: map[[32]byte]*session{}, idle: idle, max: max, most: most, now: now}
}

// add stores s under a new random ID and returns the ID, the cookie's value.
func (ss *sessions) add(s *session) string {
	b := make([]byte, 32)
	rand.Read(b)
	id := base64.RawURLEncoding.EncodeToString(b)
	s.key = sha256.Sum256([]byte(id))
	now := ss.now()
	s.created, s.used, s.ended = now, now, make(chan struct{})
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.sweep(now)
	if len(ss.m) >= ss.most {
		var oldest *session
		for _, o := range ss.m {
			if oldest == nil || o.used.Before(oldest.used) {
				oldest = o
			}
		}
		delete(ss.m, oldest.key)
	}
	ss.m[s.key] = s
	return id
}

// get returns the live session of a cookie's value, marking it used.
func (ss *sessions) get(id string) *session {
	key := sha256.Sum256([]byte(id))
	now := ss.now()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.m[key]
	if s == nil {
		return nil
	}
	if ss.expired(s, now) {
		delete(ss.m, key)
		return nil
	}
	s.used = now
	return s
}

// remove ends a session.
func (ss *sessions) remove(s *session) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.m[s.key] == s {
		delete(ss.m, s.key)
		close(s.ended)
	}
}

// count returns the number of sessions held.
func (ss *sessions) count() int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return len(ss.m)
}

func (ss *sessions) expired(s *session, now time.Time) bool {
	return now.Sub(s.used) > ss.idle || now.Sub(s.created) > ss.max
}

// sweep drops the expired sessions; ss.mu is held.
func (ss *sessions) sweep(now time.Time) {
	for k, s := range ss.m {
		if ss.expired(s, now) {
			delete(ss.m, k)
		}
	}
}

// sessionCookie is the session cookie's name: with SecureCookies a __Host- cookie (see
// csrfCookie).
func (s *Server) sessionCookie() string {
	if s.cfg.SecureCookies {
		return "__Host-kf_session"
	}
	return "kf_session"
}

// setSessionCookie gives the browser a session's ID: HttpOnly, and SameSite=Lax so that it comes
// along on the navigation back from the hub's login page (a form of the console still needs its
// CSRF token).
func (s *Server) setSessionCookie(w http.ResponseWriter, id string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: s.sessionCookie(), Value: id, Path: "/", MaxAge: maxAge, HttpOnly: true,
		Secure: s.cfg.SecureCookies, SameSite: http.SameSiteLaxMode})
}
