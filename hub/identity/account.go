package identity

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"time"

	pagefs "github.com/kioskfleet/kioskfleet/hub/identity/pages"
	"github.com/kioskfleet/kioskfleet/hub/store"
)

// The citizen's account pages (/oidc/me): what she logs in with and where, managed by herself,
// in zh-CN or English and normal or large type. Every change is a form posted with the page's
// token to /oidc/me/{action}.

// accountView is the account page's data.
type accountView struct {
	Passkeys []passkeyView
	Phone    string // masked
	RealName bool   // an ID card is bound
	Consents []consentView
	Links    []linkView
	Sessions int // browser sessions besides this one
	Citizen  bool
	Linkable []upstreamButton // upstreams the account may link (URL unused)
}

type passkeyView struct {
	ID, Name, Created, Used string
}

type consentView struct {
	ClientID, Client, Granted string
	Scopes                    []string
}

type linkView struct {
	Connector, Subject, Name, Created string
}

const dateFormat = "2006-01-02 15:04"

// recentLogin is how long after a login the session may add a passkey or delete the account: a
// stolen or forgotten session must not make itself permanent (a passkey of the thief's) or
// destroy the account.
const recentLogin = 10 * time.Minute

// recent reports whether the session's login is recent enough for a sensitive change.
func (p *Provider) recent(s store.BrowserSession) bool { return p.now().Sub(s.AuthTime) <= recentLogin }

// sessionOrLogin returns the browser's session, or shows the login page (to come back to the
// account pages) and reports false.
func (p *Provider) sessionOrLogin(w http.ResponseWriter, r *http.Request) (store.BrowserSession, bool) {
	s, ok := p.browserSession(r)
	if !ok {
		v := p.view(r, "title_login")
		v.Next = nextAccount
		p.loginPage(w, r, v, http.StatusOK)
	}
	return s, ok
}

// serveAccount shows the logged-in citizen's account page: GET /oidc/me.
func (p *Provider) serveAccount(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	s, ok := p.sessionOrLogin(w, r)
	if !ok {
		return
	}
	v := p.view(r, "title_account")
	if err := p.accountPage(r.Context(), s, v); err != nil {
		p.log.Error("account page failed", "err", err)
		v.Error = "err_server"
		p.render(w, "message", http.StatusInternalServerError, v)
		return
	}
	v.CSRF = p.formToken(w, r, "account", sessionKey(s))
	p.render(w, "account", http.StatusOK, v)
}

func (p *Provider) accountPage(ctx context.Context, s store.BrowserSession, v *view) error {
	acct, err := p.st.GetAccount(ctx, s.UserID)
	if err != nil {
		return err
	}
	av := &accountView{}
	if n := p.phoneOf(ctx, acct.ID); n != "" {
		av.Phone = maskPhone(n)
	}
	v.Masked = av.Phone
	if v.Masked == "" {
		v.Masked = acct.Username
	}
	keys, err := p.st.ListPasskeys(ctx, acct.ID)
	if err != nil {
		return err
	}
	for _, k := range keys {
		pv := passkeyView{ID: passkeyID(k), Name: k.Name, Created: k.CreatedAt.Local().Format(dateFormat)}
		if !k.LastUsed.IsZero() {
			pv.Used = k.LastUsed.Local().Format(dateFormat)
		}
		av.Passkeys = append(av.Passkeys, pv)
	}
	av.RealName, av.Citizen = len(acct.IDNumberHash) > 0, acct.Kind == "citizen"
	consents, err := p.st.ListConsents(ctx, acct.ID)
	if err != nil {
		return err
	}
	for _, c := range consents {
		cv := consentView{ClientID: c.ClientID, Client: c.ClientID, Scopes: c.Scopes, Granted: c.GrantedAt.Local().Format(dateFormat)}
		if cl, err := p.client(ctx, c.ClientID); err == nil {
			cv.Client = cl.Name
		}
		av.Consents = append(av.Consents, cv)
	}
	links, err := p.st.ListLinks(ctx, acct.ID)
	if err != nil {
		return err
	}
	for _, l := range links {
		av.Links = append(av.Links, linkView{Connector: l.Connector, Subject: l.Subject, Name: l.Name,
			Created: l.CreatedAt.Local().Format(dateFormat)})
	}
	sessions, err := p.st.ListBrowserSessions(ctx, acct.ID, p.now())
	if err != nil {
		return err
	}
	av.Sessions = len(sessions) - 1
	if av.Citizen {
		for _, u := range p.cfg.Upstreams {
			av.Linkable = append(av.Linkable, upstreamButton{ID: u.ID, Name: u.Name})
		}
	}
	v.Account, v.Passkeys = av, p.wa != nil
	return nil
}

// serveAccountAction does what an account page's form asks: POST /oidc/me/{action}.
func (p *Provider) serveAccountAction(w http.ResponseWriter, r *http.Request) {
	v := p.view(r, "title_account")
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	s, ok := p.browserSession(r)
	if r.ParseForm() != nil || !ok {
		v.Error = "err_session"
		p.render(w, "message", http.StatusUnauthorized, v)
		return
	}
	if err := p.checkForm(r, "account", sessionKey(s)); err != nil {
		p.refuseForm(w, r, v, err)
		return
	}
	ctx := r.Context()
	back := accountPath + "?" + url.Values{"lang": {v.Lang}}.Encode()
	var err error
	switch r.PathValue("action") {
	case "passkey-delete":
		err = p.deletePasskey(ctx, s.UserID, r.PostForm.Get("passkey"))
	case "consent-withdraw":
		err = p.st.DeleteConsent(ctx, s.UserID, r.PostForm.Get("client"))
	case "link": // on to the upstream, after the step-up (upstream.go)
		p.startLink(w, r, v, s)
		return
	case "link-remove":
		err = p.removeLink(ctx, s.UserID, r.PostForm.Get("connector"), r.PostForm.Get("subject"))
	case "card-unbind":
		err = p.st.UnbindIDCard(ctx, s.UserID)
		if err == nil {
			p.log.Info("id card unbound", "account", s.UserID)
		}
	case "sessions-end": // sign out everywhere else
		err = p.st.DeleteBrowserSessions(ctx, s.UserID, s.Hash)
	case "delete":
		if !p.recent(s) {
			v.Error = "err_reauth"
			p.render(w, "message", http.StatusForbidden, v)
			return
		}
		if r.PostForm.Get("confirm") != "yes" {
			v.Error = "err_confirm_delete"
			p.render(w, "message", http.StatusBadRequest, v)
			return
		}
		if err = p.DeleteAccount(ctx, s.UserID); err == nil {
			http.SetCookie(w, &http.Cookie{Name: cookieName, Path: "/oidc/", MaxAge: -1})
			v.Title, v.Done = "title_done", "done_deleted"
			p.render(w, "message", http.StatusOK, v)
			return
		}
	case "logout":
		p.st.DeleteBrowserSession(ctx, s.Hash)
		http.SetCookie(w, &http.Cookie{Name: cookieName, Path: "/oidc/", MaxAge: -1})
		v.Title, v.Done = "title_done", "done_logout"
		p.render(w, "message", http.StatusOK, v)
		return
	default:
		http.NotFound(w, r)
		return
	}
	switch {
	case errors.Is(err, errStaff):
		v.Error = "err_staff_delete"
		p.render(w, "message", http.StatusForbidden, v)
	case errors.Is(err, errLastCredential):
		v.Error = "err_last_credential"
		p.render(w, "message", http.StatusConflict, v)
	case errors.Is(err, store.ErrNotFound):
		v.Error = "err_request"
		p.render(w, "message", http.StatusNotFound, v)
	case err != nil:
		p.log.Error("account change failed", "action", r.PathValue("action"), "err", err)
		v.Error = "err_server"
		p.render(w, "message", http.StatusInternalServerError, v)
	default:
		http.Redirect(w, r, back, http.StatusSeeOther)
	}
}

// errLastCredential marks the removal of an account's last way to log in.
var errLastCredential = errors.New("identity: the account's last way to log in")

// deletePasskey removes one of the account's passkeys, unless it is the last way to log in.
func (p *Provider) deletePasskey(ctx context.Context, accountID, id string) error {
	raw, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil {
		return store.ErrNotFound
	}
	keys, err := p.st.ListPasskeys(ctx, accountID)
	if err != nil {
		return err
	}
	if len(keys) == 1 && p.phoneOf(ctx, accountID) == "" {
		if links, err := p.st.ListLinks(ctx, accountID); err != nil || len(links) == 0 {
			return errLastCredential
		}
	}
	if err := p.st.DeletePasskey(ctx, accountID, raw); err != nil {
		return err
	}
	p.log.Info("passkey removed", "account", accountID)
	return nil
}

// removeLink removes one of the account's upstream identities, unless it is the last way to log in.
func (p *Provider) removeLink(ctx context.Context, accountID, connector, subject string) error {
	links, err := p.st.ListLinks(ctx, accountID)
	if err != nil {
		return err
	}
	keys, err := p.st.ListPasskeys(ctx, accountID)
	if err != nil {
		return err
	}
	if len(links) == 1 && len(keys) == 0 && p.phoneOf(ctx, accountID) == "" {
		return errLastCredential
	}
	return p.st.DeleteLink(ctx, accountID, connector, subject)
}

// errStaff marks a staff account: staff accounts are removed by an administrator, not on the
// account page.
var errStaff = errors.New("identity: a staff account is not deleted by its holder")

// DeleteAccount deletes a citizen's account at her request (PIPL art. 47): the identity store
// removes it with everything it keeps of it (passkeys, phone, links, consents, sessions,
// tokens), then the AccountHooks remove what other rooms keep under it (the link to its
// events' pseudonyms, its cases). A hook that fails is told again by Run until it succeeds.
func (p *Provider) DeleteAccount(ctx context.Context, accountID string) error {
	acct, err := p.st.GetAccount(ctx, accountID)
	if err != nil {
		return err
	}
	if acct.Kind != "citizen" {
		return errStaff
	}
	now := p.now()
	if err := p.st.DeleteAccount(ctx, accountID, now); err != nil {
		return err
	}
	p.log.Info("account deleted", "account", accountID)
	p.finishDeletion(ctx, store.Deletion{AccountID: accountID, DeletedAt: now})
	return nil
}

// finishDeletion tells the hooks of a deletion and forgets it once all of them took it.
func (p *Provider) finishDeletion(ctx context.Context, d store.Deletion) {
	for _, h := range p.cfg.AccountHooks {
		if err := h.AccountDeleted(ctx, d.AccountID, d.DeletedAt); err != nil {
			p.log.Warn("account deletion not carried yet", "account", d.AccountID, "err", err)
			return
		}
	}
	if err := p.st.FinishDeletion(ctx, d.AccountID); err != nil {
		p.log.Warn("account deletion not finished", "account", d.AccountID, "err", err)
	}
}

// retryDeletions tells the hooks again of deletions some hook failed to take.
func (p *Provider) retryDeletions(ctx context.Context) {
	ds, err := p.st.PendingDeletions(ctx)
	if err != nil {
		p.log.Warn("pending deletions unread", "err", err)
		return
	}
	for _, d := range ds {
		p.finishDeletion(ctx, d)
	}
}

// serveAsset serves the pages' script: GET /oidc/assets/citizen.js.
func (p *Provider) serveAsset(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("file") != "citizen.js" {
		http.NotFound(w, r)
		return
	}
	b, err := pagefs.FS.ReadFile("citizen.js")
	if err != nil {
		http.Error(w, "asset missing", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Write(b)
}

// AccountDeleted is told of a deleted account (PIPL art. 47: the citizen deleted it), after the
// identity store removed it, by the rooms that keep data under the account: hub/events (the
// link from the account to its analytics pseudonyms), hub/cases (the citizen's cases). It must
// remove or anonymise what it keeps of the account and be idempotent: a deletion is told again
// (at the provider's next purge round) until every hook has returned nil.
type AccountDeleted interface {
	AccountDeleted(ctx context.Context, accountID string, at time.Time) error
}

// upstreamButton is an upstream identity provider offered on the login and account pages.
type upstreamButton struct {
	ID, Name, URL string
}

// accountExport is what the account holds of the citizen, as she downloads it (PIPL art. 45:
// the right to a copy). Her ID number is given masked: the card itself shows it in full.
type accountExport struct {
	Account struct {
		ID        string    `json:"id"`
		CreatedAt time.Time `json:"created_at"`
	} `json:"account"`
	Phone    string `json:"phone,omitempty"`
	RealName *struct {
		Name     string `json:"name"`
		IDNumber string `json:"id_number_masked"`
	} `json:"real_name,omitempty"`
	Passkeys []passkeyExport `json:"passkeys"`
	Consents []store.Consent `json:"consents"`
	Links    []linkExport    `json:"linked_identities"`
	Sessions []sessionExport `json:"sessions"`
}

type passkeyExport struct {
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	LastUsed  time.Time `json:"last_used,omitzero"`
}

type linkExport struct {
	Connector string    `json:"connector"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

type sessionExport struct {
	Methods []string  `json:"methods"`
	Since   time.Time `json:"since"`
	Expires time.Time `json:"expires"`
	This    bool      `json:"this_browser,omitempty"`
}

// serveExport answers the logged-in citizen's data as a JSON download: GET /oidc/me/export.
func (p *Provider) serveExport(w http.ResponseWriter, r *http.Request) {
	s, ok := p.browserSession(r)
	if !ok {
		http.Redirect(w, r, accountPath, http.StatusSeeOther)
		return
	}
	x, err := p.export(r.Context(), s)
	if err != nil {
		p.log.Error("account export failed", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Disposition", `attachment; filename="my-account.json"`)
	writeJSON(w, http.StatusOK, x)
}

func (p *Provider) export(ctx context.Context, s store.BrowserSession) (*accountExport, error) {
	acct, err := p.st.GetAccount(ctx, s.UserID)
	if err != nil {
		return nil, err
	}
	x := &accountExport{Phone: p.phoneOf(ctx, acct.ID), Passkeys: []passkeyExport{}, Links: []linkExport{}}
	x.Account.ID, x.Account.CreatedAt = acct.ID, acct.CreatedAt
	if len(acct.IDNumberEnc) > 0 {
		card, err := p.IDCardOf(acct)
		if err != nil {
			return nil, err
		}
		x.RealName = &struct {
			Name     string `json:"name"`
			IDNumber string `json:"id_number_masked"`
		}{Name: card.Name, IDNumber: maskIDNumber(card.Number)}
		card.Wipe()
	}
	keys, err := p.st.ListPasskeys(ctx, acct.ID)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		x.Passkeys = append(x.Passkeys, passkeyExport{Name: k.Name, CreatedAt: k.CreatedAt, LastUsed: k.LastUsed})
	}
	if x.Consents, err = p.st.ListConsents(ctx, acct.ID); err != nil {
		return nil, err
	}
	x.Consents = nonNil(x.Consents)
	links, err := p.st.ListLinks(ctx, acct.ID)
	if err != nil {
		return nil, err
	}
	for _, l := range links {
		x.Links = append(x.Links, linkExport{Connector: l.Connector, Name: l.Name, CreatedAt: l.CreatedAt})
	}
	sessions, err := p.st.ListBrowserSessions(ctx, acct.ID, p.now())
	if err != nil {
		return nil, err
	}
	for _, bs := range sessions {
		se := sessionExport{Methods: bs.AMR, Since: bs.AuthTime, Expires: bs.ExpiresAt}
		se.This = string(bs.Hash) == string(s.Hash)
		x.Sessions = append(x.Sessions, se)
	}
	return x, nil
}

// maskIDNumber shows the first 6 (the region) and the last 4 characters of an ID number.
func maskIDNumber(n []byte) string {
	if len(n) != 18 {
		return "******************"
	}
	return string(n[:6]) + "********" + string(n[14:])
}
