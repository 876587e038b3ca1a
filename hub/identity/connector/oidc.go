package connector

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// OIDC is a connector to an OpenID Provider: the authorization code flow with PKCE (S256),
// state and nonce, and an ID token verified with the provider's JWKS (OpenID Connect Core 1.0
// §3.1). The provider's configuration is found by discovery (OpenID Connect Discovery 1.0),
// once, when first needed.
type OIDC struct {
	cfg    Config
	client *http.Client

	mu       sync.Mutex
	provider *oidc.Provider // nil until discovered
}

var (
	_ Connector = (*OIDC)(nil)
	_ Preparer  = (*OIDC)(nil)
)

func newOIDC(c Config, hc *http.Client) *OIDC {
	if len(c.Scopes) == 0 {
		c.Scopes = []string{oidc.ScopeOpenID, "profile"}
	}
	return &OIDC{cfg: c, client: hc}
}

// clientCtx carries the connector's HTTP client to go-oidc and x/oauth2.
func (o *OIDC) clientCtx(ctx context.Context) context.Context {
	return oidc.ClientContext(context.WithValue(ctx, oauth2.HTTPClient, o.client), o.client)
}

// Prepare does the discovery, which also checks the issuer the provider names.
func (o *OIDC) Prepare(ctx context.Context) error {
	_, err := o.discover(ctx)
	return err
}

func (o *OIDC) discover(ctx context.Context) (*oidc.Provider, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.provider != nil {
		return o.provider, nil
	}
	// The key set go-oidc makes keeps the context of discovery to fetch keys later: not the
	// request's, which ends with it.
	p, err := oidc.NewProvider(o.clientCtx(context.WithoutCancel(ctx)), o.cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("%w: discovery of %s: %w", ErrUpstream, o.cfg.Issuer, err)
	}
	o.provider = p
	return p, nil
}

func (o *OIDC) oauth2(p *oidc.Provider, redirectURI string) *oauth2.Config {
	ep := p.Endpoint()
	return &oauth2.Config{ClientID: o.cfg.ClientID, ClientSecret: o.cfg.ClientSecret, Endpoint: ep,
		RedirectURL: redirectURI, Scopes: o.cfg.Scopes}
}

// oidcPending is what Finish needs of a login.
type oidcPending struct {
	State    string `json:"state"`
	Nonce    string `json:"nonce"`
	Verifier string `json:"verifier"`
	Redirect string `json:"redirect"`
}

func (o *OIDC) Begin(ctx context.Context, redirectURI, state string) (string, []byte, error) {
	p, err := o.discover(ctx)
	if err != nil {
		return "", nil, err
	}
	pend := oidcPending{State: state, Nonce: random(24), Verifier: oauth2.GenerateVerifier(), Redirect: redirectURI}
	doc, err := json.Marshal(pend)
	if err != nil {
		return "", nil, err
	}
	return o.oauth2(p, redirectURI).AuthCodeURL(state, oidc.Nonce(pend.Nonce), oauth2.S256ChallengeOption(pend.Verifier)), doc, nil
}

func (o *OIDC) Finish(ctx context.Context, pending []byte, q url.Values) (Identity, error) {
	var pend oidcPending
	if err := json.Unmarshal(pending, &pend); err != nil {
		return Identity{}, fmt.Errorf("connector: pending login: %w", err)
	}
	if err := checkState(pend.State, q.Get("state")); err != nil {
		return Identity{}, err
	}
	if e := q.Get("error"); e != "" { // RFC 6749 §4.1.2.1
		if e == "access_denied" {
			return Identity{}, fmt.Errorf("%w: %w", ErrRefused, &Error{Code: e, Description: q.Get("error_description")})
		}
		return Identity{}, &Error{Code: e, Description: q.Get("error_description")}
	}
	code := q.Get("code")
	if code == "" {
		return Identity{}, fmt.Errorf("%w: callback without code", ErrUpstream)
	}
	p, err := o.discover(ctx)
	if err != nil {
		return Identity{}, err
	}
	cctx := o.clientCtx(ctx)
	tok, err := o.oauth2(p, pend.Redirect).Exchange(cctx, code, oauth2.VerifierOption(pend.Verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.ErrorCode != "" { // RFC 6749 §5.2
			return Identity{}, &Error{Code: re.ErrorCode, Description: re.ErrorDescription}
		}
		return Identity{}, fmt.Errorf("%w: token request: %w", ErrUpstream, err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return Identity{}, fmt.Errorf("%w: token response without id_token", ErrUpstream)
	}
	// Signature (JWKS), iss, aud, exp (OIDC Core §3.1.3.7).
	idt, err := p.Verifier(&oidc.Config{ClientID: o.cfg.ClientID}).Verify(cctx, raw)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: id token: %w", ErrUpstream, err)
	}
	if checkState(pend.Nonce, idt.Nonce) != nil { // OIDC Core §3.1.3.7 step 11
		return Identity{}, fmt.Errorf("%w: id token nonce is not the login's", ErrUpstream)
	}
	if idt.AccessTokenHash != "" { // OIDC Core §3.1.3.8
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			return Identity{}, fmt.Errorf("%w: id token at_hash: %w", ErrUpstream, err)
		}
	}
	var claims struct {
		Name              string `json:"name"`
		PreferredUsername string `json:"preferred_username"`
		Email             string `json:"email"`
	}
	if err := idt.Claims(&claims); err != nil {
		return Identity{}, fmt.Errorf("%w: id token claims: %w", ErrUpstream, err)
	}
	id := Identity{Subject: idt.Subject, Name: cmp.Or(claims.Name, claims.PreferredUsername), Email: claims.Email}
	if id.Name == "" && p.UserInfoEndpoint() != "" {
		// Many providers give the profile claims at the userinfo endpoint only (OIDC Core §5.4);
		// its sub must be the ID token's (§5.3.2). The name is for display: without it the
		// login goes on.
		if ui, err := p.UserInfo(cctx, oauth2.StaticTokenSource(tok)); err == nil && ui.Subject == idt.Subject {
			if ui.Claims(&claims) == nil {
				id.Name = cmp.Or(claims.Name, claims.PreferredUsername)
			}
		}
	}
	return id, nil
}

// random returns n random bytes, base64url-encoded.
func random(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
