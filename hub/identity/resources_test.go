package identity_test

import (
	"context"
	"crypto/sha256"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/kioskfleet/kioskfleet/hub/identity"
	"github.com/kioskfleet/kioskfleet/hub/identity/identitytest"
	"github.com/kioskfleet/kioskfleet/hub/store"
)

// loginCode runs the browser part of the code flow for client (consenting if asked) and returns
// the redirect back to the client.
func loginCode(t *testing.T, e *identitytest.Env, client, scope, verifier string, extra url.Values) *url.URL {
	t.Helper()
	q := url.Values{"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"},
		"scope": {scope}}
	for k, v := range extra {
		q[k] = v
	}
	cb, err := e.NewBrowser().Login(authURL(e, client, e.Callback, q), identitytest.AdminUser, identitytest.AdminPassword)
	if err != nil {
		t.Fatal(err)
	}
	return cb
}

func codeToken(t *testing.T, e *identitytest.Env, client, secret, code, verifier string, extra url.Values) (int, map[string]any) {
	t.Helper()
	f := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {e.Callback}, "code_verifier": {verifier}}
	for k, v := range extra {
		f[k] = v
	}
	st, m, err := e.PostForm("/oidc/token", f, client, secret)
	if err != nil {
		t.Fatal(err)
	}
	return st, m
}

// TestThirdPartyTokenNotForFleetAPI is attack 3: a department's app, after a consent page that
// listed only the citizen's identity, held an access token the fleet API accepted. Its token is
// now refused by the fleet API and the admin API (not issued for them) and by the account API
// (a third-party client), and it cannot ask for the fleet API at all.
func TestThirdPartyTokenNotForFleetAPI(t *testing.T) {
	e := identitytest.New(t)
	v := oauth2.GenerateVerifier()
	cb := loginCode(t, e, "third", "openid profile", v, nil) // the admin consents, as the attack did
	st, tok := codeToken(t, e, "third", "third-secret", cb.Query().Get("code"), v, nil)
	if st != 200 {
		t.Fatalf("third-party token: %d %v", st, tok)
	}
	at := tok["access_token"].(string)
	if pr, err := e.P.Authenticate(bearer(e, at)); err != nil || !pr.Has(identity.RoleAdmin) {
		t.Fatalf("the token is live and speaks for the admin: %+v %v", pr, err)
	}
	if _, err := e.P.AuthenticateFor(bearer(e, at), e.P.FleetAPI()); err == nil {
		t.Fatal("a third-party client's token is accepted for the fleet API")
	}
	if st, m := apiCall(t, e, "GET", "/oidc/admin/clients", at, ""); st != 401 {
		t.Errorf("admin API with a third-party token: %d %v, want 401", st, m)
	}
	if st, m := apiCall(t, e, "GET", "/oidc/account/sessions", at, ""); st != 403 {
		t.Errorf("account API with a third-party token: %d %v, want 403", st, m)
	}
	if userinfo(e, at) != 200 {
		t.Error("userinfo refused the token it is for")
	}

	// Asking for the fleet API: refused at the authorization endpoint (RFC 8707 §2 invalid_target),
	// before any login.
	p, err := e.NewBrowser().Get(authURL(e, "third", e.Callback, url.Values{"code_challenge": {oauth2.S256ChallengeFromVerifier(v)},
		"code_challenge_method": {"S256"}, identity.ParamResource: {e.P.FleetAPI()}}))
	if err != nil {
		t.Fatal(err)
	}
	if loc, _ := url.Parse(p.Loc); loc == nil || loc.Query().Get("error") != "invalid_target" {
		t.Errorf("third-party client asking for the fleet API: %d %s %.200s", p.Status, p.Loc, p.Body)
	}
	// ... and at the token endpoint, for a code granted without it.
	cb = loginCode(t, e, "third", "openid", v, nil)
	st, m := codeToken(t, e, "third", "third-secret", cb.Query().Get("code"), v, url.Values{identity.ParamResource: {e.P.FleetAPI()}})
	if st != 400 || m["error"] != "invalid_target" {
		t.Errorf("token request for a resource not granted: %d %v", st, m)
	}
	// An unknown resource or one that is not an absolute URI.
	for res, want := range map[string]string{"https://elsewhere.example/api": "invalid_target", "relative/path": "invalid_request"} {
		st, m, _ := e.PostForm("/oidc/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"},
			identity.ParamResource: {res}}, "rp", "rp-secret")
		if st != 400 || m["error"] != want {
			t.Errorf("resource %q: %d %v, want %s", res, st, m, want)
		}
	}
}

// TestFleetAPIToken: a first-party client registered for the fleet API gets a token for it when
// it asks, and only then; staff roles still apply; a refresh keeps the audience and may narrow it.
func TestFleetAPIToken(t *testing.T) {
	e := identitytest.New(t)
	v := oauth2.GenerateVerifier()
	cb := loginCode(t, e, "rp", "openid offline_access", v, url.Values{identity.ParamResource: {e.P.FleetAPI()}})
	st, tok := codeToken(t, e, "rp", "rp-secret", cb.Query().Get("code"), v, nil)
	if st != 200 || tok["refresh_token"] == nil {
		t.Fatalf("%d %v", st, tok)
	}
	pr, err := e.P.AuthenticateFor(bearer(e, tok["access_token"].(string)), e.P.FleetAPI())
	if err != nil || !pr.For(e.P.FleetAPI()) {
		t.Fatalf("fleet API token refused: %+v %v", pr, err)
	}
	if st, m := apiCall(t, e, "GET", "/oidc/admin/clients", tok["access_token"].(string), ""); st != 200 {
		t.Errorf("admin API: %d %v", st, m)
	}
	// Refresh: the same audience, or the one asked for when it was granted.
	for _, extra := range []url.Values{nil, {identity.ParamResource: {e.P.FleetAPI()}}} {
		f := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}}
		for k, vs := range extra {
			f[k] = vs
		}
		st, m, err := e.PostForm("/oidc/token", f, "rp", "rp-secret")
		if err != nil || st != 200 {
			t.Fatalf("refresh %v: %d %v %v", extra, st, m, err)
		}
		if _, err := e.P.AuthenticateFor(bearer(e, m["access_token"].(string)), e.P.FleetAPI()); err != nil {
			t.Errorf("refreshed token (%v): %v", extra, err)
		}
		tok = m
	}

	// The same client without the resource: a token no API takes.
	cb = loginCode(t, e, "rp", "openid", v, nil)
	_, tok = codeToken(t, e, "rp", "rp-secret", cb.Query().Get("code"), v, nil)
	if _, err := e.P.AuthenticateFor(bearer(e, tok["access_token"].(string)), e.P.FleetAPI()); err == nil {
		t.Error("a token asked without the resource is accepted for the fleet API")
	}

	// Roles still apply to a fleet API token: field ops may not use the admin API.
	ctx := context.Background()
	if _, err := e.P.CreateStaff(ctx, identity.NewStaff{Username: "ops", Name: "运维", Password: "a good password",
		Roles: []string{identity.RoleFieldOps}}); err != nil {
		t.Fatal(err)
	}
	q := url.Values{"code_challenge": {oauth2.S256ChallengeFromVerifier(v)}, "code_challenge_method": {"S256"},
		identity.ParamResource: {e.P.FleetAPI()}}
	cb, err = e.NewBrowser().Login(authURL(e, "rp", e.Callback, q), "ops", "a good password")
	if err != nil {
		t.Fatal(err)
	}
	_, tok = codeToken(t, e, "rp", "rp-secret", cb.Query().Get("code"), v, nil)
	if st, _ := apiCall(t, e, "GET", "/oidc/admin/clients", tok["access_token"].(string), ""); st != 403 {
		t.Errorf("field ops on the admin API: %d, want 403", st)
	}
}

// TestRegisteredScopes: a client gets only the scopes it was registered for; others are
// narrowed away (RFC 6749 §3.3) and the token response says what was granted.
func TestRegisteredScopes(t *testing.T) {
	e := identitytest.New(t)
	ctx := context.Background()
	if err := e.Store.PutClient(ctx, store.Client{ID: "dept", Name: "部门应用", AppType: "web", RedirectURIs: []string{e.Callback},
		GrantTypes: []string{"authorization_code", "refresh_token"}, SecretHash: secretHash("dept-secret"), Pairwise: true}); err != nil {
		t.Fatal(err)
	}
	v := oauth2.GenerateVerifier()
	b := e.NewBrowser()
	q := url.Values{"code_challenge": {oauth2.S256ChallengeFromVerifier(v)}, "code_challenge_method": {"S256"},
		"scope": {"openid profile offline_access"}}
	p, _ := b.Get(authURL(e, "dept", e.Callback, q))
	p, _ = b.Submit(p, url.Values{"username": {identitytest.AdminUser}, "password": {identitytest.AdminPassword}})
	// The consent page lists what will be granted: the identity only.
	if !strings.Contains(p.Body, `value="approve"`) || strings.Contains(p.Body, "您的姓名") || strings.Contains(p.Body, "保持登录") {
		t.Fatalf("consent page lists scopes the client is not registered for: %.600s", p.Body)
	}
	p, _ = b.Submit(p, url.Values{"action": {"approve"}})
	cb, _ := url.Parse(p.Loc)
	st, tok := codeToken(t, e, "dept", "dept-secret", cb.Query().Get("code"), v, nil)
	if st != 200 || tok["scope"] != "openid" || tok["refresh_token"] != nil {
		t.Fatalf("token for a client registered for openid only: %d %v", st, tok)
	}

	// Registration through the admin API checks the scopes and resources.
	v2 := oauth2.GenerateVerifier()
	cb = loginCode(t, e, "rp", "openid", v2, url.Values{identity.ParamResource: {e.P.FleetAPI()}})
	_, admin := codeToken(t, e, "rp", "rp-secret", cb.Query().Get("code"), v2, nil)
	at := admin["access_token"].(string)
	for body, want := range map[string]string{
		`{"id":"d1","redirectUris":["https://d/cb"],"grantTypes":["authorization_code"],"scopes":["openid","email"]}`:          `scope "email"`,
		`{"id":"d2","redirectUris":["https://d/cb"],"grantTypes":["authorization_code"],"resources":["https://other/api/v1"]}`: `resource "https://other/api/v1"`,
	} {
		st, m := apiCall(t, e, "POST", "/oidc/admin/clients", at, body)
		if st != 400 || !strings.Contains(m["error"].(map[string]any)["message"].(string), want) {
			t.Errorf("%s: %d %v, want 400 naming %s", body, st, m, want)
		}
	}
	st, m := apiCall(t, e, "POST", "/oidc/admin/clients", at, `{"id":"d3","redirectUris":["https://d/cb"],"grantTypes":["authorization_code"]}`)
	if st != 201 || len(m["scopes"].([]any)) != 1 || m["scopes"].([]any)[0] != "openid" || m["resources"] != nil {
		t.Errorf("registration without scopes: %d %v, want scopes [openid] and no resources", st, m)
	}
}

// TestDeviceGrantResource: the device authorization request carries the resource; a client not
// registered for it is refused there.
func TestDeviceGrantResource(t *testing.T) {
	e := identitytest.New(t)
	k := e.EnrollKiosk(t, "kiosk-r1")
	st, m, err := e.PostForm("/oidc/device_authorization", url.Values{"client_id": {identity.ClientKioskShell}, "scope": {"openid"},
		identity.ParamKioskAssertion: {k.Assertion(e.Issuer, nil, e.Clock.Now(), 60e9)}, identity.ParamResource: {e.P.FleetAPI()}}, "", "")
	oauthErr(t, st, m, err, 400, "invalid_target")

	d := startDevice(t, e, url.Values{"client_id": {identity.ClientFleetctl}, "scope": {"openid"}})
	approve(t, e, e.NewBrowser(), d.verify, "approve")
	_, tok, _ := poll(e, identity.ClientFleetctl, d.code)
	if _, err := e.P.AuthenticateFor(bearer(e, tok["access_token"].(string)), e.P.FleetAPI()); err == nil {
		t.Error("fleetctl token asked without the resource is accepted for the fleet API")
	}
}

func secretHash(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}
