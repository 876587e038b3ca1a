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
		if regexp.MustCompile(`(?i)(src=|<link|@import|url\(|href="https?:)`).MatchString(p.Body) {
			t.Errorf("%s page refers to an external asset", name)
		}
		if !strings.Contains(p.Body, "min-height:56px") {
			t.Errorf("%s page lacks large touch targets", name)
		}
	}
	if h := zh.Body; strings.Contains(h, "<script") {
		t.Error("pages need no script")
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
