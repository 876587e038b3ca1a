package connector_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/url"
	"testing"

	"github.com/kioskfleet/kioskfleet/hub/identity/connector"
	"github.com/kioskfleet/kioskfleet/hub/identity/identitytest"
	"github.com/kioskfleet/kioskfleet/hub/store"
)

// upstreamOP is a fleet-hub provider over HTTPS with this connector's client registered.
func upstreamOP(t *testing.T) (*identitytest.Env, connector.Config) {
	t.Helper()
	up := identitytest.NewHTTPS(t)
	sum := sha256.Sum256([]byte("down-secret"))
	if err := up.Store.PutClient(context.Background(), store.Client{ID: "down", Name: "Downstream", AppType: "web",
		FirstParty: true, RedirectURIs: []string{redirect}, GrantTypes: []string{"authorization_code"}, SecretHash: sum[:],
		Scopes: []string{"openid", "profile"}}); err != nil {
		t.Fatal(err)
	}
	return up, connector.Config{ID: "up", Type: connector.TypeOIDC, Name: "上游", Issuer: up.Issuer, ClientID: "down",
		ClientSecret: "down-secret", CAFile: up.CAFile(t)}
}

// atUpstream logs in at the upstream as its admin and returns the redirect back's query.
func atUpstream(t *testing.T, up *identitytest.Env, authURL string) url.Values {
	t.Helper()
	back, err := up.NewBrowser().Login(authURL, identitytest.AdminUser, identitytest.AdminPassword)
	if err != nil {
		t.Fatal(err)
	}
	return back.Query()
}

// withPending returns pending with one field changed.
func withPending(t *testing.T, pending []byte, key, value string) []byte {
	m := map[string]any{}
	if err := json.Unmarshal(pending, &m); err != nil {
		t.Fatal(err)
	}
	m[key] = value
	b, _ := json.Marshal(m)
	return b
}

func TestOIDCConnector(t *testing.T) {
	ctx := context.Background()
	up, cfg := upstreamOP(t)
	conn := openConnector(t, cfg)
	if err := conn.(connector.Preparer).Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	admin, err := up.Store.AccountByUsername(ctx, identitytest.AdminUser)
	if err != nil {
		t.Fatal(err)
	}

	authURL, pending, err := conn.Begin(ctx, redirect, "state-1")
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(authURL)
	if q := u.Query(); q.Get("code_challenge_method") != "S256" || q.Get("nonce") == "" || q.Get("state") != "state-1" {
		t.Errorf("authorization URL without PKCE, nonce or state: %s", authURL)
	}
	back := atUpstream(t, up, authURL)
	id, err := conn.Finish(ctx, pending, back)
	if err != nil {
		t.Fatal(err)
	}
	if id.Subject != admin.ID {
		t.Errorf("subject %q, want the upstream account %q", id.Subject, admin.ID)
	}
	// The code was spent.
	if _, err := conn.Finish(ctx, pending, back); err == nil {
		t.Error("a code was exchanged twice")
	}
}

func TestOIDCConnectorChecks(t *testing.T) {
	ctx := context.Background()
	up, cfg := upstreamOP(t)
	conn := openConnector(t, cfg)
	login := func(state string) ([]byte, url.Values) {
		authURL, pending, err := conn.Begin(ctx, redirect, state)
		if err != nil {
			t.Fatal(err)
		}
		return pending, atUpstream(t, up, authURL)
	}

	pending, back := login("state-a")
	other := url.Values{"code": {back.Get("code")}, "state": {"state-b"}}
	if _, err := conn.Finish(ctx, pending, other); !errors.Is(err, connector.ErrState) {
		t.Errorf("another login's state: %v, want ErrState", err)
	}
	// The ID token's nonce must be this login's (the code was a replayed one's, say).
	if _, err := conn.Finish(ctx, withPending(t, pending, "nonce", "another-nonce"), back); !errors.Is(err, connector.ErrUpstream) {
		t.Errorf("nonce of another login: %v, want ErrUpstream", err)
	}
	// PKCE: a code with another verifier is refused by the upstream (RFC 7636 §4.6).
	pending, back = login("state-c")
	_, err := conn.Finish(ctx, withPending(t, pending, "verifier", "x0123456789012345678901234567890123456789012"), back)
	var ue *connector.Error
	if !errors.As(err, &ue) || ue.Code != "invalid_grant" {
		t.Errorf("wrong PKCE verifier: %v, want invalid_grant", err)
	}
	// The upstream's refusal.
	if _, err := conn.Finish(ctx, pending, url.Values{"state": {"state-c"}, "error": {"access_denied"}}); !errors.Is(err, connector.ErrRefused) {
		t.Errorf("access_denied: %v, want ErrRefused", err)
	}
	// Without the upstream's CA, discovery fails on TLS.
	cfg.CAFile = ""
	if _, _, err := openConnector(t, cfg).Begin(ctx, redirect, "s"); !errors.Is(err, connector.ErrUpstream) {
		t.Errorf("untrusted upstream certificate: %v, want ErrUpstream", err)
	}
}
