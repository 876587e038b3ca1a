package identity_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/kioskfleet/kioskfleet/hub/identity"
	"github.com/kioskfleet/kioskfleet/hub/identity/identitytest"
)

type deviceAuth struct {
	code, user, verify string
}

func startDevice(t *testing.T, e *identitytest.Env, form url.Values) deviceAuth {
	t.Helper()
	st, m, err := e.PostForm("/oidc/device_authorization", form, "", "")
	if err != nil || st != 200 {
		t.Fatalf("device authorization: %d %v %v", st, m, err)
	}
	d := deviceAuth{code: m["device_code"].(string), user: m["user_code"].(string), verify: m["verification_uri_complete"].(string)}
	if len(d.user) != 9 || m["expires_in"].(float64) != 300 || m["interval"].(float64) != 5 {
		t.Fatalf("device authorization response %v", m)
	}
	return d
}

func kioskDevice(t *testing.T, e *identitytest.Env, k *identitytest.Kiosk) deviceAuth {
	return startDevice(t, e, url.Values{"client_id": {identity.ClientKioskShell}, "scope": {"openid profile"},
		identity.ParamKioskAssertion: {k.Assertion(e.Issuer, nil, e.Clock.Now(), time.Minute)}})
}

func poll(e *identitytest.Env, client, code string) (int, map[string]any, error) {
	return e.PostForm("/oidc/token", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"},
		"device_code": {code}, "client_id": {client}}, "", "")
}

// approve logs the browser in on the verification page and answers the approval page.
func approve(t *testing.T, e *identitytest.Env, b *identitytest.Browser, verify, action string) *identitytest.Page {
	t.Helper()
	p, err := b.Get(verify)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(p.Body, `name="password"`) {
		if p, err = b.Submit(p, url.Values{"username": {identitytest.AdminUser}, "password": {identitytest.AdminPassword}}); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.Contains(p.Body, `value="approve"`) {
		t.Fatalf("no approval page: %d %.500s", p.Status, p.Body)
	}
	page := p
	if p, err = b.Submit(p, url.Values{"action": {action}}); err != nil {
		t.Fatal(err)
	}
	if p.Status != 200 {
		t.Fatalf("approval answered %d: %.300s", p.Status, p.Body)
	}
	return page
}

func TestDeviceGrantQRLoginAtKiosk(t *testing.T) {
	e := identitytest.New(t)
	k := e.EnrollKiosk(t, "kiosk-ft-01")
	d := kioskDevice(t, e, k)

	st, m, err := poll(e, identity.ClientKioskShell, d.code)
	oauthErr(t, st, m, err, 400, "authorization_pending")
	st, m, err = poll(e, identity.ClientKioskShell, d.code) // at once again: too fast
	oauthErr(t, st, m, err, 400, "slow_down")
	e.Clock.Advance(6 * time.Second) // the interval grew to 10 s (RFC 8628 §3.5)
	st, m, err = poll(e, identity.ClientKioskShell, d.code)
	oauthErr(t, st, m, err, 400, "slow_down")
	e.Clock.Advance(16 * time.Second) // now 15 s
	st, m, err = poll(e, identity.ClientKioskShell, d.code)
	oauthErr(t, st, m, err, 400, "authorization_pending")

	// The citizen approves on the phone; the page names the kiosk and where it stands.
	page := approve(t, e, e.NewBrowser(), d.verify, "approve")
	for _, want := range []string{"kiosk-ft-01", "福田区行政服务大厅", "深圳市福田区福中三路市民中心B区", "自助终端 Kiosk", d.user} {
		if !strings.Contains(page.Body, want) {
			t.Errorf("approval page does not show %q", want)
		}
	}
	e.Clock.Advance(16 * time.Second)
	st, tok, err := poll(e, identity.ClientKioskShell, d.code)
	if err != nil || st != 200 {
		t.Fatalf("token after approval: %d %v %v", st, tok, err)
	}
	if tok["refresh_token"] != nil {
		t.Error("kiosk session got a refresh token")
	}
	idt, err := oidcVerifier(t, e, identity.ClientKioskShell).Verify(context.Background(), tok["id_token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		ACR string
		AMR []string
	}
	idt.Claims(&c)
	if len(c.AMR) != 1 || c.AMR[0] != "pwd" || c.ACR != identity.ACRDevice {
		t.Errorf("acr %q amr %v", c.ACR, c.AMR)
	}
	if ttl := tok["expires_in"].(float64); ttl > 700 { // 10 min, plus the test clock's advance
		t.Errorf("kiosk session of %vs, want at most 10 min", ttl)
	}
	if got := userinfo(e, tok["access_token"].(string)); got != 200 {
		t.Errorf("userinfo %d", got)
	}
	e.Clock.Advance(16 * time.Second)
	st, m, err = poll(e, identity.ClientKioskShell, d.code) // a device code gives tokens once
	oauthErr(t, st, m, err, 400, "invalid_grant")
}

func oidcVerifier(t *testing.T, e *identitytest.Env, client string) *oidc.IDTokenVerifier {
	prov, err := oidc.NewProvider(context.Background(), e.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	return prov.Verifier(&oidc.Config{ClientID: client})
}

func TestDeviceGrantDenialExpiryAndGuessCap(t *testing.T) {
	e := identitytest.New(t)
	k := e.EnrollKiosk(t, "kiosk-2")

	d := kioskDevice(t, e, k)
	approve(t, e, e.NewBrowser(), d.verify, "deny")
	st, m, err := poll(e, identity.ClientKioskShell, d.code)
	oauthErr(t, st, m, err, 400, "access_denied")

	d = kioskDevice(t, e, k)
	e.Clock.Advance(5*time.Minute + time.Second)
	st, m, err = poll(e, identity.ClientKioskShell, d.code)
	oauthErr(t, st, m, err, 400, "expired_token")
	p, _ := e.NewBrowser().Get(d.verify) // the approval page no longer offers it
	if strings.Contains(p.Body, `value="approve"`) {
		t.Error("expired request can still be approved")
	}

	// An account may enter only so many wrong codes; then even a right one is refused.
	d = kioskDevice(t, e, k)
	b := e.NewBrowser()
	approvePageFor := func(code string) *identitytest.Page {
		p, err := b.Get(e.Issuer + "/oidc/device?user_code=" + url.QueryEscape(code))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(p.Body, `name="password"`) {
			p, _ = b.Submit(p, url.Values{"username": {identitytest.AdminUser}, "password": {identitytest.AdminPassword}})
		}
		return p
	}
	for i := 0; i < 10; i++ {
		p := approvePageFor("BBBB-BBB" + string(rune('B'+i)))
		if p.Status != 400 && p.Status != 429 {
			t.Fatalf("wrong code %d answered %d", i, p.Status)
		}
	}
	if p := approvePageFor(d.user); p.Status != 429 || strings.Contains(p.Body, `value="approve"`) {
		t.Errorf("after the cap the right code answered %d", p.Status)
	}
	if p := approvePageFor(d.user); p.Status != 429 {
		t.Errorf("cap not held: %d", p.Status)
	}
	// Logging in again (a new browser session) does not reset the account's count, nor does
	// another process on the same database (a hub restarted, another replica).
	b = e.NewBrowser()
	if p := approvePageFor(d.user); p.Status != 429 {
		t.Errorf("cap reset by a new session: %d", p.Status)
	}
	e.Restart(t)
	if p := approvePageFor(d.user); p.Status != 429 {
		t.Errorf("cap reset by another provider process: %d", p.Status)
	}
	// It expires after its window.
	e.Clock.Advance(16 * time.Minute)
	d = kioskDevice(t, e, k)
	if p := approvePageFor(d.user); !strings.Contains(p.Body, `value="approve"`) {
		t.Errorf("cap still held after its window: %d", p.Status)
	}

	// The kiosk shell must prove which kiosk it is.
	st, m, err = e.PostForm("/oidc/device_authorization", url.Values{"client_id": {identity.ClientKioskShell}}, "", "")
	oauthErr(t, st, m, err, 400, "invalid_request")
}

// fleetctl logs in with the device grant and gets a refresh token for offline_access.
func TestDeviceGrantFleetctl(t *testing.T) {
	e := identitytest.New(t)
	d := startDevice(t, e, url.Values{"client_id": {identity.ClientFleetctl}, "scope": {"openid offline_access"},
		identity.ParamResource: {e.P.FleetAPI()}})
	p := approve(t, e, e.NewBrowser(), d.verify, "approve")
	if !strings.Contains(p.Body, "fleetctl") || strings.Contains(p.Body, "kiosk") {
		t.Errorf("approval page for fleetctl: %.300s", p.Body)
	}
	st, tok, err := poll(e, identity.ClientFleetctl, d.code)
	if err != nil || st != 200 || tok["refresh_token"] == nil {
		t.Fatalf("%d %v %v", st, tok, err)
	}
	req := bearer(e, tok["access_token"].(string))
	pr, err := e.P.AuthenticateFor(req, e.P.FleetAPI())
	if err != nil || !pr.Has(identity.RoleAdmin) || pr.ClientID != identity.ClientFleetctl {
		t.Fatalf("principal %+v %v", pr, err)
	}
	st, tok2, err := e.PostForm("/oidc/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {identity.ClientFleetctl},
		"refresh_token": {tok["refresh_token"].(string)}}, "", "")
	if err != nil || st != 200 || tok2["refresh_token"] == tok["refresh_token"] {
		t.Fatalf("refresh: %d %v %v", st, tok2, err)
	}
	// The refreshed access token is for the fleet API as the grant was.
	if _, err := e.P.AuthenticateFor(bearer(e, tok2["access_token"].(string)), e.P.FleetAPI()); err != nil {
		t.Fatalf("refreshed token: %v", err)
	}
}

// fleetctl's login with an independent client library: golang.org/x/oauth2's device flow.
func TestDeviceGrantWithOAuth2Library(t *testing.T) {
	e := identitytest.New(t, func(c *identity.Config) { c.DevicePoll = time.Second })
	ctx := context.Background()
	prov, err := oidc.NewProvider(ctx, e.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		DeviceAuth string `json:"device_authorization_endpoint"`
	}
	prov.Claims(&d)
	ep := prov.Endpoint()
	ep.DeviceAuthURL = d.DeviceAuth
	conf := oauth2.Config{ClientID: identity.ClientFleetctl, Endpoint: ep, Scopes: []string{"openid", "offline_access"}}
	da, err := conf.DeviceAuth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	approve(t, e, e.NewBrowser(), da.VerificationURIComplete, "approve")
	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	tok, err := conf.DeviceAccessToken(tctx, da)
	if err != nil {
		t.Fatal(err)
	}
	if tok.RefreshToken == "" {
		t.Error("no refresh token for fleetctl")
	}
	pr, err := e.P.Authenticate(bearer(e, tok.AccessToken))
	if err != nil || !pr.Has(identity.RoleAdmin) {
		t.Fatalf("%+v %v", pr, err)
	}
}
