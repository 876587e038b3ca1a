package identity

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

// Assurance levels, carried in the acr claim (OIDC Core §2) and offered in discovery's
// acr_values_supported. A service demands one with acr_values: the provider then asks for the
// credential that reaches it (step-up) before it answers. Levels, lowest first:
//
//	1  urn:kioskfleet:acr:phone      a one-time code sent to the citizen's phone number (or:
//	   urn:kioskfleet:acr:federated  an upstream identity, 微信/支付宝/another provider;
//	   urn:kioskfleet:acr:password   a staff password)
//	2  urn:kioskfleet:acr:passkey    a passkey (WebAuthn, user verified): phishing-resistant
//	3  urn:kioskfleet:acr:realname   a passkey, on an account whose holder tapped her ID card at
//	                                 a kiosk (the kiosk's signed assertion proves the read)
//	3  urn:kioskfleet:acr:idcard     the ID card itself at a kiosk (kiosk sessions only)
//
// urn:kioskfleet:acr:device marks a kiosk session approved on the citizen's phone (the device
// grant); it is not asked for with acr_values.
const (
	ACRPhone     = "urn:kioskfleet:acr:phone"
	ACRFederated = "urn:kioskfleet:acr:federated"
	ACRPasskey   = "urn:kioskfleet:acr:passkey"
	ACRRealName  = "urn:kioskfleet:acr:realname"
)

// Levels of assurance (see the ACR constants).
const (
	levelNone = iota
	levelLow
	levelPasskey
	levelRealName
)

// acrLevels orders the acr values a service may ask for.
var acrLevels = map[string]int{ACRPhone: levelLow, ACRFederated: levelLow, ACRPassword: levelLow,
	ACRPasskey: levelPasskey, ACRRealName: levelRealName, ACRIDCard: levelRealName}

// Authentication method references (RFC 8176 §2) of the provider's logins. "fed" (an upstream
// identity provider authenticated the citizen) is not in RFC 8176's registry.
const (
	amrPassword  = "pwd"
	amrSMS       = "sms"
	amrHardware  = "hwk" // a passkey bound to its device
	amrSoftware  = "swk" // a passkey that may be synced between devices (backup eligible)
	amrMFA       = "mfa" // the passkey verified the user (PIN or biometrics): two factors
	amrFederated = "fed"
)

// demanded is the level an authorization request demands with acr_values: the lowest of the
// values this provider knows (any of them will do, OIDC Core §3.1.2.1), none if it names none.
func demanded(a store.AuthRequest) int {
	need := levelNone
	for _, v := range a.ACRValues {
		if l, ok := acrLevels[v]; ok && (need == levelNone || l < need) {
			need = l
		}
	}
	return need
}

// sessionACR says what a login of the account with the methods amr assures, and its acr.
func sessionACR(acct store.Account, amr []string) (level int, acr string) {
	switch {
	case slices.Contains(amr, amrHardware) || slices.Contains(amr, amrSoftware):
		if len(acct.IDNumberHash) > 0 {
			return levelRealName, ACRRealName
		}
		return levelPasskey, ACRPasskey
	case slices.Contains(amr, amrSMS):
		return levelLow, ACRPhone
	case slices.Contains(amr, amrFederated):
		return levelLow, ACRFederated
	case slices.Contains(amr, amrPassword):
		return levelLow, ACRPassword
	}
	return levelNone, ""
}

// sessionLevel is sessionACR of a browser session.
func (p *Provider) sessionLevel(ctx context.Context, s store.BrowserSession) (int, string, error) {
	acct, err := p.st.GetAccount(ctx, s.UserID)
	if err != nil {
		return levelNone, "", err
	}
	l, acr := sessionACR(acct, s.AMR)
	return l, acr, nil
}

// errRequest marks an authorization request that is unknown, finished or expired.
var errRequest = errors.New("identity: authorization request invalid or expired")

// liveRequest returns the authorization request with the ID if it is still open.
func (p *Provider) liveRequest(ctx context.Context, id string) (store.AuthRequest, error) {
	a, err := p.st.GetAuthRequest(ctx, id)
	if err != nil || a.Done || !p.now().Before(a.ExpiresAt) {
		return a, errRequest
	}
	return a, nil
}

// loggedIn is where every successful login at the provider's pages ends, whatever the method
// (password, phone code, passkey, upstream identity): it starts a browser session, never for a
// kiosk's request (a kiosk is shared), and returns where the browser goes next: on with the
// authorization request id, to the device approval or account pages named by next.
func (p *Provider) loggedIn(w http.ResponseWriter, r *http.Request, acct store.Account, amr []string, id, next string) (string, error) {
	ctx := r.Context()
	var a store.AuthRequest
	if id != "" {
		var err error
		if a, err = p.liveRequest(ctx, id); err != nil {
			return "", err
		}
	}
	s := store.BrowserSession{UserID: acct.ID, AMR: amr, AuthTime: p.now()}
	if !a.Kiosk {
		var err error
		if s, err = p.startSession(ctx, w, acct, amr); err != nil {
			return "", err
		}
	}
	if id == "" {
		return p.nextPage(r, next), nil
	}
	return p.authNext(ctx, r, a, s, acct)
}

// Where a login without an authorization request continues (the next parameter).
const nextAccount = "account"

// nextPage is the page a login continues to: the device approval (next "user_code=CODE", or
// none: the code is asked for), or the account pages.
func (p *Provider) nextPage(r *http.Request, next string) string {
	q := url.Values{}
	if l := r.URL.Query().Get("lang"); l == "en" || l == "zh" {
		q.Set("lang", l)
	}
	if next == nextAccount {
		return accountPath + query(q)
	}
	if uc := nextUserCode(next); uc != "" {
		q.Set("user_code", uc)
	}
	return devicePath + query(q)
}

func query(q url.Values) string {
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

// authNext binds the logged-in account to the authorization request and returns where the
// browser goes: back to the login page when the session falls short of the level the request
// demands, to the consent page when the client must ask, else to op's callback, which sends
// the code to the client.
func (p *Provider) authNext(ctx context.Context, r *http.Request, a store.AuthRequest, s store.BrowserSession, acct store.Account) (string, error) {
	c, err := p.client(ctx, a.ClientID)
	if err != nil {
		return "", errRequest
	}
	level, acr := sessionACR(acct, s.AMR)
	if level < demanded(a) {
		return loginPath + "?" + url.Values{"id": {a.ID}, "lang": {p.view(r, "").Lang}}.Encode(), nil
	}
	a.UserID, a.Subject, a.AuthTime, a.AMR, a.ACR = s.UserID, p.sec.subject(c, s.UserID), s.AuthTime, s.AMR, acr
	a.Done = c.FirstParty
	if !a.Done && !slices.Contains(a.Prompt, oidc.PromptConsent) {
		if cs, err := p.st.GetConsent(ctx, acct.ID, c.ID); err == nil && covers(cs.Scopes, a.Scopes) {
			a.Done = true
		}
	}
	if err := p.st.SaveAuthRequest(ctx, a); err != nil {
		return "", err
	}
	switch {
	case a.Done:
		return op.AuthCallbackURL(p.op)(p.issuerCtx(ctx), a.ID), nil
	case slices.Contains(a.Prompt, oidc.PromptNone):
		return p.authErrorURL(ctx, a, "consent_required"), nil
	}
	return consentPath + "?" + url.Values{"id": {a.ID}, "lang": {p.view(r, "").Lang}}.Encode(), nil
}

// covers reports whether every scope asked for was consented to.
func covers(granted, asked []string) bool {
	for _, s := range asked {
		if !slices.Contains(granted, s) {
			return false
		}
	}
	return true
}

// redirectTo answers a form post with a redirect to next, or shows the error page for err.
func (p *Provider) redirectTo(w http.ResponseWriter, r *http.Request, next string, err error) {
	if err != nil {
		v := p.view(r, "title_login")
		v.Error = "err_request"
		status := http.StatusBadRequest
		if !errors.Is(err, errRequest) {
			p.log.Error("login could not continue", "err", err)
			v.Error, status = "err_server", http.StatusInternalServerError
		}
		p.render(w, "message", status, v)
		return
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}
