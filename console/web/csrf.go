package web

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
)

// csrfToken returns the request's double-submit token, setting a fresh cookie when it has none.
// The token is also put in every form; a POST must carry both, equal (OWASP CSRF Prevention Cheat
// Sheet, "Signed Double-Submit Cookie" without the signature: the cookie is HttpOnly, SameSite and
// host-only, so another site can neither read nor set it).
func (s *Server) csrfToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(csrfCookie); err == nil && validToken(c.Value) {
		return c.Value
	}
	b := make([]byte, 32)
	rand.Read(b)
	tok := base64.RawURLEncoding.EncodeToString(b)
	http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: tok, Path: "/", HttpOnly: true,
		Secure: s.cfg.SecureCookies, SameSite: http.SameSiteStrictMode})
	return tok
}

func validToken(t string) bool {
	b, err := base64.RawURLEncoding.DecodeString(t)
	return err == nil && len(b) == 32
}

// checkCSRF reports whether a POST carries the cookie's token in its form field "csrf", and,
// when the browser says where it comes from (Origin), that it comes from this console.
func checkCSRF(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return false
		}
	}
	c, err := r.Cookie(csrfCookie)
	if err != nil || !validToken(c.Value) {
		return false
	}
	f := r.PostFormValue("csrf")
	return subtle.ConstantTimeCompare([]byte(f), []byte(c.Value)) == 1
}
