package identity_test

import (
	"context"
	"crypto/sha256"
	"html"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/alexedwards/argon2id"
	"golang.org/x/oauth2"

	"github.com/kioskfleet/kioskfleet/hub/identity"
	"github.com/kioskfleet/kioskfleet/hub/identity/connector"
	"github.com/kioskfleet/kioskfleet/hub/identity/connector/connectortest"
	"github.com/kioskfleet/kioskfleet/hub/identity/identitytest"
	"github.com/kioskfleet/kioskfleet/hub/store"
)

// A second fleet-hub provider, over HTTPS with its own certificate, is the upstream OpenID
// Provider of a citizen env ("down") through the generic OIDC connector, configured by a
// connectors file as an operator writes it.
type federation struct {
	up, down *identitytest.Env
	file     string // the down env's SMS file
}

const upstreamSecret = "down-at-up-secret"

func newFederation(t *testing.T) *federation {
	t.Helper()
	f := &federation{up: identitytest.NewHTTPS(t)}
	addStaff(t, f.up, "alice", "alice password 1")
	f.down, f.file = citizenEnv(t, func(c *identity.Config) {
		ctx := context.Background()
		sum := sha256.Sum256([]byte(upstreamSecret))
		err := f.up.Store.PutClient(ctx, store.Client{ID: "down", Name: "Downstream hub", AppType: "web", FirstParty: true,
			RedirectURIs: []string{identity.UpstreamCallback(c.Issuer, "up")}, GrantTypes: []string{"authorization_code"},
			SecretHash: sum[:], Scopes: []string{"openid", "profile"}})
		if err != nil {
			t.Fatal(err)
		}
		conf := filepath.Join(t.TempDir(), "connectors.yaml")
		yaml := "connectors:\n  - id: up\n    type: oidc\n    name: 上游政务服务网\n    issuer: " + f.up.Issuer +
			"\n    client_id: down\n    client_secret_env: KF_TEST_UP_SECRET\n    ca_file: " + f.up.CAFile(t) + "\n"
		if err := os.WriteFile(conf, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		cs, err := connector.Load(conf, func(k string) string {
			return map[string]string{"KF_TEST_UP_SECRET": upstreamSecret}[k]
		})
		if err != nil {
			t.Fatal(err)
		}
		conn, err := connector.Open(cs[0])
		if err != nil {
			t.Fatal(err)
		}
		c.Upstreams = []identity.Upstream{{ID: cs[0].ID, Name: cs[0].Name, Connector: conn}}
	})
	return f
}

// addStaff adds a staff account with a password to the env (an upstream's second user).
func addStaff(t *testing.T, e *identitytest.Env, user, pass string) {
	t.Helper()
	h, err := argon2id.CreateHash(pass, identitytest.FastArgon2)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Store.CreateAccount(context.Background(), store.Account{ID: "s_" + user, Kind: "staff", Username: user,
		PasswordHash: h, Roles: []string{identity.RoleFieldOps}, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
}

var upstreamButtonRE = regexp.MustCompile(`id="upstream-up" href="([^"]*)"`)

// viaUpstream presses the login page's upstream button in b, logs in at the upstream as
// user, and follows the way back: the page the down provider ends on.
func (f *federation) viaUpstream(t *testing.T, b *identitytest.Browser, login *identitytest.Page, user, pass string) *identitytest.Page {
	t.Helper()
	m := upstreamButtonRE.FindStringSubmatch(login.Body)
	if m == nil {
		t.Fatalf("no upstream button on the login page: %.400s", login.Body)
	}
	p, err := b.Get(f.down.Issuer + html.UnescapeString(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	return f.atUpstream(t, b, p, user, pass)
}

// atUpstream logs in at the upstream the page redirects to and follows the way back.
func (f *federation) atUpstream(t *testing.T, b *identitytest.Browser, p *identitytest.Page, user, pass string) *identitytest.Page {
	t.Helper()
	if !strings.HasPrefix(p.Loc, f.up.Issuer+"/oidc/authorize?") {
		t.Fatalf("not sent to the upstream: %d %q %.300s", p.Status, p.Loc, p.Body)
	}
	back, err := f.up.NewBrowser().Login(p.Loc, user, pass)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(back.String(), identity.UpstreamCallback(f.down.Issuer, "up")+"?") {
		t.Fatalf("upstream sent the browser to %s", back)
	}
	end, err := b.Get(back.String())
	if err != nil {
		t.Fatal(err)
	}
	return end
}

// post posts an account page action and returns the answer without following a redirect.
func post(t *testing.T, b *identitytest.Browser, acct *identitytest.Page, action string, form url.Values) *identitytest.Page {
	t.Helper()
	form.Set("csrf", formValue(acct.Body, "csrf"))
	req, _ := http.NewRequest(http.MethodPost, acct.URL.Scheme+"://"+acct.URL.Host+"/oidc/me/"+action, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	c := *b.C
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return &identitytest.Page{Status: resp.StatusCode, URL: resp.Request.URL, Body: string(body), Loc: resp.Header.Get("Location")}
}

func TestFederatedLoginThroughUpstreamHub(t *testing.T) {
	f := newFederation(t)
	ctx := context.Background()
	r := newRP(t, f.down, "rp", "rp-secret")

	var subs []string
	for range 2 { // the first login registers a citizen; the second finds her
		b := f.down.NewBrowser()
		u, v := authorize(r)
		end := f.viaUpstream(t, b, loginPage(t, b, u), identitytest.AdminUser, identitytest.AdminPassword)
		acr, amr, sub := tokenClaims(t, r, end, v)
		if acr != identity.ACRFederated || len(amr) != 1 || amr[0] != "fed" {
			t.Errorf("acr %q amr %v, want %s [fed]", acr, amr, identity.ACRFederated)
		}
		subs = append(subs, sub)
	}
	if subs[0] != subs[1] {
		t.Errorf("two logins with one upstream identity gave subjects %v", subs)
	}
	acct := citizenID(t, f.down)
	links, err := f.down.Store.ListLinks(ctx, acct)
	if err != nil || len(links) != 1 || links[0].Connector != "up" || links[0].Name == "" {
		t.Fatalf("links %+v %v, want one to up with a name", links, err)
	}
	admin, err := f.up.Store.AccountByUsername(ctx, identitytest.AdminUser)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(links[0].Subject, admin.ID) {
		t.Errorf("the link keeps the upstream subject in clear: %q", links[0].Subject)
	}

	// A service demanding a passkey gets no upstream button: an upstream login is level 1.
	b := f.down.NewBrowser()
	u, _ := authorize(r, oauth2.SetAuthURLParam("acr_values", identity.ACRPasskey))
	if p := loginPage(t, b, u); upstreamButtonRE.MatchString(p.Body) {
		t.Error("upstream login offered to a request demanding a passkey")
	}
}

func TestFederatedCallbackChecks(t *testing.T) {
	f := newFederation(t)
	r := newRP(t, f.down, "rp", "rp-secret")
	b := f.down.NewBrowser()
	u, _ := authorize(r)
	login := loginPage(t, b, u)
	m := upstreamButtonRE.FindStringSubmatch(login.Body)
	start, err := b.Get(f.down.Issuer + html.UnescapeString(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	back, err := f.up.NewBrowser().Login(start.Loc, identitytest.AdminUser, identitytest.AdminPassword)
	if err != nil {
		t.Fatal(err)
	}
	// The callback in another browser (login CSRF: an attacker's code in the victim's browser).
	if p, _ := f.down.NewBrowser().Get(back.String()); p.Status != http.StatusBadRequest {
		t.Errorf("callback in another browser: %d, want 400", p.Status)
	}
	// A state never issued.
	q := back.Query()
	q.Set("state", "forged")
	if p, _ := b.Get(identity.UpstreamCallback(f.down.Issuer, "up") + "?" + q.Encode()); p.Status != http.StatusBadRequest {
		t.Errorf("callback with a forged state: %d, want 400", p.Status)
	}
	// The other browser's attempt took the ceremony: the state is one-time, even for its own browser.
	if p, _ := b.Get(back.String()); p.Status != http.StatusBadRequest {
		t.Errorf("callback replayed: %d, want 400", p.Status)
	}
	// The upstream's refusal (error=access_denied) comes back as such.
	start, _ = b.Get(f.down.Issuer + html.UnescapeString(m[1]))
	loc, _ := url.Parse(start.Loc)
	refused := url.Values{"state": {loc.Query().Get("state")}, "error": {"access_denied"}}
	if p, _ := b.Get(identity.UpstreamCallback(f.down.Issuer, "up") + "?" + refused.Encode()); p.Status != http.StatusUnauthorized {
		t.Errorf("refused upstream login: %d, want 401", p.Status)
	}
	// A start link without the login page's token.
	if p, _ := b.Get(f.down.Issuer + "/oidc/upstream/up/login?id=x&csrf=bad"); p.Status != http.StatusForbidden {
		t.Errorf("upstream login without the page's token: %d, want 403", p.Status)
	}
	if n := len(citizens(t, f.down)); n != 0 {
		t.Errorf("%d citizen accounts after refused callbacks", n)
	}
}

func citizens(t *testing.T, e *identitytest.Env) []store.Account {
	t.Helper()
	as, err := e.Store.ListAccounts(context.Background(), "citizen")
	if err != nil {
		t.Fatal(err)
	}
	return as
}

func TestFederatedLinkNeedsStepUp(t *testing.T) {
	f := newFederation(t)
	ctx := context.Background()
	r := newRP(t, f.down, "rp", "rp-secret")

	// A citizen with a phone account; her session grows old.
	b := phoneSession(t, f.down, r, f.file)
	phoneAcct := citizenID(t, f.down)
	f.down.Clock.Advance(11 * time.Minute)
	if p := post(t, b, accountPage(t, f.down, b), "link", url.Values{"connector": {"up"}}); p.Status != http.StatusForbidden || p.Loc != "" {
		t.Errorf("link from a stale session: %d %q, want 403 and no redirect to the upstream", p.Status, p.Loc)
	}

	// An upstream login never lands in her account: it registers another one, and that
	// session (no credential of the account's own) cannot link either.
	fb := f.down.NewBrowser()
	login, err := fb.Get(f.down.Issuer + "/oidc/me?lang=en")
	if err != nil {
		t.Fatal(err)
	}
	if p := f.viaUpstream(t, fb, login, identitytest.AdminUser, identitytest.AdminPassword); !strings.Contains(p.Body, `id="who"`) {
		t.Fatalf("upstream login did not reach the account page: %d %.300s", p.Status, p.Body)
	}
	if n := len(citizens(t, f.down)); n != 2 {
		t.Fatalf("%d citizen accounts, want the phone one and the upstream one", n)
	}
	if p := post(t, fb, accountPage(t, f.down, fb), "link", url.Values{"connector": {"up"}}); p.Status != http.StatusForbidden {
		t.Errorf("link from an upstream login's session: %d, want 403", p.Status)
	}

	// After a fresh phone login (her own credential), she links alice's upstream identity.
	b = f.down.NewBrowser()
	login, _ = b.Get(f.down.Issuer + "/oidc/me?lang=en")
	if _, err := b.PhoneLogin(login, canaryPhone, f.file); err != nil {
		t.Fatal(err)
	}
	start := post(t, b, accountPage(t, f.down, b), "link", url.Values{"connector": {"up"}})
	if end := f.atUpstream(t, b, start, "alice", "alice password 1"); !strings.Contains(end.Body, `id="links"`) {
		t.Fatalf("link did not end on the account page: %d %.300s", end.Status, end.Body)
	}
	links, err := f.down.Store.ListLinks(ctx, phoneAcct)
	if err != nil || len(links) != 1 {
		t.Fatalf("phone account links %+v %v, want one", links, err)
	}
	// The admin's identity is the other account's: linking it is refused, not moved.
	start = post(t, b, accountPage(t, f.down, b), "link", url.Values{"connector": {"up"}})
	if end := f.atUpstream(t, b, start, identitytest.AdminUser, identitytest.AdminPassword); end.Status != http.StatusConflict {
		t.Errorf("linking an identity linked elsewhere: %d, want 409", end.Status)
	}
	// Alice's upstream login now logs into the phone account.
	ab := f.down.NewBrowser()
	u, v := authorize(r)
	end := f.viaUpstream(t, ab, loginPage(t, ab, u), "alice", "alice password 1")
	_, _, sub := tokenClaims(t, r, end, v)
	if sub != phoneAcct {
		t.Errorf("alice's upstream login: subject %q, want the phone account %q", sub, phoneAcct)
	}
}

// A citizen's login through the Alipay-shaped connector (scope auth_user) registers her with a
// link named by her Alipay nickname, which the connector read with alipay.user.info.share.
func TestFederatedAlipayLinkNamed(t *testing.T) {
	fake := connectortest.NewAlipay(t, "2021000000000001")
	e, _ := citizenEnv(t, func(c *identity.Config) {
		conn, err := connector.Open(fake.Config(t, "alipay"))
		if err != nil {
			t.Fatal(err)
		}
		c.Upstreams = []identity.Upstream{{ID: "alipay", Name: "支付宝", Connector: conn}}
	})
	fake.Approve(connectortest.AlipayUser{UserID: "2088000000000001", NickName: "支付宝小二",
		Avatar: "https://tfs.alipayobjects.com/images/partner/T1uIxXXbpXXXXXXXX"})
	r := newRP(t, e, "rp", "rp-secret")
	b := e.NewBrowser()
	u, v := authorize(r)
	m := regexp.MustCompile(`id="upstream-alipay" href="([^"]*)"`).FindStringSubmatch(loginPage(t, b, u).Body)
	if m == nil {
		t.Fatal("no Alipay button on the login page")
	}
	p, err := b.Get(e.Issuer + html.UnescapeString(m[1]))
	if err != nil || !strings.HasPrefix(p.Loc, fake.Srv.URL) {
		t.Fatalf("not sent to Alipay: %v %q", err, p.Loc)
	}
	back := connectortest.Authorize(t, fake.Srv, p.Loc)
	end, err := b.Get(identity.UpstreamCallback(e.Issuer, "alipay") + "?" + back.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if acr, _, _ := tokenClaims(t, r, end, v); acr != identity.ACRFederated {
		t.Errorf("acr %q, want %q", acr, identity.ACRFederated)
	}
	links, err := e.Store.ListLinks(context.Background(), citizenID(t, e))
	if err != nil || len(links) != 1 || links[0].Name != "支付宝小二" || strings.Contains(links[0].Subject, "2088000000000001") {
		t.Errorf("links %+v %v, want one named by her nickname, its subject hashed", links, err)
	}
}
