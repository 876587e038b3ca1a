package identity_test

import (
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/kioskfleet/kioskfleet/hub/identity"
	"github.com/kioskfleet/kioskfleet/hub/identity/identitytest"
)

// The pages are zh-CN by default, English on request, and load nothing from elsewhere.
func TestPagesLanguagesAndNoExternalAssets(t *testing.T) {
	e := identitytest.New(t)
	u := authURL(e, "rp", e.Callback, url.Values{"code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())},
		"code_challenge_method": {"S256"}})
	b := e.NewBrowser()
	zh, err := b.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(zh.Body, `<html lang="zh">`) || !strings.Contains(zh.Body, "用户名") || !strings.Contains(zh.Body, "Test RP") {
		t.Errorf("default page is not Chinese: %.300s", zh.Body)
	}
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Accept-Language", "en-US,en;q=0.9")
	resp, err := b.C.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "Username") {
		t.Error("Accept-Language: en does not give English")
	}
	en, _ := b.Get(zh.URL.String() + "&lang=en")
	if !strings.Contains(en.Body, `<html lang="en">`) || !strings.Contains(en.Body, "Username") {
		t.Errorf("English page: %.300s", en.Body)
	}
	dev, _ := b.Get(e.Issuer + "/oidc/device?lang=en")
	for name, p := range map[string]*identitytest.Page{"login zh": zh, "login en": en, "device": dev} {
		// The provider's own script (passkeys) is the only thing a page loads.
		body := strings.ReplaceAll(p.Body, `<script src="/oidc/assets/citizen.js"></script>`, "")
		if regexp.MustCompile(`(?i)(src=|<link|@import|url\(|href="https?:)`).MatchString(body) {
			t.Errorf("%s page refers to an external asset", name)
		}
		if !strings.Contains(p.Body, "min-height:56px") {
			t.Errorf("%s page lacks large touch targets", name)
		}
	}
	if n := strings.Count(zh.Body, "<script"); n != 1 || !strings.Contains(zh.Body, `<script src="/oidc/assets/citizen.js">`) {
		t.Errorf("the login page has %d scripts, want only the provider's own", n)
	}
}

func TestPromptNone(t *testing.T) {
	e := identitytest.New(t)
	pkce := url.Values{"code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())},
		"code_challenge_method": {"S256"}, "prompt": {"none"}}
	b := e.NewBrowser()
	p, err := b.Get(authURL(e, "rp", e.Callback, pkce))
	if err != nil {
		t.Fatal(err)
	}
	if loc, _ := url.Parse(p.Loc); loc == nil || loc.Query().Get("error") != "login_required" || loc.Query().Get("state") != "s" {
		t.Errorf("prompt=none without a session: %q", p.Loc)
	}
	// With a session, a first-party client gets a code at once; a third party needs consent.
	if _, err := b.Login(authURL(e, "rp", e.Callback, url.Values{"code_challenge": pkce["code_challenge"], "code_challenge_method": {"S256"}}),
		identitytest.AdminUser, identitytest.AdminPassword); err != nil {
		t.Fatal(err)
	}
	p, _ = b.Get(authURL(e, "rp", e.Callback, pkce))
	if loc, _ := url.Parse(p.Loc); loc == nil || loc.Query().Get("code") == "" {
		t.Errorf("prompt=none with a session: %q", p.Loc)
	}
	p, _ = b.Get(authURL(e, "third", e.Callback, pkce))
	if loc, _ := url.Parse(p.Loc); loc == nil || loc.Query().Get("error") != "consent_required" {
		t.Errorf("prompt=none for a third party: %q", p.Loc)
	}
}

// A password login at the kiosk leaves no browser session behind for the next citizen, and
// its session is short and not refreshable.
func TestKioskPasswordLoginLeavesNoSession(t *testing.T) {
	e := identitytest.New(t)
	b := e.NewBrowser()
	verifier := oauth2.GenerateVerifier()
	u := authURL(e, identity.ClientKioskShell, "http://127.0.0.1/kiosk/callback", url.Values{
		"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"}})
	cb, err := b.Login(u, identitytest.AdminUser, identitytest.AdminPassword)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range b.C.Jar.Cookies(mustURL(e.Issuer + "/oidc/")) {
		if c.Name == "kf_sid" {
			t.Error("kiosk login left a browser session cookie")
		}
	}
	p, _ := b.Get(u)
	if !strings.Contains(p.Body, `name="password"`) {
		t.Error("next citizen at the kiosk is not asked to log in")
	}
	st, tok, err := e.PostForm("/oidc/token", url.Values{"grant_type": {"authorization_code"}, "code": {cb.Query().Get("code")},
		"redirect_uri": {"http://127.0.0.1/kiosk/callback"}, "code_verifier": {verifier}, "client_id": {identity.ClientKioskShell}}, "", "")
	if err != nil || st != 200 {
		t.Fatalf("%d %v %v", st, tok, err)
	}
	if tok["refresh_token"] != nil || tok["expires_in"].(float64) > 600 {
		t.Errorf("kiosk session: %v", tok)
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// Every form's token is bound to the browser that loaded it (a cookie): a login form fetched
// without cookies gets a fresh cookie and a token of its own each time (no login CSRF); a token
// posted from another browser, or from one that sends no cookie, is refused with the reason. The
// same holds for the consent and device approval forms.
func TestFormsBoundToBrowser(t *testing.T) {
	e := identitytest.New(t)
	tokens := map[string]bool{}
	for range 3 {
		resp, err := http.Get(e.Issuer + "/oidc/device") // no cookie jar
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(body)
		if m == nil || len(resp.Cookies()) != 1 || resp.Cookies()[0].Name != "kf_form" || !resp.Cookies()[0].HttpOnly {
			t.Fatalf("login page: token %q, cookies %v", m, resp.Cookies())
		}
		tokens[string(m[1])] = true
	}
	if len(tokens) != 3 {
		t.Errorf("three cookie-less loads of the login form gave %d distinct tokens, want 3", len(tokens))
	}

	otherBrowser := []string{"another browser", "另一个浏览器"}
	noCookie := []string{"did not send this site", "没有带上本站的 Cookie"}
	refused := func(name string, p *identitytest.Page, err error, why []string) {
		t.Helper()
		if err != nil || p.Status != http.StatusForbidden || !strings.Contains(p.Body, why[0]) && !strings.Contains(p.Body, why[1]) {
			t.Errorf("%s: %v, status %d, want 403 saying %q: %.1500s", name, err, p.Status, why[0], p.Body)
		}
	}
	login := url.Values{"username": {identitytest.AdminUser}, "password": {identitytest.AdminPassword}}

	// Login: browser a's form, posted by browser b (which holds a form cookie of its own) and by
	// a client with no cookie.
	a, b := e.NewBrowser(), e.NewBrowser()
	form, err := a.Get(e.Issuer + "/oidc/device?lang=en")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(e.Issuer + "/oidc/device"); err != nil {
		t.Fatal(err)
	}
	p, err := b.Submit(form, login)
	refused("login form from another browser", p, err, otherBrowser)
	p, err = e.NewBrowser().Submit(form, login)
	refused("login form without the cookie", p, err, noCookie)

	// Consent (a third-party client): a's form posted by b (logged in itself) and without cookies.
	pkce := url.Values{"code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"}, "lang": {"en"}}
	if form, err = a.Get(authURL(e, "third", e.Callback, pkce)); err == nil {
		form, err = a.Submit(form, login)
	}
	if err != nil || !strings.Contains(form.Body, `value="approve"`) {
		t.Fatalf("no consent page: %v %.300s", err, form.Body)
	}
	if p, err = b.Get(authURL(e, "third", e.Callback, pkce)); err == nil {
		_, err = b.Submit(p, login)
	}
	if err != nil {
		t.Fatal(err)
	}
	p, err = b.Submit(form, url.Values{"action": {"approve"}})
	refused("consent form from another browser", p, err, otherBrowser)
	p, err = e.NewBrowser().Submit(form, url.Values{"action": {"approve"}})
	refused("consent form without the cookie", p, err, noCookie)
	if p, err = a.Submit(form, url.Values{"action": {"approve"}}); err != nil || p.Loc == "" {
		t.Errorf("consent in its own browser: %v %d %.300s", err, p.Status, p.Body)
	}

	// Device approval: a's approval page posted by b and without cookies leaves it pending.
	d := startDevice(t, e, url.Values{"client_id": {identity.ClientFleetctl}, "scope": {"openid"}})
	if form, err = a.Get(d.verify + "&lang=en"); err != nil || !strings.Contains(form.Body, `value="approve"`) {
		t.Fatalf("no approval page: %v %.300s", err, form.Body)
	}
	p, err = b.Submit(form, url.Values{"action": {"approve"}})
	refused("approval from another browser", p, err, otherBrowser)
	p, err = e.NewBrowser().Submit(form, url.Values{"action": {"approve"}})
	refused("approval without the cookie", p, err, noCookie)
	st, m, err := poll(e, identity.ClientFleetctl, d.code)
	oauthErr(t, st, m, err, 400, "authorization_pending")
}

// The device approval pages say what is being approved: the login page shows the code, the title
// says a QR login at a kiosk only for a kiosk, and the answer says where to go back to.
func TestDeviceApprovalPagesSayWhat(t *testing.T) {
	e := identitytest.New(t)
	k := e.EnrollKiosk(t, "kiosk-ft-01")
	for _, tc := range []struct {
		name        string
		d           deviceAuth
		title, done string
		notTitle    string
	}{
		{"fleetctl", startDevice(t, e, url.Values{"client_id": {identity.ClientFleetctl}, "scope": {"openid"}}),
			"<h1>Confirm a login on another device</h1>", "Go back to the device where you started the login.", "QR"},
		{"kiosk", kioskDevice(t, e, k), "<h1>Confirm QR login at a kiosk</h1>", "Please go back to the kiosk.", "another device"},
	} {
		b := e.NewBrowser()
		p, err := b.Get(tc.d.verify + "&lang=en")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(p.Body, "<h1>Log in</h1>") || !strings.Contains(p.Body, "Log in to confirm the login with code <b class=\"who\">"+tc.d.user+"</b>") {
			t.Errorf("%s: login page does not show the code %s: %.1500s", tc.name, tc.d.user, p.Body)
		}
		if p, err = b.Submit(p, url.Values{"username": {identitytest.AdminUser}, "password": {identitytest.AdminPassword}}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(p.Body, tc.title) || strings.Contains(p.Body, tc.notTitle) || !strings.Contains(p.Body, tc.d.user) {
			t.Errorf("%s: approval page, want %q and the code %s: %.1500s", tc.name, tc.title, tc.d.user, p.Body)
		}
		if p, err = b.Submit(p, url.Values{"action": {"approve"}}); err != nil || !strings.Contains(p.Body, tc.done) || !strings.Contains(p.Body, "<h1>Done</h1>") {
			t.Errorf("%s: after approving, want %q: %v %.1500s", tc.name, tc.done, err, p.Body)
		}
	}
	// The page to enter a code is titled so.
	b := e.NewBrowser()
	p, _ := b.Get(e.Issuer + "/oidc/device?lang=en")
	p, _ = b.Submit(p, url.Values{"username": {identitytest.AdminUser}, "password": {identitytest.AdminPassword}})
	if p == nil || !strings.Contains(p.Body, "<h1>Enter the code</h1>") {
		t.Errorf("code entry page: %+v", p)
	}
}
