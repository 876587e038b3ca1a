package identity_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/oauth2"

	"github.com/kioskfleet/kioskfleet/hub/identity"
	"github.com/kioskfleet/kioskfleet/hub/identity/identitytest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Idle keep-alive connections of http.DefaultClient to closed test servers.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"))
}

func serve(h http.Handler, method, target, body string, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if method == http.MethodPost && hdr["Content-Type"] == "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// FuzzKioskAssertion feeds arbitrary assertions to the ID-card grant: each is refused with
// invalid_grant or accepted, never a server error or a panic.
func FuzzKioskAssertion(f *testing.F) {
	e := identitytest.New(f)
	k := e.EnrollKiosk(f, "kiosk-fz")
	valid := k.Assertion(e.Issuer, card(canary), time.Now(), time.Minute)
	f.Add(valid)
	f.Add(valid[:len(valid)/2])
	f.Add(strings.Replace(valid, ".", "..", 1))
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJub25lIn0.eyJpc3MiOiJraW9zay1meiJ9.")
	f.Add("")
	f.Fuzz(func(t *testing.T, a string) {
		rec := serve(e.P.Handler(), http.MethodPost, "/oidc/token", url.Values{"grant_type": {identity.GrantTypeJWTBearer},
			"client_id": {identity.ClientKioskShell}, "assertion": {a}, "scope": {"openid"}}.Encode(), nil)
		if rec.Code != 200 && rec.Code != 400 {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	})
}

// FuzzTokenEndpoint posts arbitrary form bodies to the token endpoint.
func FuzzTokenEndpoint(f *testing.F) {
	e := identitytest.New(f)
	f.Add("grant_type=authorization_code&code=x&redirect_uri=http%3A%2F%2F127.0.0.1%3A1%2Fcallback&client_id=spa&code_verifier=y")
	f.Add("grant_type=refresh_token&refresh_token=x&client_id=fleetctl")
	f.Add("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&device_code=x&client_id=fleetctl")
	f.Add("grant_type=password&username=a&password=b")
	f.Add("%zz&&==;")
	f.Fuzz(func(t *testing.T, body string) {
		rec := serve(e.P.Handler(), http.MethodPost, "/oidc/token", body, nil)
		if rec.Code >= 500 {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
	})
}

// FuzzClientRegistration posts arbitrary JSON to the admin API.
func FuzzClientRegistration(f *testing.F) {
	e := identitytest.New(f)
	verifier := oauth2.GenerateVerifier()
	u := authURL(e, "rp", e.Callback, url.Values{"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"},
		identity.ParamResource: {e.P.FleetAPI()}})
	cb, err := e.NewBrowser().Login(u, identitytest.AdminUser, identitytest.AdminPassword)
	if err != nil {
		f.Fatal(err)
	}
	_, tok, err := e.PostForm("/oidc/token", url.Values{"grant_type": {"authorization_code"}, "code": {cb.Query().Get("code")},
		"redirect_uri": {e.Callback}, "code_verifier": {verifier}}, "rp", "rp-secret")
	if err != nil {
		f.Fatal(err)
	}
	auth := map[string]string{"Authorization": "Bearer " + tok["access_token"].(string), "Content-Type": "application/json"}
	f.Add(`{"id":"a","redirectUris":["https://a/cb"],"grantTypes":["authorization_code"]}`)
	f.Add(`{"id":"","grantTypes":["implicit"]}`)
	f.Add(`{"id":"b","appType":"x"}`)
	f.Add(`{"unknown":1}`)
	f.Add(`[`)
	f.Fuzz(func(t *testing.T, body string) {
		rec := serve(e.P.Handler(), http.MethodPost, "/oidc/admin/clients", body, auth)
		if rec.Code != 201 && rec.Code != 400 && rec.Code != 409 {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
	})
}
