package identity

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

// Passkeys (Web Authentication Level 3, https://www.w3.org/TR/webauthn-3/) are the citizen's
// main credential: discoverable credentials (no username typed), user verification required,
// no attestation asked for. A citizen adds them on her account page, several per account, and
// logs in with any. The browser side is pages/citizen.js; the two steps of each ceremony are
// JSON endpoints whose state (the challenge) is a one-time ceremony in the store, bound to the
// browser's form cookie.

// Ceremony kinds.
const (
	ceremonyPasskeyLogin    = "passkey-login"
	ceremonyPasskeyRegister = "passkey-register"
	ceremonyTTL             = 5 * time.Minute
)

// newWebAuthn returns the relying party of the provider's passkeys, or nil when passkeys cannot
// be offered: WebAuthn needs a domain as relying party ID, never an IP address.
func newWebAuthn(cfg Config) (*webauthn.WebAuthn, error) {
	u, _ := url.Parse(cfg.Issuer)
	rpid := cfg.PasskeyRPID
	if rpid == "" {
		if net.ParseIP(u.Hostname()) != nil {
			return nil, nil
		}
		rpid = u.Hostname()
	}
	wc := &webauthn.Config{RPID: rpid, RPDisplayName: "政务服务 Government services",
		RPOrigins:             []string{u.Scheme + "://" + u.Host},
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{ResidentKey: protocol.ResidentKeyRequirementRequired,
			RequireResidentKey: protocol.ResidentKeyRequired(), UserVerification: protocol.VerificationRequired},
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Enforce: true, Timeout: ceremonyTTL, TimeoutUVD: ceremonyTTL},
			Registration: webauthn.TimeoutConfig{Enforce: true, Timeout: ceremonyTTL, TimeoutUVD: ceremonyTTL}},
	}
	for _, o := range cfg.PasskeyOrigins {
		if protocol.IsOpaqueOrigin(o) { // an app's origin, e.g. android:apk-key-hash:...
			wc.RPOpaqueOrigins = append(wc.RPOpaqueOrigins, o)
		} else {
			wc.RPOrigins = append(wc.RPOrigins, o)
		}
	}
	wa, err := webauthn.New(wc)
	if err != nil {
		return nil, fmt.Errorf("%w: passkeys: %w", ErrConfig, err)
	}
	return wa, nil
}

// waUser is an account as the WebAuthn library sees it.
type waUser struct {
	handle  []byte
	name    string
	display string
	creds   []webauthn.Credential
}

func (u *waUser) WebAuthnID() []byte                         { return u.handle }
func (u *waUser) WebAuthnName() string                       { return u.name }
func (u *waUser) WebAuthnDisplayName() string                { return u.display }
func (u *waUser) WebAuthnCredentials() []webauthn.Credential { return u.creds }

// userHandle is the account's WebAuthn user handle: a keyed hash of its ID, so that it tells
// nothing about the account (WebAuthn §14.6.1).
func (p *Provider) userHandle(accountID string) []byte { return mac(p.sec.passkeyUser, accountID) }

// passkeyCeremony is what a ceremony keeps between its two steps.
type passkeyCeremony struct {
	Session webauthn.SessionData `json:"session"`
	Cookie  []byte               `json:"cookie"` // hash of the browser's form cookie
	AuthReq string               `json:"authReq,omitempty"`
	Next    string               `json:"next,omitempty"`
	UserID  string               `json:"userId,omitempty"`
	Name    string               `json:"name,omitempty"`
}

// formCookieHash is the hash of the browser's form cookie, which binds a ceremony to it.
func (p *Provider) formCookieHash(r *http.Request) []byte {
	name, _ := p.formCookieName()
	c, err := r.Cookie(name)
	if err != nil || c.Value == "" {
		return nil
	}
	return sha(c.Value)
}

func (p *Provider) putCeremony(r *http.Request, kind string, c passkeyCeremony) (string, error) {
	doc, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	id := randomToken(24)
	return id, p.st.PutCeremony(r.Context(), store.Ceremony{ID: id, Kind: kind, Doc: doc, ExpiresAt: p.now().Add(ceremonyTTL)})
}

// takeCeremony takes the ceremony named in the request's query, made in this browser.
func (p *Provider) takeCeremony(r *http.Request, kind string) (passkeyCeremony, error) {
	var c passkeyCeremony
	sc, err := p.st.TakeCeremony(r.Context(), r.URL.Query().Get("ceremony"), kind, p.now())
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(sc.Doc, &c); err != nil {
		return c, err
	}
	if h := p.formCookieHash(r); h == nil || !bytes.Equal(h, c.Cookie) {
		return c, errFormToken
	}
	return c, nil
}

// passkeyError answers a passkey endpoint's failure with a message for the page, in its
// language.
func (p *Provider) passkeyError(w http.ResponseWriter, r *http.Request, status int, key string) {
	apiError(w, status, key, translate(p.view(r, "").Lang, key))
}

// readCredential reads the browser's JSON answer to a ceremony.
func readCredential(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return nil, errors.New("content type must be application/json")
	}
	return io.ReadAll(http.MaxBytesReader(w, r.Body, maxForm))
}

// servePasskeyLoginBegin starts a passkey login: POST /oidc/passkey/login/begin with the login
// page's form (id, next, csrf); answers the options for navigator.credentials.get.
func (p *Provider) servePasskeyLoginBegin(w http.ResponseWriter, r *http.Request) {
	if p.wa == nil {
		p.passkeyError(w, r, http.StatusNotFound, "err_passkey_off")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		p.passkeyError(w, r, http.StatusBadRequest, "err_request")
		return
	}
	id := r.PostForm.Get("id")
	if err := p.checkForm(r, "login", id); err != nil {
		p.passkeyError(w, r, http.StatusForbidden, "err_csrf")
		return
	}
	opts, session, err := p.wa.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		p.log.Error("passkey login begin failed", "err", err)
		p.passkeyError(w, r, http.StatusInternalServerError, "err_server")
		return
	}
	cid, err := p.putCeremony(r, ceremonyPasskeyLogin, passkeyCeremony{Session: *session, Cookie: p.formCookieHash(r),
		AuthReq: id, Next: r.PostForm.Get("next")})
	if err != nil {
		p.log.Error("passkey ceremony not stored", "err", err)
		p.passkeyError(w, r, http.StatusInternalServerError, "err_server")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ceremony": cid, "publicKey": opts.Response})
}

// servePasskeyLoginFinish checks the browser's assertion: POST
// /oidc/passkey/login/finish?ceremony=ID with the credential as JSON; answers {"next": URL}.
func (p *Provider) servePasskeyLoginFinish(w http.ResponseWriter, r *http.Request) {
	if p.wa == nil {
		p.passkeyError(w, r, http.StatusNotFound, "err_passkey_off")
		return
	}
	body, err := readCredential(w, r)
	if err != nil {
		p.passkeyError(w, r, http.StatusBadRequest, "err_request")
		return
	}
	c, err := p.takeCeremony(r, ceremonyPasskeyLogin)
	if err != nil {
		p.passkeyError(w, r, http.StatusBadRequest, "err_passkey_again")
		return
	}
	acct, amr, err := p.PasskeyLogin(r, c.Session, body)
	if err != nil {
		p.log.Info("passkey login refused", "err", err)
		p.passkeyError(w, r, http.StatusUnauthorized, "err_passkey")
		return
	}
	next, err := p.loggedIn(w, r, acct, amr, c.AuthReq, c.Next)
	if err != nil {
		p.passkeyError(w, r, http.StatusBadRequest, "err_request")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"next": next})
}

// errClone marks an assertion whose signature counter went back: the credential may have been
// copied (WebAuthn §6.1.1).
var errClone = errors.New("identity: passkey signature counter went back: possibly cloned")

// PasskeyLogin verifies a discoverable credential's assertion (the JSON the browser made) for
// the ceremony's challenge and returns the account and the methods (RFC 8176) it proves.
func (p *Provider) PasskeyLogin(r *http.Request, session webauthn.SessionData, assertion []byte) (store.Account, []string, error) {
	ctx := r.Context()
	parsed, err := protocol.ParseCredentialRequestResponseBytes(assertion)
	if err != nil {
		return store.Account{}, nil, err
	}
	var acct store.Account
	var key store.Passkey
	_, cred, err := p.wa.ValidatePasskeyLogin(func(rawID, handle []byte) (webauthn.User, error) {
		if key, err = p.st.GetPasskey(ctx, rawID); err != nil {
			return nil, err
		}
		if acct, err = p.st.GetAccount(ctx, key.AccountID); err != nil {
			return nil, err
		}
		u := &waUser{handle: p.userHandle(acct.ID)}
		if !bytes.Equal(handle, u.handle) {
			return nil, errors.New("user handle is not the credential's account's")
		}
		var c webauthn.Credential
		if err := json.Unmarshal(key.Credential, &c); err != nil {
			return nil, fmt.Errorf("stored credential: %w", err)
		}
		u.creds = []webauthn.Credential{c}
		return u, nil
	}, session, parsed)
	if err != nil {
		return store.Account{}, nil, err
	}
	if cred.Authenticator.CloneWarning {
		return store.Account{}, nil, errClone
	}
	// The new counter and flags are kept; "last used" only to the minute, so that a busy
	// credential does not write on every login.
	now := p.now()
	var old webauthn.Credential
	_ = json.Unmarshal(key.Credential, &old)
	if old.Authenticator.SignCount != cred.Authenticator.SignCount || old.Flags != cred.Flags || now.Sub(key.LastUsed) > time.Minute {
		doc, err := json.Marshal(cred)
		if err != nil {
			return store.Account{}, nil, err
		}
		if err := p.st.UsePasskey(ctx, key.ID, doc, now); err != nil {
			return store.Account{}, nil, err
		}
	}
	amr := []string{amrHardware}
	if cred.Flags.BackupEligible {
		amr[0] = amrSoftware
	}
	if cred.Flags.UserVerified {
		amr = append(amr, amrMFA)
	}
	return acct, amr, nil
}

// servePasskeyRegisterBegin starts adding a passkey to the logged-in citizen's account: POST
// /oidc/passkey/register/begin with the account page's form (csrf, name).
func (p *Provider) servePasskeyRegisterBegin(w http.ResponseWriter, r *http.Request) {
	if p.wa == nil {
		p.passkeyError(w, r, http.StatusNotFound, "err_passkey_off")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	s, ok := p.browserSession(r)
	if r.ParseForm() != nil || !ok {
		p.passkeyError(w, r, http.StatusUnauthorized, "err_session")
		return
	}
	if err := p.checkForm(r, "account", sessionKey(s)); err != nil {
		p.passkeyError(w, r, http.StatusForbidden, "err_csrf")
		return
	}
	if !p.recent(s) {
		p.passkeyError(w, r, http.StatusForbidden, "err_reauth")
		return
	}
	u, err := p.waUserOf(r, s.UserID)
	if err != nil {
		p.log.Error("passkey registration failed", "err", err)
		p.passkeyError(w, r, http.StatusInternalServerError, "err_server")
		return
	}
	var exclude []protocol.CredentialDescriptor
	for _, c := range u.creds {
		exclude = append(exclude, c.Descriptor())
	}
	opts, session, err := p.wa.BeginRegistration(u, webauthn.WithExclusions(exclude),
		webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirementRequired))
	if err != nil {
		p.log.Error("passkey registration begin failed", "err", err)
		p.passkeyError(w, r, http.StatusInternalServerError, "err_server")
		return
	}
	name := strings.TrimSpace(r.PostForm.Get("name"))
	if len([]rune(name)) > 40 {
		name = string([]rune(name)[:40])
	}
	cid, err := p.putCeremony(r, ceremonyPasskeyRegister, passkeyCeremony{Session: *session, Cookie: p.formCookieHash(r),
		UserID: s.UserID, Name: name})
	if err != nil {
		p.passkeyError(w, r, http.StatusInternalServerError, "err_server")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ceremony": cid, "publicKey": opts.Response})
}

// waUserOf returns the account as the WebAuthn library sees it, with its credentials.
func (p *Provider) waUserOf(r *http.Request, accountID string) (*waUser, error) {
	ctx := r.Context()
	keys, err := p.st.ListPasskeys(ctx, accountID)
	if err != nil {
		return nil, err
	}
	name := accountID
	if n := p.phoneOf(ctx, accountID); n != "" {
		name = maskPhone(n)
	}
	u := &waUser{handle: p.userHandle(accountID), name: name, display: name}
	for _, k := range keys {
		var c webauthn.Credential
		if err := json.Unmarshal(k.Credential, &c); err == nil {
			u.creds = append(u.creds, c)
		}
	}
	return u, nil
}

// servePasskeyRegisterFinish stores the new passkey: POST
// /oidc/passkey/register/finish?ceremony=ID with the credential as JSON.
func (p *Provider) servePasskeyRegisterFinish(w http.ResponseWriter, r *http.Request) {
	if p.wa == nil {
		p.passkeyError(w, r, http.StatusNotFound, "err_passkey_off")
		return
	}
	body, err := readCredential(w, r)
	if err != nil {
		p.passkeyError(w, r, http.StatusBadRequest, "err_request")
		return
	}
	s, ok := p.browserSession(r)
	c, err := p.takeCeremony(r, ceremonyPasskeyRegister)
	if err != nil || !ok || c.UserID != s.UserID {
		p.passkeyError(w, r, http.StatusBadRequest, "err_passkey_again")
		return
	}
	u, err := p.waUserOf(r, s.UserID)
	if err != nil {
		p.passkeyError(w, r, http.StatusInternalServerError, "err_server")
		return
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(body)
	if err != nil {
		p.log.Info("passkey registration refused", "err", err)
		p.passkeyError(w, r, http.StatusBadRequest, "err_passkey")
		return
	}
	cred, err := p.wa.CreateCredential(u, c.Session, parsed)
	if err != nil {
		p.log.Info("passkey registration refused", "err", err)
		p.passkeyError(w, r, http.StatusBadRequest, "err_passkey")
		return
	}
	doc, err := json.Marshal(cred)
	if err != nil {
		p.passkeyError(w, r, http.StatusInternalServerError, "err_server")
		return
	}
	name := c.Name
	if name == "" {
		name = fmt.Sprintf("%s %d", translate(p.view(r, "").Lang, "passkey"), len(u.creds)+1)
	}
	err = p.st.AddPasskey(r.Context(), store.Passkey{ID: cred.ID, AccountID: s.UserID, Name: name, Credential: doc, CreatedAt: p.now()})
	if errors.Is(err, store.ErrExists) {
		p.passkeyError(w, r, http.StatusConflict, "err_passkey_exists")
		return
	}
	if err != nil {
		p.log.Error("passkey not stored", "err", err)
		p.passkeyError(w, r, http.StatusInternalServerError, "err_server")
		return
	}
	p.log.Info("passkey added", "account", s.UserID)
	writeJSON(w, http.StatusOK, map[string]string{"id": base64.RawURLEncoding.EncodeToString(cred.ID), "name": name})
}

// passkeyID is the credential ID of a passkey as pages name it.
func passkeyID(k store.Passkey) string { return base64.RawURLEncoding.EncodeToString(k.ID) }
