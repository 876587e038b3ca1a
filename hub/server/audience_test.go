package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/kioskfleet/kioskfleet/hub/identity"
	"github.com/kioskfleet/kioskfleet/hub/identity/identitytest"
	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// serve assembles and serves a hub in a temporary folder until the test ends.
func serve(t *testing.T) Info { return serveIn(t, t.TempDir()) }

// serveIn assembles and serves a hub with its data in dir until the test ends.
func serveIn(t *testing.T, dir string) Info {
	t.Helper()
	h, err := Assemble(t.Context(), Config{DataDir: dir, HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ready, done := make(chan Info, 1), make(chan error, 1)
	ctx, cancel := context.WithCancel(t.Context())
	go func() { done <- h.Serve(ctx, func(i Info) { ready <- i }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	select {
	case i := <-ready:
		roots, err := api.LoadCA(i.CAFile)
		if err != nil {
			t.Fatal(err)
		}
		tr := api.Transport(roots)
		t.Cleanup(tr.CloseIdleConnections)
		transports.Store(i.HTTPURL, tr)
		return i
	case err := <-done:
		t.Fatalf("Serve: %v", err)
	}
	return Info{}
}

// transports holds a transport trusting its CA for each hub serveIn serves, by its URL.
var transports sync.Map

// transport returns the transport trusting the CA of the hub u is on.
func transport(u string) http.RoundTripper {
	var tr http.RoundTripper
	transports.Range(func(base, t any) bool {
		if strings.HasPrefix(u, base.(string)) {
			tr = t.(http.RoundTripper)
		}
		return tr == nil
	})
	return tr
}

// browser is a test browser on the hub at u.
func browser(u string) *identitytest.Browser {
	b := identitytest.NewBrowserFor(u)
	b.C.Transport = transport(u)
	return b
}

func call(t *testing.T, method, u, token string, body string, form url.Values, basic ...string) (int, map[string]any) {
	t.Helper()
	var req *http.Request
	if form != nil {
		req, _ = http.NewRequest(method, u, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req, _ = http.NewRequest(method, u, strings.NewReader(body))
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if len(basic) == 2 {
		req.SetBasicAuth(basic[0], basic[1])
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: transport(u)}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// TestFleetAPIRefusesThirdPartyTokens is attack 3 against an assembled hub: a department's app
// gets a token after the consent page; GET /api/v1/devices with it answered 200 with the whole
// fleet. Now it gets 401, while fleetctl's token (asked for the fleet API) still works.
func TestFleetAPIRefusesThirdPartyTokens(t *testing.T) {
	info := serve(t)
	hub := info.HTTPURL
	pass := info.Credentials["admin password (user admin)"]
	resource := api.FleetResource(hub)

	// fleetctl's login: the device grant with the fleet API resource, approved in a browser.
	st, da := call(t, "POST", hub+"/oidc/device_authorization", "", "", url.Values{"client_id": {identity.ClientFleetctl},
		"scope": {"openid"}, identity.ParamResource: {resource}})
	if st != 200 {
		t.Fatalf("device authorization: %d %v", st, da)
	}
	b := browser(hub)
	p, err := b.Get(da["verification_uri_complete"].(string))
	if err == nil {
		p, err = b.Submit(p, url.Values{"username": {"admin"}, "password": {pass}})
	}
	if err == nil {
		p, err = b.Submit(p, url.Values{"action": {"approve"}})
	}
	if err != nil || p.Status != 200 {
		t.Fatalf("approval: %v %+v", err, p)
	}
	st, tok := call(t, "POST", hub+"/oidc/token", "", "", url.Values{"client_id": {identity.ClientFleetctl},
		"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {da["device_code"].(string)}})
	if st != 200 {
		t.Fatalf("device token: %d %v", st, tok)
	}
	staff := tok["access_token"].(string)
	if st, m := call(t, "GET", hub+"/api/v1/devices", staff, "", nil); st != 200 {
		t.Fatalf("fleetctl's token on the fleet API: %d %v", st, m)
	}

	// A department's app, registered as admins do, without the fleet API.
	const cb = "http://127.0.0.1:1/cb"
	st, reg := call(t, "POST", hub+"/oidc/admin/clients", staff, `{"id":"dept-tax","name":"税务","redirectUris":["`+cb+
		`"],"grantTypes":["authorization_code"],"confidential":true}`, nil)
	if st != 201 {
		t.Fatalf("register: %d %v", st, reg)
	}
	v := oauth2.GenerateVerifier()
	q := url.Values{"client_id": {"dept-tax"}, "redirect_uri": {cb}, "response_type": {"code"}, "scope": {"openid"},
		"state": {"s"}, "code_challenge": {oauth2.S256ChallengeFromVerifier(v)}, "code_challenge_method": {"S256"}}
	back, err := browser(hub).Login(hub+"/oidc/authorize?"+q.Encode(), "admin", pass)
	if err != nil || back.Query().Get("code") == "" {
		t.Fatalf("code flow with consent: %v %v", back, err)
	}
	st, tok = call(t, "POST", hub+"/oidc/token", "", "", url.Values{"grant_type": {"authorization_code"},
		"code": {back.Query().Get("code")}, "redirect_uri": {cb}, "code_verifier": {v}}, "dept-tax", reg["secret"].(string))
	if st != 200 {
		t.Fatalf("department token: %d %v", st, tok)
	}
	dept := tok["access_token"].(string)
	st, m := call(t, "GET", hub+"/api/v1/devices", dept, "", nil)
	if st != 401 && st != 403 {
		t.Fatalf("GET /api/v1/devices with a department's token: %d %v, want 401 or 403", st, m)
	}
	if st, _ := call(t, "GET", hub+"/oidc/admin/clients", dept, "", nil); st != 401 {
		t.Errorf("admin API with a department's token: %d, want 401", st)
	}
}
