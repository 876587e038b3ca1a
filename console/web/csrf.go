package web

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
)

// csrfToken returns the request's double-submit token, setting a fresh cookie when it has none.
// The token is also put in every form; a POST must carry both, equal (OWASP CSRF Prevention Cheat
// Sheet, "Signed Double-Submit Cookie" without the signature: the cookie is HttpOnly, SameSite and
// host-only, so another site can neither read nor set it).
func (s *Server) csrfToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(s.csrfCookie()); err == nil && validToken(c.Value) {
		return c.Value
	}
	b := make([]byte, 32)
	rand.Read(b)
	tok := base64.RawURLEncoding.EncodeToString(b)
	http.SetCookie(w, &http.Cookie{Name: s.csrfCookie(), Value: tok, Path: "/", HttpOnly: true,
		Secure: s.cfg.SecureCookies, SameSite: http.SameSiteStrictMode})
	return tok
}

func validToken(t string) bool {
	b, err := base64.RawURLEncoding.DecodeString(t)
	return err == nil && len(b) == 32
}

// Why a form was refused (see checkCSRF).
var (
	errCSRFOrigin   = errors.New("form posted from another origin")
	errCSRFNoCookie = errors.New("form posted without the console's cookie")
	errCSRFToken    = errors.New("form token does not match this browser's cookie")
)

// checkCSRF checks that a POST carries the cookie's token in its form field "csrf", and, when the
// browser says where it comes from (Origin), that it comes from this console.
func (s *Server) checkCSRF(r *http.Request) error {
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return errCSRFOrigin
		}
	}
	c, err := r.Cookie(s.csrfCookie())
	if err != nil || !validToken(c.Value) {
		return errCSRFNoCookie
	}
	f := r.PostFormValue("csrf")
	if subtle.ConstantTimeCompare([]byte(f), []byte(c.Value)) != 1 {
		return errCSRFToken
	}
	return nil
}

// csrfCookie is the cookie's name: with SecureCookies a __Host- cookie, which no other host
// (a sibling subdomain) can set (RFC 6265bis §4.1.3.2), so the double-submit cannot be forged
// by planting a known cookie.
func (s *Server) csrfCookie() string {
	if s.cfg.SecureCookies {
		return "__Host-" + csrfCookieName
	}
	return csrfCookieName
}
