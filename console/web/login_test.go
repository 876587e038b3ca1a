package web_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/console/web"
	"github.com/kioskfleet/kioskfleet/hub/identity/identitytest"
	"github.com/kioskfleet/kioskfleet/hub/server"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
	"github.com/kioskfleet/kioskfleet/pkg/proctest"
)

// staffConsole is the console in login mode, served over HTTPS with secure cookies, in front of a
// real hub assembled and served in this process (its HTTPS, its OpenID Provider, its API).
type staffConsole struct {
	t     *testing.T
	srv   *web.Server
	url   string
	hub   server.Info
	admin *api.Client // with the hub's bootstrap token
	tr    *http.Transport
	roots *x509.CertPool             // the hub's CA and the console's certificate
	certs map[string]tls.Certificate // of the kiosks enrolled, by ID
}

func newStaffConsole(t *testing.T) *staffConsole {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sc := &staffConsole{t: t, url: "https://" + ln.Addr().String(), certs: map[string]tls.Certificate{}}
	sc.hub = serveHub(t, server.Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", ConsoleURL: sc.url,
		SecurityFlush: 50 * time.Millisecond})
	roots, err := api.LoadCA(sc.hub.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	toHub := api.Transport(roots) // what fleet-console --hub-ca builds
	t.Cleanup(toHub.CloseIdleConnections)
	hc := &http.Client{Transport: toHub, Timeout: 10 * time.Second}
	sc.admin = &api.Client{BaseURL: sc.hub.HTTPURL, Token: sc.hub.BootstrapToken, HTTP: hc}
	secret := sc.hub.Credentials["client secret fleet-console"]
	if secret == "" {
		t.Fatalf("no console secret in the hub's credentials %v", keys(sc.hub.Credentials))
	}
	sc.srv, err = web.New(web.Config{Login: &web.Login{Hub: &api.Client{BaseURL: sc.hub.HTTPURL, HTTP: hc},
		ClientID: "fleet-console", ClientSecret: secret, URL: sc.url}, Timeout: 10 * time.Second, SecureCookies: true})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(sc.srv)
	ts.Listener.Close()
	ts.Listener = ln
	ts.StartTLS()
	t.Cleanup(ts.Close)
	// The browser trusts the hub's CA and the console's test certificate.
	roots.AddCert(ts.Certificate())
	sc.roots, sc.tr = roots, api.Transport(roots)
	t.Cleanup(sc.tr.CloseIdleConnections)
	return sc
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// serveHub assembles a hub with cfg and serves it until the test ends.
func serveHub(t *testing.T, cfg server.Config) server.Info {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan server.Info, 1), make(chan error, 1)
	go func() { done <- server.Run(ctx, cfg, func(i server.Info) { ready <- i }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("hub: %v", err)
		}
	})
	select {
	case i := <-ready:
		return i
	case err := <-done:
		t.Fatalf("hub: %v", err)
	}
	return server.Info{}
}

// enroll enrolls a kiosk at site as an agent does (a fresh key, a CSR, a one-time token) and
// returns its ID.
func (sc *staffConsole) enroll(site string) string {
	sc.t.Helper()
	ctx := sc.t.Context()
	tok, err := sc.admin.CreateToken(ctx, api.CreateToken{SiteID: site})
	if err != nil {
		sc.t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "kiosk"}}, key)
	if err != nil {
		sc.t.Fatal(err)
	}
	e, err := sc.admin.Enroll(ctx, api.Enroll{Token: tok.Secret, Model: "KF-K200",
		CSR: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))})
	if err != nil {
		sc.t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	cert, err := tls.X509KeyPair([]byte(e.Certificate), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}))
	if err != nil {
		sc.t.Fatal(err)
	}
	sc.certs[e.DeviceID] = cert
	return e.DeviceID
}

// staff creates a staff account with a password.
func (sc *staffConsole) staff(user string, roles []string, regions ...string) string {
	sc.t.Helper()
	pw := "pw-" + user + "-0123456789"
	if _, err := sc.admin.CreateStaff(sc.t.Context(), api.StaffRequest{Username: user, Password: pw, Roles: roles, Regions: regions}); err != nil {
		sc.t.Fatal(err)
	}
	return pw
}

// staffBrowser is one browser: a cookie jar shared by the hub's pages (followed within the
// hub, as identitytest's browser does) and the console's (never followed: each redirect is
// checked).
type staffBrowser struct {
	sc  *staffConsole
	hub *identitytest.Browser
	c   *http.Client
}

func (sc *staffConsole) browser() *staffBrowser {
	b := identitytest.NewBrowserFor(sc.hub.HTTPURL)
	b.C.Transport = sc.tr
	return &staffBrowser{sc: sc, hub: b, c: &http.Client{Jar: b.C.Jar, Transport: sc.tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type reply struct {
	status int
	body   string
	h      http.Header
}

func (b *staffBrowser) do(method, path string, form url.Values) reply {
	b.sc.t.Helper()
	u := path
	if strings.HasPrefix(path, "/") {
		u = b.sc.url + path
	}
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, u, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.sc.t.Fatal(err)
	}
	defer resp.Body.Close()
	s, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, string(s), resp.Header}
}

func (b *staffBrowser) get(path string) reply { return b.do(http.MethodGet, path, nil) }

// startLogin opens the console's /login?next= and returns the hub's authorization URL it
// redirects to.
func (b *staffBrowser) startLogin(next string) string {
	b.sc.t.Helper()
	r := b.get("/login?" + url.Values{"next": {next}}.Encode())
	if r.status != http.StatusSeeOther || !strings.HasPrefix(r.h.Get("Location"), b.sc.hub.HTTPURL+"/") {
		b.sc.t.Fatalf("login start: %d to %q", r.status, r.h.Get("Location"))
	}
	return r.h.Get("Location")
}

// hubLogin logs in on the hub's page and returns the URL the hub sends the browser back to.
func (b *staffBrowser) hubLogin(authorize, user, pw string) string {
	b.sc.t.Helper()
	back, err := b.hub.Login(authorize, user, pw)
	if err != nil {
		b.sc.t.Fatal(err)
	}
	if !strings.HasPrefix(back.String(), b.sc.url+"/callback?") {
		b.sc.t.Fatalf("hub sent the browser to %s, not the console's callback", back)
	}
	return back.String()
}

// login logs in through the hub and follows the console's callback; it returns where the
// console sends the browser.
func (b *staffBrowser) login(user, pw, next string) string {
	b.sc.t.Helper()
	r := b.get(b.hubLogin(b.startLogin(next), user, pw))
	if r.status != http.StatusSeeOther {
		b.sc.t.Fatalf("callback: %d %.500s", r.status, r.body)
	}
	return r.h.Get("Location")
}

func cookie(h http.Header, name string) string {
	for _, c := range h.Values("Set-Cookie") {
		if strings.HasPrefix(c, name+"=") {
			return c
		}
	}
	return ""
}

func wantCookie(t *testing.T, h http.Header, name string) {
	t.Helper()
	c := cookie(h, name)
	for _, attr := range []string{"Path=/", "HttpOnly", "Secure", "SameSite=Lax"} {
		if !strings.Contains(c, attr) {
			t.Errorf("cookie %s lacks %s: %q", name, attr, c)
		}
	}
}

// TestStaffLogin: staff log in through the hub's login page (authorization code with PKCE), the
// console acts with their own token, so that a county engineer sees only their county's kiosks
// and gets 403 for another's; the login cannot be finished in another browser or twice; the
// access token is refreshed; logout ends the session; an account without a console role is
// refused.
func TestStaffLogin(t *testing.T) {
	sc := newStaffConsole(t)
	ctx := t.Context()
	for _, s := range []fleet.Site{{ID: "futian-1", Name: "福田区市民服务中心", Region: "440304"}, {ID: "nanshan-1", Name: "南山区政务中心", Region: "440305"}} {
		if _, err := sc.admin.CreateSite(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	futian, nanshan := sc.enroll("futian-1"), sc.enroll("nanshan-1")

	// The admin logs in; next cannot send the browser off the console; the admin sees the whole
	// fleet, and creates the staff accounts with the token the console holds for them.
	adm := sc.browser()
	if to := adm.login("admin", sc.hub.Credentials["admin password (user admin)"], "//evil.example/x"); to != "/" {
		t.Fatalf("next=//evil.example/x led to %q", to)
	}
	if r := adm.get("/devices"); !strings.Contains(r.body, nanshan) || !strings.Contains(r.body, futian) {
		t.Fatalf("admin's devices: %d", r.status)
	}
	if toks := web.AccessTokens(sc.srv); len(toks) != 1 {
		t.Fatalf("%d sessions after the admin's login", len(toks))
	} else {
		sc.admin = &api.Client{BaseURL: sc.admin.BaseURL, HTTP: sc.admin.HTTP, Token: toks[0]}
	}
	engPW := sc.staff("nanshan1", []string{"fieldops"}, "440305")
	revPW := sc.staff("rev1", []string{"reviewer"})

	// Nobody logged in: the front page is the login page, other pages send to it, forms get 401.
	anon := sc.browser()
	if r := anon.get("/"); r.status != http.StatusOK || !strings.Contains(r.body, `id="login"`) || strings.Contains(r.body, nanshan) {
		t.Fatalf("front page before login: %d %.300s", r.status, r.body)
	}
	if r := anon.get("/devices?status=online"); r.status != http.StatusSeeOther || r.h.Get("Location") != "/login?next=%2Fdevices%3Fstatus%3Donline" {
		t.Fatalf("devices before login: %d to %q", r.status, r.h.Get("Location"))
	}
	if r := anon.do(http.MethodPost, "/devices/"+nanshan+"/revoke", url.Values{}); r.status != http.StatusUnauthorized {
		t.Fatalf("form before login: %d", r.status)
	}

	// The login goes to the hub's authorization endpoint with PKCE S256, a nonce and the fleet
	// API as resource, and binds the login to this browser with a cookie.
	eng := sc.browser()
	r := eng.get("/login?next=%2Fdevices")
	wantCookie(t, r.h, "__Host-kf_login")
	az, err := url.Parse(r.h.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	q := az.Query()
	if q.Get("code_challenge_method") != "S256" || len(q.Get("code_challenge")) != 43 || q.Get("state") == "" || q.Get("nonce") == "" ||
		q.Get("client_id") != "fleet-console" || q.Get("redirect_uri") != sc.url+"/callback" || q.Get("resource") != api.FleetResource(sc.hub.HTTPURL) {
		t.Fatalf("authorization request %s", az)
	}
	back := eng.hubLogin(az.String(), "nanshan1", engPW)

	// The code is useless in another browser (no binding cookie), and then spent.
	if r := anon.get(back); r.status != http.StatusBadRequest || !strings.Contains(r.body, "login") {
		t.Fatalf("callback in another browser: %d %.300s", r.status, r.body)
	}
	if r := eng.get(back); r.status != http.StatusBadRequest {
		t.Fatalf("callback whose state was spent: %d", r.status)
	}
	// Logging in again goes straight through (the hub remembers the login).
	r = eng.get(eng.hubLogin(eng.startLogin("/devices"), "nanshan1", engPW))
	if r.status != http.StatusSeeOther || r.h.Get("Location") != "/devices" {
		t.Fatalf("callback: %d to %q %.300s", r.status, r.h.Get("Location"), r.body)
	}
	wantCookie(t, r.h, "__Host-kf_session")
	if r := eng.get(back); r.status != http.StatusBadRequest {
		t.Fatalf("an old callback replayed: %d", r.status)
	}

	// The county engineer sees their kiosk, not the other county's, whose page is 403 (the hub's).
	r = eng.get("/devices")
	if r.status != http.StatusOK || !strings.Contains(r.body, nanshan) || strings.Contains(r.body, futian) ||
		!strings.Contains(r.body, "nanshan1") || !strings.Contains(r.body, "440305") {
		t.Fatalf("devices as the county engineer: %d %.2000s", r.status, r.body)
	}
	if r := eng.get("/devices/" + nanshan); r.status != http.StatusOK {
		t.Fatalf("own kiosk: %d", r.status)
	}
	if r := eng.get("/devices/" + futian); r.status != http.StatusForbidden {
		t.Fatalf("another county's kiosk: %d %.300s", r.status, r.body)
	}
	csrf := csrfField.FindStringSubmatch(eng.get("/devices/" + nanshan).body)
	if csrf == nil {
		t.Fatal("no csrf field")
	}
	if r := eng.do(http.MethodPost, "/devices/"+futian+"/revoke", url.Values{"csrf": {csrf[1]}, "confirm": {"yes"}}); r.status != http.StatusForbidden {
		t.Fatalf("revoking another county's kiosk: %d", r.status)
	}
	if d, err := sc.admin.Device(ctx, futian); err != nil || d.Device.Revoked {
		t.Fatalf("the other county's kiosk after the refused revoke: %+v %v", d.Device, err)
	}

	// The admin's audit page shows the refused revoke, with who and the result; the engineer has
	// no audit page (the hub's 403).
	if r := adm.get("/audit?actor=nanshan1"); r.status != http.StatusOK || !strings.Contains(r.body, "/api/v1/devices/"+futian+"/revoke") ||
		!strings.Contains(r.body, "forbidden") || !strings.Contains(r.body, "POST /devices/{id}/revoke") {
		t.Fatalf("audit page: %d %.3000s", r.status, r.body)
	}
	if r := eng.get("/audit"); r.status != http.StatusForbidden {
		t.Fatalf("audit page for the engineer: %d", r.status)
	}

	// The overview's region hierarchy, from the hub's counts: the admin drills down from the
	// provinces to Shenzhen's counties and to Nanshan's site; the engineer sees Nanshan only.
	if r := adm.get("/?lang=en"); r.status != http.StatusOK || !strings.Contains(between(r.body, `id="hierarchy"`, "</table>"), `href="/?region=44"`) {
		t.Fatalf("overview: %d %.3000s", r.status, r.body)
	}
	r = adm.get("/?region=4403&lang=en")
	counties := between(r.body, `id="hierarchy"`, "</table>")
	if r.status != http.StatusOK || !strings.Contains(counties, `href="/?region=440304"`) || !strings.Contains(counties, `href="/?region=440305"`) ||
		!strings.Contains(r.body, `<a href="/?region=44">Province 44</a>`) || !strings.Contains(r.body, `aria-current="page">City 4403</b>`) {
		t.Fatalf("overview of Shenzhen: %d %.3000s", r.status, r.body)
	}
	r = adm.get("/?region=440305&lang=en")
	if sites := between(r.body, `id="hierarchy"`, "</table>"); !strings.Contains(sites, `href="/devices?site=nanshan-1"`) || strings.Contains(sites, "futian-1") ||
		strings.Contains(between(r.body, `id="problems"`, "<h2>"), futian) {
		t.Fatalf("overview of Nanshan: %.3000s", r.body)
	}
	if r := eng.get("/?region=4403&lang=en"); strings.Contains(r.body, "440304") || !strings.Contains(r.body, `href="/?region=440305"`) {
		t.Fatalf("the engineer's overview of Shenzhen: %.3000s", r.body)
	}
	if r := adm.get("/?region=4x"); r.status != http.StatusBadRequest {
		t.Fatalf("overview of a bad region: %d", r.status)
	}

	// The security page: the engineer's refused actions are security events, in the
	// engineer's name, on the admin's page and on the engineer's own.
	for _, b := range []*staffBrowser{adm, eng} {
		var page string
		proctest.Eventually(t, 10*time.Second, "the refused actions on the security page", func() bool {
			r := b.get("/security?staff=nanshan1&lang=en")
			page = r.body
			return r.status == http.StatusOK && strings.Contains(r.body, "staff action refused (403)")
		})
		if !strings.Contains(page, `href="/security?staff=nanshan1&amp;within=24h"`) {
			t.Errorf("the security page links no staff member: %.3000s", between(page, `id="security"`, "</table>"))
		}
	}

	// An expired access token is refreshed on the next request.
	old := web.ExpireAccessTokens(sc.srv)
	if r := eng.get("/devices"); r.status != http.StatusOK || !strings.Contains(r.body, nanshan) {
		t.Fatalf("devices after the access token expired: %d", r.status)
	}
	now := web.AccessTokens(sc.srv)
	fresh := slices.DeleteFunc(slices.Clone(now), func(tok string) bool { return slices.Contains(old, tok) })
	if len(now) != 2 || len(fresh) != 1 { // the engineer's refreshed, the idle admin's not yet
		t.Fatalf("after the access tokens expired: %d sessions, %d refreshed", len(now), len(fresh))
	}

	// Logout needs the form token, ends the session here and sends the browser to the hub's
	// end-session endpoint; the refresh token is revoked there.
	refreshes := web.RefreshTokens(sc.srv) // the admin's and the engineer's
	if r := eng.do(http.MethodPost, "/logout", url.Values{}); r.status != http.StatusForbidden {
		t.Fatalf("logout without the form token: %d", r.status)
	}
	r = eng.do(http.MethodPost, "/logout", url.Values{"csrf": {csrf[1]}})
	end, _ := url.Parse(r.h.Get("Location"))
	if r.status != http.StatusSeeOther || end == nil || !strings.HasPrefix(end.String(), sc.hub.HTTPURL+"/") ||
		end.Query().Get("id_token_hint") == "" || end.Query().Get("post_logout_redirect_uri") != sc.url+"/" {
		t.Fatalf("logout: %d to %q", r.status, r.h.Get("Location"))
	}
	if c := cookie(r.h, "__Host-kf_session"); !strings.Contains(c, "Max-Age=0") {
		t.Fatalf("session cookie not cleared: %q", c)
	}
	if r := eng.get("/devices"); r.status != http.StatusSeeOther {
		t.Fatalf("devices after logout: %d", r.status)
	}
	if n := len(web.AccessTokens(sc.srv)); n != 1 {
		t.Fatalf("%d sessions after logout, want the admin's", n)
	}
	engRefresh := slices.DeleteFunc(refreshes, func(rt string) bool { return slices.Contains(web.RefreshTokens(sc.srv), rt) })
	if len(engRefresh) != 1 || engRefresh[0] == "" {
		t.Fatalf("the engineer's refresh token: %d", len(engRefresh))
	}
	if status := sc.refresh(engRefresh[0]); status != http.StatusBadRequest {
		t.Fatalf("refresh with the logged-out engineer's refresh token: HTTP %d, want 400 (invalid_grant)", status)
	}
	if status := sc.refresh(web.RefreshTokens(sc.srv)[0]); status != http.StatusOK {
		t.Fatalf("refresh with the admin's refresh token: HTTP %d", status) // the check above can fail
	}

	// A reviewer may log in at the hub but not use the console.
	rev := sc.browser()
	r = rev.get(rev.hubLogin(rev.startLogin("/"), "rev1", revPW))
	if r.status != http.StatusForbidden || cookie(r.h, "__Host-kf_session") != "" {
		t.Fatalf("reviewer: %d %.300s", r.status, r.body)
	}
}

// refresh redeems a refresh token at the hub's token endpoint as the console (RFC 6749 §6) and
// returns the status.
func (sc *staffConsole) refresh(rt string) int {
	sc.t.Helper()
	d, err := sc.admin.Discover(sc.t.Context())
	if err != nil {
		sc.t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, d.TokenEndpoint, strings.NewReader(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("fleet-console", url.QueryEscape(sc.hub.Credentials["client secret fleet-console"]))
	resp, err := sc.admin.HTTP.Do(req)
	if err != nil {
		sc.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
