package identity_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"

	"github.com/kioskfleet/kioskfleet/hub/identity/identitytest"
	"github.com/kioskfleet/kioskfleet/hub/store"
)

const chromium = "/usr/bin/chromium"

// TestBrowserLoginToAnotherOrigin logs in with Chromium through the login page of a client whose
// redirect URI is on another origin (as a department's portal is): the page's security headers
// (CSP) must let the browser follow the redirect back to the client with the code.
func TestBrowserLoginToAnotherOrigin(t *testing.T) {
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("browser test skipped: %s not found (install the Debian package chromium)", chromium)
	}
	e := identitytest.New(t)
	codes := make(chan string, 1)
	rp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case codes <- r.URL.Query().Get("code"):
		default:
		}
		w.Write([]byte("ok"))
	}))
	t.Cleanup(rp.Close)
	if err := e.Store.PutClient(context.Background(), store.Client{ID: "portal", Name: "Portal", AppType: "web", FirstParty: true,
		RedirectURIs: []string{rp.URL + "/cb"}, GrantTypes: []string{"authorization_code"}, Scopes: []string{"openid"}}); err != nil {
		t.Fatal(err)
	}
	v := oauth2.GenerateVerifier()
	q := url.Values{"client_id": {"portal"}, "redirect_uri": {rp.URL + "/cb"}, "response_type": {"code"}, "scope": {"openid"},
		"state": {"s"}, "code_challenge": {oauth2.S256ChallengeFromVerifier(v)}, "code_challenge_method": {"S256"}}

	actx, cancelA := chromedp.NewExecAllocator(context.Background(), chromedp.ExecPath(chromium),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()))
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() { cancelT(); cancelC(); cancelA() })
	if err := chromedp.Do(ctx,
		chromedp.Navigate(e.Issuer+"/oidc/authorize?"+q.Encode()),
		chromedp.WaitVisible(chromedp.CSS("#u")),
		chromedp.SendKeys(chromedp.CSS("#u"), identitytest.AdminUser),
		chromedp.SendKeys(chromedp.CSS("#p"), identitytest.AdminPassword),
		chromedp.Submit(chromedp.CSS("#p")),
	); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-codes:
		if code == "" {
			t.Fatal("the client was reached without a code")
		}
	case <-time.After(20 * time.Second):
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		t.Fatalf("the browser did not reach the client's redirect URI (it is at %s)", loc)
	}
}
