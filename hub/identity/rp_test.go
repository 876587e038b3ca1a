package identity_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/kioskfleet/kioskfleet/hub/identity"
	"github.com/kioskfleet/kioskfleet/hub/identity/identitytest"
)

// rp is an independent relying party: coreos/go-oidc and golang.org/x/oauth2.
type rp struct {
	prov *oidc.Provider
	conf oauth2.Config
	ver  *oidc.IDTokenVerifier
}

func newRP(t testing.TB, e *identitytest.Env, id, secret string, scopes ...string) *rp {
	t.Helper()
	prov, err := oidc.NewProvider(context.Background(), e.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	return &rp{prov: prov, ver: prov.Verifier(&oidc.Config{ClientID: id}), conf: oauth2.Config{
		ClientID: id, ClientSecret: secret, Endpoint: prov.Endpoint(), RedirectURL: e.Callback,
		Scopes: append([]string{oidc.ScopeOpenID}, scopes...)}}
}

// code runs the browser part of the code flow with PKCE and returns code and verifier.
func (r *rp) code(t *testing.T, b *identitytest.Browser, user, pass string) (code, verifier, nonce string) {
	t.Helper()
	verifier, nonce = oauth2.GenerateVerifier(), "n-"+oauth2.GenerateVerifier()[:8]
	u := r.conf.AuthCodeURL("st-1", oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce))
	cb, err := b.Login(u, user, pass)
	if err != nil {
		t.Fatal(err)
	}
	if cb.Query().Get("state") != "st-1" || cb.Query().Get("code") == "" {
		t.Fatalf("callback %s: want code and state", cb)
	}
	return cb.Query().Get("code"), verifier, nonce
}

func TestRelyingPartyCodePKCERefreshLogout(t *testing.T) {
	e := identitytest.New(t)
	ctx := context.Background()
	r := newRP(t, e, "rp", "rp-secret", oidc.ScopeOfflineAccess, "profile")
	b := e.NewBrowser()
	code, verifier, nonce := r.code(t, b, identitytest.AdminUser, identitytest.AdminPassword)

	tok, err := r.conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := r.ver.Verify(ctx, raw)
	if err != nil {
		t.Fatalf("ID token does not verify: %v", err)
	}
	if idt.Nonce != nonce {
		t.Errorf("nonce %q, want %q", idt.Nonce, nonce)
	}
	var claims struct {
		ACR string   `json:"acr"`
		AMR []string `json:"amr"`
	}
	idt.Claims(&claims)
	if claims.ACR != identity.ACRPassword || len(claims.AMR) != 1 || claims.AMR[0] != "pwd" {
		t.Errorf("acr %q amr %v, want password login", claims.ACR, claims.AMR)
	}
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
		t.Errorf("at_hash: %v", err)
	}

	ui, err := r.prov.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatal(err)
	}
	if ui.Subject != idt.Subject {
		t.Errorf("userinfo sub %q, ID token sub %q", ui.Subject, idt.Subject)
	}
	var uic struct {
		Name  string   `json:"name"`
		Roles []string `json:"roles"`
	}
	ui.Claims(&uic)
	if uic.Name != "Administrator" || len(uic.Roles) != 1 || uic.Roles[0] != identity.RoleAdmin {
		t.Errorf("userinfo claims %+v", uic)
	}

	// Refresh: a new refresh token each time (rotation), and the new access token works.
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token for offline_access")
	}
	tok2, err := r.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err != nil {
		t.Fatal(err)
	}
	if tok2.RefreshToken == "" || tok2.RefreshToken == tok.RefreshToken || tok2.AccessToken == tok.AccessToken {
		t.Fatal("refresh did not rotate the tokens")
	}
	if _, err := r.prov.UserInfo(ctx, oauth2.StaticTokenSource(tok2)); err != nil {
		t.Fatalf("userinfo with refreshed token: %v", err)
	}

	// The hub API accepts the access token with the account's roles.
	req, _ := http.NewRequest(http.MethodGet, e.Issuer+"/api/v1/sites", nil)
	req.Header.Set("Authorization", "Bearer "+tok2.AccessToken)
	pr, err := e.P.Authenticate(req)
	if err != nil {
		t.Fatal(err)
	}
	if !pr.Has(identity.RoleAdmin) || !pr.Has(identity.RoleFieldOps) || pr.ClientID != "rp" {
		t.Errorf("principal %+v", pr)
	}

	// RP-initiated logout: redirect to the registered URI, tokens of the client revoked.
	q := url.Values{"id_token_hint": {raw}, "post_logout_redirect_uri": {e.Callback + "/out"}, "state": {"bye"}}
	p, err := b.Get(e.Issuer + "/oidc/end_session?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(p.Loc, e.Callback+"/out") {
		t.Fatalf("logout redirected to %q (status %d %.200s)", p.Loc, p.Status, p.Body)
	}
	if _, err := r.prov.UserInfo(ctx, oauth2.StaticTokenSource(tok2)); err == nil {
		t.Error("userinfo accepted an access token after logout")
	}
	if _, err := e.P.Authenticate(req); err == nil {
		t.Error("hub API accepted an access token after logout")
	}
	if _, err := r.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok2.RefreshToken}).Token(); err == nil {
		t.Error("refresh token works after logout")
	}
	// The browser session ended too: the next authorization asks for the password again.
	pg, err := b.Get(r.conf.AuthCodeURL("x", oauth2.S256ChallengeOption(verifier)))
	if err != nil || !strings.Contains(pg.Body, `name="password"`) {
		t.Errorf("after logout the login page is not shown: %v", err)
	}
}

func TestDiscoveryAndJWKS(t *testing.T) {
	e := identitytest.New(t)
	ctx := context.Background()
	prov, err := oidc.NewProvider(ctx, e.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		ResponseTypes []string `json:"response_types_supported"`
		Grants        []string `json:"grant_types_supported"`
		Subjects      []string `json:"subject_types_supported"`
		PKCE          []string `json:"code_challenge_methods_supported"`
		Algs          []string `json:"id_token_signing_alg_values_supported"`
		JWKS          string   `json:"jwks_uri"`
	}
	if err := prov.Claims(&d); err != nil {
		t.Fatal(err)
	}
	if strings.Join(d.ResponseTypes, ",") != "code" || strings.Join(d.PKCE, ",") != "S256" ||
		strings.Join(d.Algs, ",") != "ES256" || strings.Join(d.Subjects, ",") != "public,pairwise" {
		t.Errorf("discovery %+v", d)
	}
	for _, g := range d.Grants {
		if g == "implicit" || g == "password" || g == "client_credentials" {
			t.Errorf("grant %q offered", g)
		}
	}
	keys, enc := jwks(t, d.JWKS)
	if len(keys) != 1 || enc == "" {
		t.Fatalf("%d signing keys and encryption key %q, want 1 and one", len(keys), enc)
	}

	// Rotation: a token signed by the old key still verifies; both keys are published until the
	// old key's tokens have expired, then only the new one.
	r := newRP(t, e, "rp", "rp-secret")
	code, verifier, _ := r.code(t, e.NewBrowser(), identitytest.AdminUser, identitytest.AdminPassword)
	tok, err := r.conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.P.RotateKey(ctx); err != nil {
		t.Fatal(err)
	}
	if got, enc2 := jwks(t, d.JWKS); len(got) != 2 || enc2 == enc {
		t.Fatalf("after rotation %d keys published, want 2, and encryption key %q, want a new one", len(got), enc2)
	}
	if _, err := r.ver.Verify(ctx, tok.Extra("id_token").(string)); err != nil {
		t.Errorf("token of the old key rejected after rotation: %v", err)
	}
	code, verifier, _ = r.code(t, e.NewBrowser(), identitytest.AdminUser, identitytest.AdminPassword)
	tok2, err := r.conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := oidc.NewRemoteKeySet(ctx, d.JWKS).VerifySignature(ctx, tok2.Extra("id_token").(string)); err != nil {
		t.Errorf("token of the new key: %v", err)
	}
	e.Clock.Advance(2 * time.Hour) // past ID token life + margin
	if got, _ := jwks(t, d.JWKS); len(got) != 1 || got[0] == keys[0] {
		t.Errorf("old key still published after its tokens expired: %v", got)
	}
}

// jwks returns the IDs of the published signing keys and of the one encryption key.
func jwks(t *testing.T, u string) (sig []string, enc string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
			Alg string `json:"alg"`
			Use string `json:"use"`
			Crv string `json:"crv"`
			D   string `json:"d"`
		} `json:"keys"`
	}
	if err := jsonDecode(resp.Body, &set); err != nil {
		t.Fatal(err)
	}
	for _, k := range set.Keys {
		if k.D != "" {
			t.Fatal("JWKS publishes a private key")
		}
		switch {
		case k.Use == "sig" && k.Alg == "ES256" && k.Crv == "P-256":
			sig = append(sig, k.Kid)
		case k.Use == "enc" && k.Alg == "ECDH-ES" && k.Crv == "P-256" && enc == "":
			enc = k.Kid
		default:
			t.Errorf("key %s: use %s alg %s crv %s (or a second encryption key)", k.Kid, k.Use, k.Alg, k.Crv)
		}
	}
	return sig, enc
}

func TestAutomaticKeyRotation(t *testing.T) {
	e := identitytest.New(t, func(c *identity.Config) { c.KeyRotation = 24 * time.Hour })
	first, firstEnc := jwks(t, e.Issuer+"/oidc/keys")
	e.Clock.Advance(25 * time.Hour)
	// The next signature (here: discovery needs none, so ask for a token) rotates the key.
	r := newRP(t, e, "rp", "rp-secret")
	code, verifier, _ := r.code(t, e.NewBrowser(), identitytest.AdminUser, identitytest.AdminPassword)
	tok, err := r.conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	keys, enc := jwks(t, e.Issuer+"/oidc/keys")
	if len(keys) != 2 || keys[1] != first[0] || enc == firstEnc {
		t.Fatalf("after rotation: %v and %s (before %v and %s)", keys, enc, first, firstEnc)
	}
	hdr := strings.SplitN(tok.Extra("id_token").(string), ".", 2)[0]
	if raw, _ := base64.RawURLEncoding.DecodeString(hdr); !strings.Contains(string(raw), keys[0]) {
		t.Errorf("ID token not signed with the new key: %s", raw)
	}
}
