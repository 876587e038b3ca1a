// Package identitytest runs the hub's OpenID Provider for tests: on the real SQLite store, behind
// an httptest server on 127.0.0.1, with a settable clock, captured logs, enrolled test kiosks
// and a scripted browser for the login, consent and device pages.
package identitytest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexedwards/argon2id"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/kioskfleet/kioskfleet/hub/ca"
	"github.com/kioskfleet/kioskfleet/hub/identity"
	"github.com/kioskfleet/kioskfleet/hub/ratelimit"
	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/sqlite"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// Admin credentials of the bootstrapped admin.
const (
	AdminUser     = "admin"
	AdminPassword = "correct horse battery staple"
)

// Env is a running provider.
type Env struct {
	Store    store.Store
	P        *identity.Provider
	Srv      *httptest.Server
	Issuer   string
	Clock    *Clock
	Logs     *SyncBuffer
	Secrets  map[string]string // client secrets from Bootstrap
	Callback string            // the registered redirect URI of the test clients
	DBPath   string            // of the SQLite store New made; "" for a store given to NewOn
	CA       *ca.CA            // the hub CA that signs test kiosks' certificates, made by EnrollKiosk

	cfg identity.Config
	log *slog.Logger
	h   atomic.Pointer[http.Handler]
}

// Clock is real time plus an offset that tests advance.
type Clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// FastArgon2 keeps tests quick; production uses the Config default.
var FastArgon2 = &argon2id.Params{Memory: 1024, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}

// New starts a provider on a fresh store in t.TempDir, bootstraps it, and registers the test
// clients "rp" (confidential web, code+refresh, may ask for the fleet API as the console does),
// "spa" (public native, code+refresh) and "third" (confidential, pairwise, consent asked). mod
// may adjust the configuration.
func New(t testing.TB, mod ...func(*identity.Config)) *Env {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hub.db")
	st, err := sqlite.Open(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := NewOn(t, st, mod...)
	e.DBPath = path
	return e
}

// NewOn is New on a store of the caller's (PostgreSQL, say), empty; the Env closes it when t
// ends.
func NewOn(t testing.TB, st store.Store, mod ...func(*identity.Config)) *Env {
	t.Helper()
	return start(t, st, false, mod)
}

// NewHTTPS is New served over HTTPS (https://127.0.0.1:PORT, the server's own certificate;
// CAFile writes it): an upstream identity provider for federation tests.
func NewHTTPS(t testing.TB, mod ...func(*identity.Config)) *Env {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "hub.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	return start(t, st, true, mod)
}

// CAFile writes the certificate of an HTTPS Env's server as PEM and returns its path.
func (e *Env) CAFile(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "issuer-ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.Srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func start(t testing.TB, st store.Store, https bool, mod []func(*identity.Config)) *Env {
	t.Helper()
	ctx := context.Background()
	e := &Env{Clock: &Clock{}, Logs: &SyncBuffer{}}
	log := slog.New(slog.NewTextHandler(e.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.Store = st
	e.Srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*e.h.Load()).ServeHTTP(w, r) }))
	if https {
		e.Srv.StartTLS()
	} else {
		e.Srv.Start()
	}
	t.Cleanup(func() { e.Srv.Close(); e.Store.Close() })
	e.Issuer = e.Srv.URL
	// Every test client comes from 127.0.0.1: the per-address limits are off unless a test sets them.
	cfg := identity.Config{Issuer: e.Issuer, Secret: bytes.Repeat([]byte{7}, 32), Insecure: !https,
		Now: e.Clock.Now, Argon2: FastArgon2, FailureFloor: 20 * time.Millisecond,
		LoginRate: ratelimit.Unlimited, TokenRate: ratelimit.Unlimited, DeviceAuthRate: ratelimit.Unlimited,
		UserCodeRate: ratelimit.Unlimited, PhoneSendRate: ratelimit.Unlimited, PhoneVerifyRate: ratelimit.Unlimited}
	for _, m := range mod {
		m(&cfg)
	}
	e.cfg, e.log, e.Issuer = cfg, log, cfg.Issuer
	var err error
	e.P, err = identity.New(ctx, cfg, st, st, log)
	if err != nil {
		t.Fatal(err)
	}
	h := e.P.Handler()
	e.h.Store(&h)
	boot, err := e.P.Bootstrap(ctx, identity.BootstrapConfig{AdminUsername: AdminUser,
		AdminPassword: AdminPassword, BaseURL: e.Issuer})
	if err != nil {
		t.Fatal(err)
	}
	e.Secrets = boot.ClientSecrets
	e.Callback = "http://127.0.0.1:1/callback"
	grants := []string{"authorization_code", "refresh_token"}
	all := []string{"openid", "profile", "offline_access"}
	for _, c := range []store.Client{
		{ID: "rp", Name: "Test RP", AppType: "web", FirstParty: true, RedirectURIs: []string{e.Callback},
			PostLogoutURIs: []string{e.Callback + "/out"}, GrantTypes: grants, SecretHash: hash("rp-secret"), Scopes: all,
			Resources: []string{e.P.FleetAPI()}},
		{ID: "spa", Name: "Test public app", AppType: "native", FirstParty: true,
			RedirectURIs: []string{"cn.test.app:/cb"}, GrantTypes: grants, Scopes: all},
		{ID: "third", Name: "某部门应用 Department app", AppType: "web", RedirectURIs: []string{e.Callback},
			GrantTypes: grants, SecretHash: hash("third-secret"), Pairwise: true, Scopes: all},
		{ID: "third2", Name: "Another department", AppType: "web", RedirectURIs: []string{e.Callback},
			GrantTypes: grants, SecretHash: hash("third2-secret"), Pairwise: true, Scopes: all},
	} {
		if err := st.PutClient(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func hash(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// Restart starts a new provider behind the same address, as a hub restart (or another replica)
// does: on the reopened SQLite database New made, or on NewOn's store.
func (e *Env) Restart(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	if e.DBPath != "" {
		if err := e.Store.Close(); err != nil {
			t.Fatal(err)
		}
		st, err := sqlite.Open(ctx, e.DBPath, e.log)
		if err != nil {
			t.Fatal(err)
		}
		e.Store = st
	}
	var err error
	if e.P, err = identity.New(ctx, e.cfg, e.Store, e.Store, e.log); err != nil {
		t.Fatal(err)
	}
	h := e.P.Handler()
	e.h.Store(&h)
}

// Browser is a scripted browser with its own cookies that never follows a redirect out of the
// provider (it returns it instead).
type Browser struct {
	C      *http.Client
	issuer string
}

// NewBrowser returns a browser for the environment.
func (e *Env) NewBrowser() *Browser {
	b := NewBrowserFor(e.Issuer)
	if e.Srv.TLS != nil {
		b.C.Transport = e.Srv.Client().Transport
	}
	return b
}

// NewBrowserFor returns a browser for the provider at issuer (e.g. a hub run as a process).
func NewBrowserFor(issuer string) *Browser {
	jar, _ := cookiejar.New(nil)
	b := &Browser{issuer: issuer}
	b.C = &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(r *http.Request, via []*http.Request) error {
		if !strings.HasPrefix(r.URL.String(), b.issuer) {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	return b
}

// Page is a fetched HTML page.
type Page struct {
	Status int
	URL    *url.URL
	Body   string
	Loc    string // redirect out of the provider, if any
}

func (b *Browser) do(req *http.Request) (*Page, error) {
	resp, err := b.C.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return &Page{Status: resp.StatusCode, URL: resp.Request.URL, Body: string(body), Loc: resp.Header.Get("Location")}, nil
}

// Get fetches a URL.
func (b *Browser) Get(u string) (*Page, error) {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	return b.do(req)
}

var inputRE = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)
var actionRE = regexp.MustCompile(`<form method="post" action="([^"]*)">`)
var nameRE = regexp.MustCompile(`name="([a-z_]+)"`)

// Submit posts a form of the page with its hidden fields plus extra: the first form with a
// field (or button) of every name in extra, else the first form.
func (b *Browser) Submit(p *Page, extra url.Values) (*Page, error) {
	forms := actionRE.FindAllStringSubmatchIndex(p.Body, -1)
	if forms == nil {
		return nil, fmt.Errorf("no form on page %s (status %d): %.300s", p.URL, p.Status, p.Body)
	}
	pick := 0
	for i, f := range forms {
		end := strings.Index(p.Body[f[1]:], "</form>")
		if end < 0 {
			continue
		}
		names := map[string]bool{}
		for _, n := range nameRE.FindAllStringSubmatch(p.Body[f[1]:f[1]+end], -1) {
			names[n[1]] = true
		}
		all := true
		for k := range extra {
			all = all && names[k]
		}
		if all {
			pick = i
			break
		}
	}
	f := forms[pick]
	m := []string{p.Body[f[0]:f[1]], p.Body[f[2]:f[3]]}
	body := p.Body[f[1]:]
	if end := strings.Index(body, "</form>"); end >= 0 {
		body = body[:end]
	}
	form := url.Values{}
	for _, f := range inputRE.FindAllStringSubmatch(body, -1) {
		form.Set(f[1], htmlUnescape(f[2]))
	}
	for k, v := range extra {
		form[k] = v
	}
	action, _ := p.URL.Parse(htmlUnescape(m[1]))
	req, _ := http.NewRequest(http.MethodPost, action.String(), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&#43;", "+", "&#34;", `"`, "&lt;", "<", "&gt;", ">", "&#39;", "'").Replace(s)
}

// Login opens authorizeURL, logs in with the password (consenting if asked) and returns the
// redirect to the client (with code or error).
func (b *Browser) Login(authorizeURL, user, password string) (*url.URL, error) {
	p, err := b.Get(authorizeURL)
	if err != nil {
		return nil, err
	}
	if p.Loc == "" {
		if p, err = b.Submit(p, url.Values{"username": {user}, "password": {password}}); err != nil {
			return nil, err
		}
	}
	if p.Loc == "" && strings.Contains(p.Body, `value="approve"`) {
		if p, err = b.Submit(p, url.Values{"action": {"approve"}}); err != nil {
			return nil, err
		}
	}
	if p.Loc == "" {
		return nil, fmt.Errorf("login did not redirect: status %d: %.400s", p.Status, p.Body)
	}
	return url.Parse(p.Loc)
}

// Kiosk is an enrolled test kiosk with its device key.
type Kiosk struct {
	ID  string
	Key crypto.Signer
	env *Env
}

// EnrollKiosk creates a site and enrolls a kiosk as the agent does (agent/enroll): a fresh
// P-256 key on the kiosk, a CSR signed by the hub's CA, the store's enrollment with a one-time
// token.
func (e *Env) EnrollKiosk(t testing.TB, id string) *Kiosk {
	t.Helper()
	ctx := context.Background()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	site := "site-" + id
	if err := e.Store.CreateSite(ctx, store.Site{ID: site, Name: "福田区行政服务大厅", Region: "440304",
		Address: "深圳市福田区福中三路市民中心B区"}); err != nil {
		t.Fatal(err)
	}
	secret := "tok-" + id
	now := time.Now()
	if err := e.Store.CreateEnrollmentToken(ctx, store.EnrollmentToken{ID: "t-" + id, Hash: hash(secret),
		SiteID: site, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	// The certificate comes from the hub's own CA, as at a real enrollment.
	if e.CA == nil {
		if e.CA, err = ca.LoadOrCreate(t.TempDir()); err != nil {
			t.Fatal(err)
		}
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: id}}, key)
	if err != nil {
		t.Fatal(err)
	}
	issued, err := e.CA.SignCSR(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}), id, 30*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Store.EnrollDevice(ctx, hash(secret), store.Device{ID: id, CertSerial: issued.Serial,
		CertExpiry: issued.NotAfter, CertPEM: issued.CertPEM}, now); err != nil {
		t.Fatal(err)
	}
	return &Kiosk{ID: id, Key: key, env: e}
}

// Assertion signs a kiosk assertion (wire.KioskClaims) valid for ttl from iat and, if it
// carries a card, encrypts it to the provider's current key, as the agent does.
func (k *Kiosk) Assertion(aud string, card *wire.IDCard, iat time.Time, ttl time.Duration) string {
	a := SignAssertion(k.Key, k.ID, aud, card, iat, ttl)
	if card != nil {
		a = k.env.Seal(a)
	}
	return a
}

// Seal encrypts a signed assertion to the encryption key the provider publishes now.
func (e *Env) Seal(signed string) string {
	resp, err := http.Get(e.Issuer + "/oidc/keys")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	jwks, _ := io.ReadAll(resp.Body)
	key, err := wire.EncryptionKey(jwks)
	if err != nil {
		panic(err)
	}
	sealed, err := wire.SealAssertion(signed, key)
	if err != nil {
		panic(err)
	}
	return sealed
}

// SignAssertion signs kiosk claims for device id with key (ES256); it does not encrypt them.
func SignAssertion(key crypto.Signer, id, aud string, card *wire.IDCard, iat time.Time, ttl time.Duration) string {
	payload := wire.Encode(wire.KioskClaims{Issuer: id, Subject: id, Audience: wire.Audience{aud},
		IssuedAt: wire.NewNumericDate(iat), Expiry: wire.NewNumericDate(iat.Add(ttl)),
		ID: fmt.Sprintf("%d-%x", iat.UnixNano(), randBytes(8)), Card: card})
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		panic(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		panic(err)
	}
	s, _ := jws.CompactSerialize()
	return s
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// PostForm posts a form to the provider, with basic auth if user is set, and decodes the JSON.
func (e *Env) PostForm(path string, form url.Values, user, pass string) (int, map[string]any, error) {
	req, _ := http.NewRequest(http.MethodPost, e.Issuer+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &m); err != nil {
		return resp.StatusCode, nil, fmt.Errorf("status %d, not JSON: %.200s", resp.StatusCode, b)
	}
	return resp.StatusCode, m, nil
}
