package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/zitadel/oidc/v3/pkg/client/rp"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"golang.org/x/oauth2"

	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// Login makes the console a relying party of the hub's OpenID Provider: staff log in on the
// hub's login page (authorization code flow with PKCE, OpenID Connect Core §3.1, RFC 7636 S256)
// and the console acts for each with the access token issued to them, for the fleet API (RFC 8707
// resource indicator), so that the hub enforces their roles and region scope.
type Login struct {
	// Hub is the hub: its OpenID Provider, and its API called with each session's token (the
	// client's own Token is not used).
	Hub *api.Client
	// ClientID and ClientSecret are the console's registration at the provider (the built-in
	// confidential client fleet-console; its secret is in the hub's initial-credentials).
	ClientID, ClientSecret string
	// URL is the console's base URL as browsers reach it: the provider sends them back to
	// URL/callback, which must be the client's registered redirect URI (fleet-hub --console-url).
	URL string
}

// Roles that may use the console.
var consoleRoles = []string{"admin", "fieldops"}

// Session limits.
const (
	refreshBefore  = time.Minute      // an access token this close to expiry is refreshed first
	pendingTTL     = 10 * time.Minute // a login started and not finished is forgotten after this
	pendingMost    = 10000            // logins started and not finished, held at most
	loginCookieTTL = int(pendingTTL / time.Second)
)

// login is the console's side of the authorization code flow.
type login struct {
	cfg Login
	log interface {
		Info(string, ...any)
		Warn(string, ...any)
	}

	mu       sync.Mutex
	disc     *api.Discovery // read once, on the first login
	conf     oauth2.Config
	verifier *rp.IDTokenVerifier
	pending  map[string]pendingLogin // by state
}

// pendingLogin is a login sent to the provider and not yet back.
type pendingLogin struct {
	verifier string   // PKCE code verifier (RFC 7636 §4.1)
	nonce    string   // OpenID Connect Core §3.1.2.1
	binding  [32]byte // SHA-256 of the login cookie that started it: the same browser must finish it
	next     string   // where to go afterwards
	at       time.Time
}

func randomString() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// setup reads the provider's configuration on first use.
func (l *login) setup(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.disc != nil {
		return nil
	}
	d, err := l.cfg.Hub.Discover(ctx)
	if err != nil {
		return err
	}
	l.disc = &d
	l.conf = oauth2.Config{ClientID: l.cfg.ClientID, ClientSecret: l.cfg.ClientSecret,
		Endpoint:    oauth2.Endpoint{AuthURL: d.AuthorizationEndpoint, TokenURL: d.TokenEndpoint, AuthStyle: oauth2.AuthStyleInHeader},
		RedirectURL: strings.TrimRight(l.cfg.URL, "/") + "/callback",
		// offline_access: a refresh token, so that a shift is not cut every 15 minutes.
		Scopes: []string{oidc.ScopeOpenID, oidc.ScopeProfile, oidc.ScopeOfflineAccess}}
	l.verifier = rp.NewIDTokenVerifier(d.Issuer, l.cfg.ClientID, rp.NewRemoteKeySet(l.cfg.Hub.HTTPClient(), d.JWKSURI))
	return nil
}

// discovery returns the provider's configuration as read on the first login (zero before).
func (l *login) discovery() api.Discovery {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.disc == nil {
		return api.Discovery{}
	}
	return *l.disc
}

// oauthCtx makes golang.org/x/oauth2 call the hub through the hub client's HTTP client.
func (l *login) oauthCtx(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, l.cfg.Hub.HTTPClient())
}

// start records a new login and returns where to send the browser and the binding cookie's value.
func (l *login) start(next string, now time.Time) (authURL, cookie string) {
	p := pendingLogin{verifier: oauth2.GenerateVerifier(), nonce: randomString(), next: next, at: now}
	cookie = randomString()
	p.binding = sha256.Sum256([]byte(cookie))
	state := randomString()
	l.mu.Lock()
	for s, o := range l.pending {
		if now.Sub(o.at) > pendingTTL {
			delete(l.pending, s)
		}
	}
	if len(l.pending) >= pendingMost { // anyone may start logins: forget the oldest, not the newest
		var oldest string
		for s, o := range l.pending {
			if oldest == "" || o.at.Before(l.pending[oldest].at) {
				oldest = s
			}
		}
		delete(l.pending, oldest)
	}
	l.pending[state] = p
	conf, issuer := l.conf, l.disc.Issuer
	l.mu.Unlock()
	authURL = conf.AuthCodeURL(state, oauth2.S256ChallengeOption(p.verifier),
		oauth2.SetAuthURLParam("nonce", p.nonce),
		// RFC 8707 §2: the token is for the fleet API, which refuses tokens for anything else.
		oauth2.SetAuthURLParam("resource", api.FleetResource(issuer)))
	return authURL, cookie
}

// Why a callback is refused.
var (
	errLoginUnknown = errors.New("this login was not started here, has expired, or was finished already")
	errLoginBrowser = errors.New("this login was started in another browser")
	errNoRole       = errors.New("your account has no role that may use the fleet console (fieldops or admin)")
)

// finish completes a login: the state must be one this console started in this browser; the code
// is exchanged (with the PKCE verifier), the ID token verified (signature, issuer, audience,
// expiry, nonce), and the hub asked who the token speaks for. It returns the new session and
// where to go next.
func (l *login) finish(ctx context.Context, state, code, cookie string) (*session, string, error) {
	l.mu.Lock()
	p, ok := l.pending[state]
	if ok {
		delete(l.pending, state) // one use, whatever happens next
	}
	conf, v := l.conf, l.verifier
	l.mu.Unlock()
	if !ok || time.Since(p.at) > pendingTTL {
		return nil, "", errLoginUnknown
	}
	b := sha256.Sum256([]byte(cookie))
	if subtle.ConstantTimeCompare(b[:], p.binding[:]) != 1 {
		return nil, "", errLoginBrowser
	}
	tok, err := conf.Exchange(l.oauthCtx(ctx), code, oauth2.VerifierOption(p.verifier))
	if err != nil {
		return nil, "", fmt.Errorf("token exchange: %w", err)
	}
	idToken, _ := tok.Extra("id_token").(string)
	nv := *v
	nv.Nonce = func(context.Context) string { return p.nonce }
	if _, err := rp.VerifyIDToken[*oidc.IDTokenClaims](ctx, idToken, &nv); err != nil {
		return nil, "", fmt.Errorf("id token: %w", err)
	}
	s := &session{tok: tok, idToken: idToken}
	me, err := l.client(tok.AccessToken).Me(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("who am I: %w", err)
	}
	s.me = me
	if !slices.ContainsFunc(me.Roles, func(r string) bool { return slices.Contains(consoleRoles, r) }) {
		l.revoke(ctx, tok.RefreshToken)
		return nil, "", errNoRole
	}
	return s, p.next, nil
}

// client is the hub's API with an access token.
func (l *login) client(token string) *api.Client {
	return &api.Client{BaseURL: l.cfg.Hub.BaseURL, Token: token, HTTP: l.cfg.Hub.HTTP}
}

// fresh returns the session's access token, refreshed first when it expires within
// refreshBefore (the refresh token rotates: one refresh at a time per session).
func (l *login) fresh(ctx context.Context, s *session) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Until(s.tok.Expiry) > refreshBefore {
		return s.tok.AccessToken, nil
	}
	if s.tok.RefreshToken == "" {
		return "", errors.New("session expired and cannot be refreshed")
	}
	l.mu.Lock()
	conf := l.conf
	l.mu.Unlock()
	tok, err := conf.TokenSource(l.oauthCtx(ctx), &oauth2.Token{RefreshToken: s.tok.RefreshToken}).Token()
	if err != nil {
		return "", fmt.Errorf("refresh: %w", err)
	}
	if tok.RefreshToken == "" {
		tok.RefreshToken = s.tok.RefreshToken
	}
	s.tok = tok
	return tok.AccessToken, nil
}

// revoke revokes a refresh token at the provider (RFC 7009), which ends its whole grant.
func (l *login) revoke(ctx context.Context, refresh string) {
	d := l.discovery()
	if refresh == "" || d.RevocationEndpoint == "" {
		return
	}
	form := url.Values{"token": {refresh}, "token_type_hint": {"refresh_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.RevocationEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(l.cfg.ClientID), url.QueryEscape(l.cfg.ClientSecret)) // RFC 6749 §2.3.1
	resp, err := l.cfg.Hub.HTTPClient().Do(req)
	if err != nil {
		l.log.Warn("revoking a refresh token failed", "err", err)
		return
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		l.log.Warn("revoking a refresh token refused", "status", resp.StatusCode)
	}
}

// origin is " " and the provider's origin once it is known, for the pages' form-action: the
// logout form is answered with a redirect to the provider's end-session endpoint, which the
// browser follows only if form-action allows it (CSP Level 3 §6.4.1). "" before the first login
// and in setup mode (l is nil).
func (l *login) origin() string {
	if l == nil {
		return ""
	}
	d := l.discovery()
	if d.EndSessionEndpoint == "" {
		return ""
	}
	u, err := url.Parse(d.EndSessionEndpoint)
	if err != nil || u.Host == "" {
		return ""
	}
	return " " + u.Scheme + "://" + u.Host
}

// endSessionURL is where the browser goes at logout: the provider's end-session endpoint
// (OpenID Connect RP-Initiated Logout 1.0 §2), which ends the login there too and sends it back
// to the console.
func (l *login) endSessionURL(idToken string) string {
	d := l.discovery()
	if d.EndSessionEndpoint == "" {
		return "/"
	}
	q := url.Values{"client_id": {l.cfg.ClientID}, "post_logout_redirect_uri": {strings.TrimRight(l.cfg.URL, "/") + "/"}}
	if idToken != "" {
		q.Set("id_token_hint", idToken)
	}
	return d.EndSessionEndpoint + "?" + q.Encode()
}

// localPath keeps next if it is a path of this console, else "/": the login must not become an
// open redirect.
func localPath(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Host != "" || u.Scheme != "" {
		return "/"
	}
	return next
}
