package identity

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"

	"github.com/kioskfleet/kioskfleet/hub/identity/connector"
	"github.com/kioskfleet/kioskfleet/hub/store"
)

// Federation: citizens log in with an upstream identity (another OpenID Provider, 微信, 支付宝)
// through a connector (hub/identity/connector). An upstream identity is kept as a link
// (store.Link) from (connector, keyed hash of the upstream subject) to an account:
//
//   - Logging in with an identity that has a link logs into its account. One without creates a
//     new citizen account with the link: an identity is never matched to an existing account by
//     the phone number or email address the upstream asserts, since that would hand the account
//     to whoever controls the upstream's claim.
//   - Linking an identity to an existing account is done from the account page, and only in a
//     session whose login, less than recentLogin ago, used the account's own credential (a
//     passkey or a phone code): a session of an upstream login, a stale session or a stolen
//     cookie of one cannot add a way into the account (stepUpForLink).
//
// The upstream login's state is a one-time ceremony (its ID is the OAuth state), bound to the
// browser's form cookie, so that a callback in another browser (login CSRF) or a replayed one
// is refused before the connector is asked.

// Upstream is an upstream identity provider offered to citizens.
type Upstream struct {
	ID        string // in URLs and links; [a-z0-9_-]
	Name      string // on the login button
	Connector connector.Connector
}

const ceremonyUpstream = "upstream"

// upstreamCeremony is what an upstream login keeps between its two legs.
type upstreamCeremony struct {
	Connector string `json:"connector"`
	Pending   []byte `json:"pending"` // the connector's (state, PKCE verifier, nonce)
	Cookie    []byte `json:"cookie"`  // hash of the browser's form cookie
	AuthReq   string `json:"authReq,omitempty"`
	Next      string `json:"next,omitempty"`
	Lang      string `json:"lang,omitempty"`
	// LinkTo is the account the identity is linked to (from the account page), and Session
	// the browser session that asked, after its step-up.
	LinkTo  string `json:"linkTo,omitempty"`
	Session []byte `json:"session,omitempty"`
}

// Errors of federation.
var (
	errUpstreamAgain = errors.New("identity: upstream login unknown, used or expired")
	errLinkTaken     = errors.New("identity: the upstream identity is linked to an account already")
	errLinkStepUp    = errors.New("identity: linking needs a recent login with the account's own passkey or phone code")
)

func (p *Provider) upstream(id string) (Upstream, bool) {
	i := slices.IndexFunc(p.cfg.Upstreams, func(u Upstream) bool { return u.ID == id })
	if i < 0 {
		return Upstream{}, false
	}
	return p.cfg.Upstreams[i], true
}

// UpstreamCallback is the redirect URI to register at the upstream for connector id.
func UpstreamCallback(issuer, id string) string { return issuer + "/oidc/upstream/" + id + "/callback" }

// upstreamSubject is the upstream subject as links keep it: a keyed hash, so that the store
// does not hold the citizen's WeChat or Alipay ID.
func (s *secrets) upstreamSubject(connectorID, subject string) string {
	return base64.RawURLEncoding.EncodeToString(mac(s.upstream, connectorID, subject))
}

// prepareUpstreams lets connectors fetch what they need (discovery) and reports those that
// cannot, without failing: the upstream may come up later.
func (p *Provider) prepareUpstreams(ctx context.Context) {
	for _, u := range p.cfg.Upstreams {
		if pr, ok := u.Connector.(connector.Preparer); ok {
			if err := pr.Prepare(ctx); err != nil {
				p.log.Warn("upstream identity provider not reachable yet", "connector", u.ID, "err", err)
			}
		}
	}
}

// upstreamButtons are the login page's buttons, one per upstream, each with the page's token.
func (p *Provider) upstreamButtons(v *view) []upstreamButton {
	var bs []upstreamButton
	for _, u := range p.cfg.Upstreams {
		q := url.Values{"id": {v.ID}, "next": {v.Next}, "csrf": {v.CSRF}, "lang": {v.Lang}}
		bs = append(bs, upstreamButton{ID: u.ID, Name: u.Name, URL: "/oidc/upstream/" + u.ID + "/login?" + q.Encode()})
	}
	return bs
}

// serveUpstreamLogin starts a login with an upstream: GET
// /oidc/upstream/{connector}/login?id=&next=&csrf= (the login page's button).
func (p *Provider) serveUpstreamLogin(w http.ResponseWriter, r *http.Request) {
	v := p.view(r, "title_login")
	u, ok := p.upstream(r.PathValue("connector"))
	if !ok {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	if err := p.checkToken(r, q.Get("csrf"), "login", q.Get("id")); err != nil {
		p.refuseForm(w, r, v, err)
		return
	}
	p.beginUpstream(w, r, v, u, upstreamCeremony{AuthReq: q.Get("id"), Next: q.Get("next")})
}

// beginUpstream keeps the ceremony c and sends the browser to the upstream.
func (p *Provider) beginUpstream(w http.ResponseWriter, r *http.Request, v *view, u Upstream, c upstreamCeremony) {
	ctx := r.Context()
	state := randomToken(24)
	authURL, pending, err := u.Connector.Begin(ctx, UpstreamCallback(p.cfg.Issuer, u.ID), state)
	if err == nil {
		c.Connector, c.Pending, c.Cookie, c.Lang = u.ID, pending, p.formCookieHash(r), v.Lang
		var doc []byte
		if doc, err = json.Marshal(c); err == nil {
			err = p.st.PutCeremony(ctx, store.Ceremony{ID: state, Kind: ceremonyUpstream, Doc: doc,
				ExpiresAt: p.now().Add(ceremonyTTL)})
		}
	}
	if err != nil {
		p.log.Error("upstream login could not start", "connector", u.ID, "err", err)
		v.Error = "err_upstream"
		p.render(w, "message", http.StatusBadGateway, v)
		return
	}
	http.Redirect(w, r, authURL, http.StatusSeeOther)
}

// serveUpstreamCallback ends an upstream login: GET /oidc/upstream/{connector}/callback, the
// redirect URI registered at the upstream.
func (p *Provider) serveUpstreamCallback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	v := p.view(r, "title_login")
	u, ok := p.upstream(r.PathValue("connector"))
	if !ok {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	c, err := p.takeUpstreamCeremony(r, u.ID, q.Get("state"))
	if c.Lang != "" {
		v.Lang = c.Lang
	}
	if err != nil {
		p.log.Info("upstream callback refused", "connector", u.ID, "err", err)
		v.Error = "err_upstream_again"
		if errors.Is(err, errFormToken) {
			v.Error = "err_csrf"
		}
		p.render(w, "message", http.StatusBadRequest, v)
		return
	}
	ident, err := u.Connector.Finish(ctx, c.Pending, q)
	if err != nil {
		p.log.Info("upstream login refused", "connector", u.ID, "err", err)
		v.Error = "err_upstream"
		if errors.Is(err, connector.ErrRefused) {
			v.Error = "err_upstream_refused"
		}
		p.render(w, "message", http.StatusUnauthorized, v)
		return
	}
	key := p.sec.upstreamSubject(u.ID, ident.Subject)
	if c.LinkTo != "" {
		p.finishLink(w, r, v, c, u, key, ident)
		return
	}
	acct, err := p.upstreamAccount(ctx, u, key, ident)
	if err != nil {
		p.log.Error("upstream login failed", "connector", u.ID, "err", err)
		v.Error = "err_server"
		p.render(w, "message", http.StatusInternalServerError, v)
		return
	}
	r.URL.RawQuery = url.Values{"lang": {v.Lang}}.Encode() // where the login continues: in her language
	next, err := p.loggedIn(w, r, acct, []string{amrFederated}, c.AuthReq, c.Next)
	p.redirectTo(w, r, next, err)
}

// takeUpstreamCeremony takes the ceremony of the state, made in this browser for connector id.
func (p *Provider) takeUpstreamCeremony(r *http.Request, id, state string) (upstreamCeremony, error) {
	var c upstreamCeremony
	sc, err := p.st.TakeCeremony(r.Context(), state, ceremonyUpstream, p.now())
	if err != nil {
		return c, errUpstreamAgain
	}
	if err := json.Unmarshal(sc.Doc, &c); err != nil || c.Connector != id {
		return c, errUpstreamAgain
	}
	if h := p.formCookieHash(r); h == nil || !bytes.Equal(h, c.Cookie) {
		return c, errFormToken
	}
	return c, nil
}

// upstreamAccount returns the account linked to the upstream identity, creating a citizen
// account for an identity seen for the first time. It never looks at the identity's email or
// phone (see the comment at the top of this file).
func (p *Provider) upstreamAccount(ctx context.Context, u Upstream, key string, ident connector.Identity) (store.Account, error) {
	l, err := p.st.GetLink(ctx, u.ID, key)
	if err == nil {
		return p.st.GetAccount(ctx, l.AccountID)
	}
	if !errors.Is(err, store.ErrNotFound) {
		return store.Account{}, err
	}
	return p.registerCitizen(ctx, u.ID, func(acct store.Account) error {
		return p.st.AddLink(ctx, store.Link{Connector: u.ID, Subject: key, AccountID: acct.ID, Name: ident.Name, CreatedAt: acct.CreatedAt})
	}, func() (store.Account, error) {
		l, err := p.st.GetLink(ctx, u.ID, key)
		if err != nil {
			return store.Account{}, err
		}
		return p.st.GetAccount(ctx, l.AccountID)
	})
}

// stepUpForLink reports whether the session may link an upstream identity to its account: its
// login used the account's own passkey or phone code, recently.
func (p *Provider) stepUpForLink(s store.BrowserSession) bool {
	own := slices.ContainsFunc(s.AMR, func(m string) bool { return m == amrHardware || m == amrSoftware || m == amrSMS })
	return own && p.recent(s)
}

// startLink starts linking an upstream identity to the session's account (the account page's
// "link" action).
func (p *Provider) startLink(w http.ResponseWriter, r *http.Request, v *view, s store.BrowserSession) {
	if !p.stepUpForLink(s) {
		p.log.Info("link refused", "account", s.UserID, "err", errLinkStepUp)
		v.Error = "err_link_stepup"
		p.render(w, "message", http.StatusForbidden, v)
		return
	}
	u, ok := p.upstream(r.PostForm.Get("connector"))
	if !ok {
		http.NotFound(w, r)
		return
	}
	p.beginUpstream(w, r, v, u, upstreamCeremony{LinkTo: s.UserID, Session: s.Hash})
}

// finishLink links the identity to the account that asked, if its session is still the one
// that passed the step-up.
func (p *Provider) finishLink(w http.ResponseWriter, r *http.Request, v *view, c upstreamCeremony, u Upstream, key string, ident connector.Identity) {
	ctx := r.Context()
	s, ok := p.browserSession(r)
	if !ok || !bytes.Equal(s.Hash, c.Session) || s.UserID != c.LinkTo || !p.stepUpForLink(s) {
		p.log.Info("link refused", "connector", u.ID, "err", errLinkStepUp)
		v.Error = "err_link_stepup"
		p.render(w, "message", http.StatusForbidden, v)
		return
	}
	err := p.st.AddLink(ctx, store.Link{Connector: u.ID, Subject: key, AccountID: s.UserID, Name: ident.Name, CreatedAt: p.now()})
	switch {
	case errors.Is(err, store.ErrExists):
		p.log.Info("link refused", "connector", u.ID, "account", s.UserID, "err", errLinkTaken)
		v.Error = "err_link_taken"
		p.render(w, "message", http.StatusConflict, v)
	case err != nil:
		p.log.Error("link failed", "connector", u.ID, "err", err)
		v.Error = "err_server"
		p.render(w, "message", http.StatusInternalServerError, v)
	default:
		p.log.Info("upstream identity linked", "connector", u.ID, "account", s.UserID)
		http.Redirect(w, r, accountPath+"?"+url.Values{"lang": {v.Lang}}.Encode(), http.StatusSeeOther)
	}
}
