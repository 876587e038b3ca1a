package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"

	"github.com/kioskfleet/kioskfleet/agent/localapi"
	"github.com/kioskfleet/kioskfleet/agent/localapi/localapitest"
	"github.com/kioskfleet/kioskfleet/agent/shell"
	"github.com/kioskfleet/kioskfleet/drivers/idcard/idcardsim"
	"github.com/kioskfleet/kioskfleet/hub/identity"
	"github.com/kioskfleet/kioskfleet/hub/identity/identitytest"
)

// passkeyHub starts a hub serving https://localhost:PORT (WebAuthn needs a domain as relying
// party ID), sending phone codes to the development file sms.
func passkeyHub(t *testing.T, sms string) *hub {
	t.Helper()
	h := unstartedHub(t)
	_, port, _ := net.SplitHostPort(h.httpAddr)
	h.client.BaseURL = "https://localhost:" + port
	h.args = []string{"--public-url", h.client.BaseURL, "--sms-dev-file", sms}
	h.start()
	h.readToken()
	return h
}

// phoneBrowser is a citizen's phone browser on the hub.
func phoneBrowser(h *hub) *identitytest.Browser {
	b := identitytest.NewBrowserFor(h.client.BaseURL)
	b.C.Transport = h.client.HTTP.Transport
	return b
}

// passkeyCitizen registers a citizen on her phone by a code sent to number, adds a passkey, and
// returns a browser logged in with that passkey, and the authenticator.
func passkeyCitizen(t *testing.T, h *hub, sms, number string) (*identitytest.Browser, *identitytest.Authenticator) {
	t.Helper()
	reg := phoneBrowser(h)
	login, err := reg.Get(h.client.BaseURL + "/oidc/me")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.PhoneLogin(login, number, sms); err != nil {
		t.Fatal(err)
	}
	acct, err := reg.Get(h.client.BaseURL + "/oidc/me")
	if err != nil {
		t.Fatal(err)
	}
	auth := &identitytest.Authenticator{Origin: h.client.BaseURL}
	if err := reg.AddPasskey(acct, auth, "phone"); err != nil {
		t.Fatal(err)
	}
	b := phoneBrowser(h)
	if login, err = b.Get(h.client.BaseURL + "/oidc/me"); err != nil {
		t.Fatal(err)
	}
	if p, err := b.PasskeyLogin(login, auth); err != nil || !strings.Contains(p.Body, `id="who"`) {
		t.Fatalf("passkey login to the account page: %v", err)
	}
	return b, auth
}

// passkeyACR logs the citizen in with her passkey in a fresh browser, through the mobile app's
// code flow (PKCE) asking for acrValues, and returns the ID token's acr.
func passkeyACR(t *testing.T, h *hub, auth *identitytest.Authenticator, acrValues string) string {
	t.Helper()
	const redirect = "cn.gov.kioskfleet.app:/oauth2redirect"
	v := oauth2.GenerateVerifier()
	q := url.Values{"client_id": {identity.ClientMobileApp}, "redirect_uri": {redirect}, "response_type": {"code"},
		"scope": {"openid"}, "state": {"s"}, "code_challenge": {oauth2.S256ChallengeFromVerifier(v)}, "code_challenge_method": {"S256"}}
	if acrValues != "" {
		q.Set("acr_values", acrValues)
	}
	b := phoneBrowser(h)
	login, err := b.Get(h.client.BaseURL + "/oidc/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	p, err := b.PasskeyLogin(login, auth)
	if err != nil {
		t.Fatal(err)
	}
	back, _ := url.Parse(p.Loc)
	if back == nil || back.Query().Get("code") == "" {
		t.Fatalf("no code for the app: %d %q %.300s", p.Status, p.Loc, p.Body)
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")}, "redirect_uri": {redirect},
		"code_verifier": {v}, "client_id": {identity.ClientMobileApp}}
	res, err := h.client.HTTP.PostForm(h.client.BaseURL+"/oidc/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var tok struct {
		IDToken string `json:"id_token"`
	}
	if err := json.NewDecoder(res.Body).Decode(&tok); err != nil || res.StatusCode != 200 {
		t.Fatalf("token: %d %v", res.StatusCode, err)
	}
	parts := strings.Split(tok.IDToken, ".")
	if len(parts) != 3 {
		t.Fatalf("id token %q", tok.IDToken)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c struct {
		ACR string `json:"acr"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	return c.ACR
}

// bindingQR shows the kiosk's QR code for real-name binding, as the shell's page asks for it,
// and approves it for binding on the phone (logged in with her passkey).
func (k *kioskShell) bindingQR(phone *identitytest.Browser) {
	k.t.Helper()
	var q struct {
		UserCode        string `json:"userCode"`
		VerificationURI string `json:"verificationUri"`
	}
	if code := shellCall(k.t, k.addr, "POST", "login/qr?purpose=bind", &q); code != 200 || q.UserCode == "" {
		k.t.Fatalf("binding QR: %d", code)
	}
	k.approveBinding(phone, q.VerificationURI, q.UserCode)
	waitFor(k.t, 30*time.Second, "the kiosk waiting for the card", func() bool { return k.state().QR == shell.QRTapCard })
}

// approveBinding approves the kiosk's QR code (its verification URI and user code) for
// real-name binding on the phone.
func (k *kioskShell) approveBinding(phone *identitytest.Browser, uri, code string) {
	k.t.Helper()
	p, err := phone.Get(uri + "?user_code=" + url.QueryEscape(code))
	if err != nil || !strings.Contains(p.Body, `id="bind"`) {
		k.t.Fatalf("the approval page offers no binding: %v %.400s", err, p.Body)
	}
	if !strings.Contains(p.Body, k.id) {
		k.t.Errorf("the approval page does not name the kiosk %s", k.id)
	}
	if p, err = phone.Submit(p, url.Values{"action": {"bind"}}); err != nil || p.Status != 200 {
		k.t.Fatalf("bind approval: %v %+v", err, p)
	}
}

// tapCard is the shell's page logging in with the card on the devsim reader (Login.IdCard).
func (k *kioskShell) tapCard(c *localapitest.Client) localapitest.Result {
	return c.Do("Login.IdCard", nil, 30*time.Second)
}

// page connects to the local device API as the shell's page does, once the card reader is
// there.
func (k *kioskShell) page() *localapitest.Client {
	k.t.Helper()
	c := localapitest.MustDial(k.t, "ws://"+k.addr+localapi.Path, "http://"+k.addr)
	waitFor(k.t, 20*time.Second, "the card reader connected", func() bool {
		r := c.Do("Common.Status", nil, 5*time.Second)
		return strings.Contains(string(r.Completion.Payload), `"connected":true`)
	})
	return c
}

// Real-name binding at a kiosk, end to end, with a real hub, a real enrolled agent and devsim's
// reader holding the canary card. A citizen who once logged in at the kiosk with her card alone
// (so an account keyed by the card exists) registers on her phone (phone code, then a passkey),
// scans the kiosk's binding QR code and approves it for binding; the kiosk begins no
// session and waits for her card; she taps it; the agent's signed assertion carries the card
// (sealed to the hub) with the QR code's device code; the hub merges the card-only account into
// hers, binding the card to it, and the kiosk's session is hers. Her passkey logins then reach the real-name acr. Another
// citizen's binding of the same card is refused at the kiosk. The ID number is nowhere in the
// hub's or the agent's files and logs, in text or as the card's UCS-2.
func TestRealNameBindingAtKiosk(t *testing.T) {
	sms := filepath.Join(t.TempDir(), "sms.txt")
	k := startKioskAgentOn(t, passkeyHub(t, sms))
	h := k.h
	phone, auth := passkeyCitizen(t, h, sms, "138 0013 8123")
	if acr := passkeyACR(t, h, auth, ""); acr != identity.ACRPasskey {
		t.Fatalf("acr before binding %q, want %q", acr, identity.ACRPasskey)
	}

	// She once logged in at a kiosk with her card alone: an account keyed by the card exists.
	app := k.page()
	if r := k.tapCard(app); r.Code() != "success" {
		t.Fatalf("the card-only login: %s", r.Completion.Raw)
	}
	received := app.Received()
	if code := shellCall(t, k.addr, "POST", "session/end", nil); code != 200 {
		t.Fatalf("logout: %d", code)
	}
	app = k.page()
	k.bindingQR(phone)
	if st := k.state(); st.Session != nil {
		t.Fatalf("a session began before the card: %+v", st.Session)
	}
	r := k.tapCard(app)
	if r.Code() != "success" {
		t.Fatalf("the binding tap: %s", r.Completion.Raw)
	}
	var res localapi.LoginResult
	r.Completion.Decode(t, &res)
	if res.Holder.Name != "张*丰" || res.AccessToken == "" {
		t.Fatalf("login result %s", r.Completion.Raw)
	}
	if st := k.state(); st.Session == nil || st.Session.ACR != shell.ACRIDCard {
		t.Fatalf("the kiosk session after the binding: %+v", st.Session)
	}
	if p, err := phone.Get(h.client.BaseURL + "/oidc/me"); err != nil || !strings.Contains(p.Body, `id="realname"`) {
		t.Fatalf("her account page does not say she is verified: %v", err)
	}
	if acr := passkeyACR(t, h, auth, identity.ACRRealName); acr != identity.ACRRealName {
		t.Errorf("acr after binding %q, want %q", acr, identity.ACRRealName)
	}

	received = append(received, app.Received()...)
	if code := shellCall(t, k.addr, "POST", "session/end", nil); code != 200 {
		t.Fatalf("logout: %d", code)
	}
	// The card-only account was merged into hers (hub/identity realname.go); the hub's log says so.
	if !grepFile(t, h.p.log, "card-only account merged") {
		t.Error("the hub's log does not say the card-only account was merged")
	}

	// Another citizen cannot bind the same card while it is bound to her.
	other, _ := passkeyCitizen(t, h, sms, "139 0013 9123")
	app = k.page()
	k.bindingQR(other)
	if r := k.tapCard(app); r.Code() == "success" || !strings.Contains(string(r.Completion.Raw), "loginRefused") {
		t.Errorf("another account bound her card: %s", r.Completion.Raw)
	}

	// The ID number only as a keyed hash and encrypted: in no file of the hub or the agent.
	k.noCardNumber(idcardsim.CanaryResident)
	for _, m := range append(received, app.Received()...) {
		if bytes.Contains(m, []byte(idcardsim.CanaryResident)) {
			t.Errorf("the shell's page got the ID number: %s", m)
		}
	}
}

// The binding as the citizen sees it on the kiosk shell's page in Chromium: the 实名认证 button
// shows the binding QR code; once she approves it on her phone, the page asks for her card
// and, the card read, greets her (masked) in her own session.
func TestRealNameBindingOnShellPage(t *testing.T) {
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("skipped: %s not found (Debian package chromium)", chromium)
	}
	sms := filepath.Join(t.TempDir(), "sms.txt")
	k := startKioskAgentOn(t, passkeyHub(t, sms))
	k.shots, k.ctx = t.TempDir(), browser(t)
	phone, _ := passkeyCitizen(t, k.h, sms, "138 0013 8123")
	if err := chromedp.Do(k.ctx, chromedp.Navigate("http://"+k.addr+"/")); err != nil {
		t.Fatal(err)
	}
	k.until("the attract screen", `document.querySelector('#screen').dataset.view === 'attract' && !document.querySelector('#bind-qr').disabled`)
	k.click("#bind-qr")
	k.until("the binding QR code", `document.querySelector('#qr-code') !== null && text('#qr-user-code').length === 9 && text('#screen').includes('实名认证')`)
	k.approveBinding(phone, k.eval(`document.querySelector('#qr-uri').textContent`), k.eval(`document.querySelector('#qr-user-code').textContent`))
	k.until("her home screen, greeted masked", `document.querySelector('#screen').dataset.view === 'home' && text('#greeting').includes('张*丰')`)
	if st := k.state(); st.Session == nil || st.Session.ACR != shell.ACRIDCard {
		t.Fatalf("the session after the binding: %+v", st.Session)
	}
	if p, err := phone.Get(k.h.client.BaseURL + "/oidc/me"); err != nil || !strings.Contains(p.Body, `id="realname"`) {
		t.Fatalf("her account page does not say she is verified: %v", err)
	}
	if page := k.eval(`document.documentElement.outerHTML + document.body.innerText`); strings.Contains(page, idcardsim.CanaryResident) ||
		strings.Contains(page, "张三丰") {
		t.Error("the page shows her ID number or her name unmasked")
	}
}
