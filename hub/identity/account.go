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
}

type passkeyView struct {
	ID, Name, Created, Used string
}

const dateFormat = "2006-01-02 15:04"

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

// upstreamButton is an upstream identity provider offered on the login page.
type upstreamButton struct {
	ID, Name, URL string
}

func (p *Provider) upstreamButtons(*view) []upstreamButton { return nil }
