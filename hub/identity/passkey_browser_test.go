package identity_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/kioskfleet/kioskfleet/hub/identity"
	"github.com/kioskfleet/kioskfleet/hub/store"
)

// TestBrowserPasskeys runs the citizen's passkey flows in Chromium with the DevTools virtual
// authenticator (a CTAP2 platform authenticator with user verification): phone login, a
// passkey registered on the account page, a login with it alone to a web relying party (go-oidc
// checks the tokens and their acr), a kiosk's QR login approved on a phone-sized page, and the
// passkey removed.
func TestBrowserPasskeys(t *testing.T) {
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("browser test skipped: %s not found (install the Debian package chromium)", chromium)
	}
	e, file := citizenEnv(t)
	bg := context.Background()
	codes := make(chan string, 1)
	rpSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case codes <- r.URL.Query().Get("code"):
		default:
		}
		w.Write([]byte("ok"))
	}))
	t.Cleanup(rpSrv.Close)
	if err := e.Store.PutClient(bg, store.Client{ID: "portal", Name: "Portal", AppType: "web", FirstParty: true,
		RedirectURIs: []string{rpSrv.URL + "/cb"}, GrantTypes: []string{"authorization_code"}, Scopes: []string{"openid"}}); err != nil {
		t.Fatal(err)
	}

	actx, cancelA := chromedp.NewExecAllocator(bg, chromedp.ExecPath(chromium),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()))
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelT(); cancelC(); cancelA() })
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + '\n' + document.body.innerText`))
			t.Fatalf("%s: %v; the page:\n%s", what, err, page)
		}
	}

	// Phone login to the account page.
	do("phone login page", chromedp.Navigate(e.Issuer+"/oidc/me?lang=en"), chromedp.WaitVisible(chromedp.CSS("#ph")),
		chromedp.SendKeys(chromedp.CSS("#ph"), "138 0013 8000"), chromedp.Click(chromedp.CSS("#send-code")),
		chromedp.WaitVisible(chromedp.CSS("#code")))
	do("code entry", chromedp.SendKeys(chromedp.CSS("#code"), lastCode(t, file, canaryE164)),
		chromedp.Click(chromedp.CSS("#verify-code")), chromedp.WaitVisible(chromedp.CSS("#passkey-register")))

	// The virtual authenticator: a platform authenticator with a PIN or biometrics.
	if _, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	va, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
		Options: &webauthn.VirtualAuthenticatorOptions{Protocol: webauthn.AuthenticatorProtocolCtap2, Ctap2version: webauthn.Ctap2versionCtap21,
			Transport: webauthn.AuthenticatorTransportInternal, HasResidentKey: true, HasUserVerification: true,
			IsUserVerified: true, AutomaticPresenceSimulation: true}})
	if err != nil {
		t.Fatal(err)
	}
	do("passkey registration", chromedp.SendKeys(chromedp.CSS("#passkey-name"), "Chromium"),
		chromedp.Click(chromedp.CSS("#passkey-register")),
		chromedp.WaitVisible(chromedp.CSS(`#passkeys form`)))
	creds, err := chromedp.Call(ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: va.AuthenticatorID})
	if err != nil || len(creds.Credentials) != 1 || !creds.Credentials[0].IsResidentCredential {
		t.Fatalf("the authenticator holds %+v (%v), want one discoverable credential", creds, err)
	}

	// A web relying party asks for the passkey level; the citizen logs in with the passkey alone.
	prov, err := oidc.NewProvider(bg, e.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	conf := oauth2.Config{ClientID: "portal", Endpoint: prov.Endpoint(), RedirectURL: rpSrv.URL + "/cb", Scopes: []string{"openid"}}
	v := oauth2.GenerateVerifier()
	do("passkey login", chromedp.Navigate(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(v),
		oauth2.SetAuthURLParam("prompt", "login"), oauth2.SetAuthURLParam("acr_values", identity.ACRPasskey))),
		chromedp.WaitVisible(chromedp.CSS("#passkey-login")), chromedp.Click(chromedp.CSS("#passkey-login")))
	var code string
	select {
	case code = <-codes:
	case <-time.After(30 * time.Second):
		loc, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + '\n' + document.body.innerText`))
		t.Fatalf("the browser did not reach the relying party (it is at %s)", loc)
	}
	tok, err := conf.Exchange(bg, code, oauth2.VerifierOption(v))
	if err != nil {
		t.Fatal(err)
	}
	idt, err := prov.Verifier(&oidc.Config{ClientID: "portal"}).Verify(bg, tok.Extra("id_token").(string))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		ACR string   `json:"acr"`
		AMR []string `json:"amr"`
	}
	idt.Claims(&c)
	if c.ACR != identity.ACRPasskey || strings.Join(c.AMR, " ") != "hwk mfa" {
		t.Errorf("passkey login in Chromium: acr %q amr %v", c.ACR, c.AMR)
	}

	// A kiosk's QR login, approved on a phone-sized page with that session.
	k := e.EnrollKiosk(t, "kiosk-ft-01")
	d := kioskDevice(t, e, k)
	do("QR approval", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2)),
		chromedp.Navigate(d.verify), chromedp.WaitVisible(chromedp.CSS(`button[value=approve]`)),
		chromedp.Click(chromedp.CSS(`button[value=approve]`)), chromedp.WaitNotPresent(chromedp.CSS(`button[value=approve]`)))
	st, m, err := poll(e, identity.ClientKioskShell, d.code)
	if err != nil || st != 200 {
		t.Fatalf("the kiosk's token after approval on the phone: %d %v %v", st, m, err)
	}
	kt, err := oidcVerifier(t, e, identity.ClientKioskShell).Verify(bg, m["id_token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	kt.Claims(&c)
	if c.ACR != identity.ACRDevice || strings.Join(c.AMR, " ") != "hwk mfa" {
		t.Errorf("kiosk session approved with a passkey session: acr %q amr %v", c.ACR, c.AMR)
	}

	// The passkey removed on the account page.
	do("passkey removal", chromedp.Navigate(e.Issuer+"/oidc/me?lang=en"), chromedp.WaitVisible(chromedp.CSS(`#passkeys form button`)),
		chromedp.Click(chromedp.CSS(`#passkeys form button`)), chromedp.WaitNotPresent(chromedp.CSS(`#passkeys form`)))
	as, _ := e.Store.ListAccounts(bg, "citizen")
	if len(as) != 1 {
		t.Fatalf("%d citizen accounts", len(as))
	}
	if keys, _ := e.Store.ListPasskeys(bg, as[0].ID); len(keys) != 0 {
		t.Errorf("%d passkeys left after removal", len(keys))
	}
}
