package identity_test

import (
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/oauth2"

	"github.com/kioskfleet/kioskfleet/hub/identity"
	"github.com/kioskfleet/kioskfleet/hub/identity/identitytest"
	"github.com/kioskfleet/kioskfleet/hub/ratelimit"
)

// TestPageHeaders: the login, consent and device approval pages refuse framing and carry the
// usual security headers; their form-action lets the answer go on to the client's redirect URI
// (TestBrowserLoginToAnotherOrigin shows a browser follows it).
func TestPageHeaders(t *testing.T) {
	e := identitytest.New(t)
	b := e.NewBrowser()
	v := oauth2.GenerateVerifier()
	q := url.Values{"code_challenge": {oauth2.S256ChallengeFromVerifier(v)}, "code_challenge_method": {"S256"}}
	var pages []*http.Response
	get := func(u string) {
		resp, err := b.C.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		pages = append(pages, resp)
	}
	get(authURL(e, "third", e.Callback, q)) // redirected to the login page of the request
	get(e.Issuer + "/oidc/device")          // the device approval page (login first)
	get(e.Issuer + "/oidc/logged-out")
	login := pages[0]
	if !strings.HasPrefix(login.Request.URL.Path, "/oidc/login") {
		t.Fatalf("authorize went to %s", login.Request.URL)
	}
	for _, p := range pages {
		h := p.Header
		csp := h.Get("Content-Security-Policy")
		for _, want := range []string{"frame-ancestors 'none'", "default-src 'none'", "base-uri 'none'", "form-action 'self'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %s", p.Request.URL.Path, csp, want)
			}
		}
		for k, want := range map[string]string{"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
			"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"} {
			if h.Get(k) != want {
				t.Errorf("%s: %s %q, want %q", p.Request.URL.Path, k, h.Get(k), want)
			}
		}
	}
	if csp := login.Header.Get("Content-Security-Policy"); !strings.HasSuffix(csp, "form-action 'self' http://127.0.0.1:1") {
		t.Errorf("login page of a request: CSP %q does not let the form's answer go to the client", csp)
	}
	if csp := pages[1].Header.Get("Content-Security-Policy"); strings.Contains(csp, "http://") {
		t.Errorf("device page allows forms to %q", csp)
	}
	// The consent page, after the login.
	p, err := b.Submit(&identitytest.Page{Status: 200, URL: login.Request.URL, Body: mustBody(t, b, login.Request.URL.String())},
		url.Values{"username": {identitytest.AdminUser}, "password": {identitytest.AdminPassword}})
	if err != nil || !strings.Contains(p.Body, `value="approve"`) {
		t.Fatalf("no consent page: %v %.200s", err, p.Body)
	}
	// JSON answers carry nosniff too.
	resp, err := http.Get(e.Issuer + "/oidc/keys")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Error("JWKS without nosniff")
	}
}

func mustBody(t *testing.T, b *identitytest.Browser, u string) string {
	t.Helper()
	p, err := b.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	return p.Body
}

func rateLimited(t *testing.T, e *identitytest.Env) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(e.P.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			out[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	return out
}

// TestRateLimits: password logins, token and device requests are limited per client address
// (429 with Retry-After, counted), whatever the account; an address behind a trusted proxy is
// its X-Forwarded-For, an untrusted X-Forwarded-For is ignored.
func TestRateLimits(t *testing.T) {
	e := identitytest.New(t, func(c *identity.Config) {
		c.LoginRate, c.TokenRate = ratelimit.PerMinute(6, 2), ratelimit.PerMinute(6, 2)
		c.DeviceAuthRate, c.UserCodeRate = ratelimit.PerMinute(6, 2), ratelimit.PerMinute(6, 2)
	})
	post := func(path string, form url.Values, xff string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("POST", e.Issuer+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if xff != "" {
			req.Header.Set("X-Forwarded-For", xff)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for _, c := range []struct {
		endpoint, path string
		form           url.Values
	}{
		// Each request names another account: the limit is the address's.
		{"login", "/oidc/login", url.Values{"username": {"nobody"}, "password": {"x"}}},
		{"token", "/oidc/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}, "client_id": {"fleetctl"}}},
		{"device_authorization", "/oidc/device_authorization", url.Values{"client_id": {"fleetctl"}, "scope": {"openid"}}},
		{"device", "/oidc/device", url.Values{"user_code": {"BCDF-GHJK"}}},
	} {
		for i := range 2 {
			if r := post(c.path, c.form, "203.0.113.9"); r.StatusCode == http.StatusTooManyRequests {
				t.Fatalf("%s: request %d of the burst refused", c.endpoint, i)
			}
		}
		r := post(c.path, c.form, "203.0.113.9") // no trusted proxy: the header changes nothing
		if r.StatusCode != http.StatusTooManyRequests || r.Header.Get("Retry-After") != "10" {
			t.Fatalf("%s: past the burst: %d Retry-After %q, want 429 and 10", c.endpoint, r.StatusCode, r.Header.Get("Retry-After"))
		}
	}
	if got := rateLimited(t, e); got["login"] != 1 || got["token"] != 1 || got["device_authorization"] != 1 || got["device"] != 1 {
		t.Errorf("rate limited counts %v, want 1 per endpoint", got)
	}
	e.Clock.Advance(10 * time.Second)
	if r := post("/oidc/login", url.Values{"username": {"a"}, "password": {"b"}}, ""); r.StatusCode == http.StatusTooManyRequests {
		t.Error("no token back after 10 s")
	}

	// Behind a trusted proxy the client is the address the proxy adds.
	e2 := identitytest.New(t, func(c *identity.Config) {
		c.LoginRate = ratelimit.PerMinute(6, 1)
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})
	e = e2
	if r := post("/oidc/login", nil, "198.51.100.1"); r.StatusCode == 429 {
		t.Fatal("first client refused")
	}
	if r := post("/oidc/login", nil, "198.51.100.2"); r.StatusCode == 429 {
		t.Fatal("a second client behind the proxy is counted with the first")
	}
	if r := post("/oidc/login", nil, "198.51.100.1"); r.StatusCode != 429 {
		t.Fatalf("first client again: %d, want 429", r.StatusCode)
	}
}
