package identity_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/kioskfleet/kioskfleet/hub/identity"
	"github.com/kioskfleet/kioskfleet/hub/identity/identitytest"
	"github.com/kioskfleet/kioskfleet/hub/identity/sms/smstest"
	"github.com/kioskfleet/kioskfleet/hub/ratelimit"
	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/polltest"
)

// A canary number: it must never appear in the logs.
const (
	canaryPhone = "138 0013 8000"
	canaryE164  = "+8613800138000"
)

func citizenEnv(t testing.TB, mod ...func(*identity.Config)) (*identitytest.Env, string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "sms", "codes.txt")
	return identitytest.New(t, append([]func(*identity.Config){identitytest.Localhost, identitytest.WithDevSMS(file)}, mod...)...), file
}

// loginPage opens the client's authorization URL and returns the login page.
func loginPage(t *testing.T, b *identitytest.Browser, u string) *identitytest.Page {
	t.Helper()
	p, err := b.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	if p.Status != 200 || !strings.Contains(p.Body, `id="passkey"`) {
		t.Fatalf("no login page: %d %.400s", p.Status, p.Body)
	}
	return p
}

// tokenClaims exchanges the code of a redirect to the client and verifies the ID token with
// go-oidc; it returns the token's acr and amr.
func tokenClaims(t *testing.T, r *rp, p *identitytest.Page, verifier string) (acr string, amr []string, sub string) {
	t.Helper()
	loc, err := url.Parse(p.Loc)
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("no code for the client: %d %q %.400s", p.Status, p.Loc, p.Body)
	}
	tok, err := r.conf.Exchange(context.Background(), loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	idt, err := r.ver.Verify(context.Background(), tok.Extra("id_token").(string))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		ACR string   `json:"acr"`
		AMR []string `json:"amr"`
	}
	if err := idt.Claims(&c); err != nil {
		t.Fatal(err)
	}
	return c.ACR, c.AMR, idt.Subject
}

func authorize(r *rp, extra ...oauth2.AuthCodeOption) (string, string) {
	v := oauth2.GenerateVerifier()
	return r.conf.AuthCodeURL("st", append(extra, oauth2.S256ChallengeOption(v))...), v
}

func sendCode(t *testing.T, b *identitytest.Browser, login *identitytest.Page, number string) *identitytest.Page {
	t.Helper()
	p, err := b.Submit(login, url.Values{"phone": {number}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func enterCode(t *testing.T, b *identitytest.Browser, codePage *identitytest.Page, code string) *identitytest.Page {
	t.Helper()
	p, err := b.Submit(codePage, url.Values{"code": {code}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func lastCode(t *testing.T, file, e164 string) string {
	t.Helper()
	c, err := smstest.LastCode(file, e164)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPhoneCodeLogin(t *testing.T) {
	e, file := citizenEnv(t)
	r := newRP(t, e, "rp", "rp-secret")
	b := e.NewBrowser()

	// A number the provider has never seen: its first login registers a citizen account.
	u, v := authorize(r)
	p := enterCode(t, b, sendCode(t, b, loginPage(t, b, u), canaryPhone), lastCode(t, file, canaryE164))
	acr, amr, sub := tokenClaims(t, r, p, v)
	if acr != identity.ACRPhone || len(amr) != 1 || amr[0] != "sms" {
		t.Errorf("acr %q amr %v, want the phone level", acr, amr)
	}
	used := lastCode(t, file, canaryE164)

	// Used: the code does not log in again, on another browser, after the minute between codes.
	e.Clock.Advance(61 * time.Second)
	b2 := e.NewBrowser()
	u, v = authorize(r)
	cp := sendCode(t, b2, loginPage(t, b2, u), canaryPhone)
	fresh := lastCode(t, file, canaryE164)
	if fresh == used {
		t.Skip("the random code repeated (one in a million)")
	}
	if p := enterCode(t, b2, cp, used); p.Status != http.StatusUnauthorized || p.Loc != "" {
		t.Errorf("a used code logged in: %d %q", p.Status, p.Loc)
	}
	// The same number logs in to the same account.
	p = enterCode(t, b2, cp, fresh)
	if _, _, sub2 := tokenClaims(t, r, p, v); sub2 != sub {
		t.Errorf("the number's second login is another account: %q, was %q", sub2, sub)
	}

	// Wrong: five tries at a code, then even the right one is refused.
	e.Clock.Advance(61 * time.Second)
	b3 := e.NewBrowser()
	u, _ = authorize(r)
	cp = sendCode(t, b3, loginPage(t, b3, u), canaryPhone)
	right := lastCode(t, file, canaryE164)
	wrong := "000000"
	if right == wrong {
		wrong = "111111"
	}
	for range 5 {
		p := enterCode(t, b3, cp, wrong)
		if p.Status != http.StatusUnauthorized || !strings.Contains(p.Body, "验证码不正确") {
			t.Fatalf("a wrong code: %d %.300s", p.Status, p.Body)
		}
	}
	if p := enterCode(t, b3, cp, right); p.Status != http.StatusUnauthorized {
		t.Errorf("the right code after five wrong ones: %d, want 401", p.Status)
	}

	// Expired: the right code after its five minutes.
	e.Clock.Advance(61 * time.Second)
	cp = sendCode(t, b3, loginPage(t, b3, u), canaryPhone)
	right = lastCode(t, file, canaryE164)
	e.Clock.Advance(5*time.Minute + time.Second)
	if p := enterCode(t, b3, cp, right); p.Status != http.StatusUnauthorized {
		t.Errorf("an expired code: %d, want 401", p.Status)
	}

	// The number and its codes are never logged.
	logs := e.Logs.String()
	for _, s := range []string{"13800138000", "138****8000", used, fresh, right} {
		if strings.Contains(logs, s) {
			t.Errorf("the logs hold %q", s)
		}
	}
}

func TestPhoneCodeLimits(t *testing.T) {
	e, file := citizenEnv(t)
	r := newRP(t, e, "rp", "rp-secret")
	b := e.NewBrowser()
	u, _ := authorize(r)
	login := loginPage(t, b, u)
	sent := func() int {
		raw, _ := os.ReadFile(file)
		return strings.Count(string(raw), canaryE164)
	}

	// Per number: one code a minute, five an hour; a refused send looks like a sent one but says
	// to wait, and sends nothing.
	sendCode(t, b, login, canaryPhone)
	p := sendCode(t, b, login, canaryPhone)
	if p.Status != 200 || !strings.Contains(p.Body, `name="code"`) || sent() != 1 {
		t.Errorf("a second code within the minute: status %d, %d sent", p.Status, sent())
	}
	for range 4 {
		e.Clock.Advance(61 * time.Second)
		sendCode(t, b, login, canaryPhone)
	}
	e.Clock.Advance(61 * time.Second)
	sendCode(t, b, login, canaryPhone)
	if n := sent(); n != 5 {
		t.Errorf("%d codes sent in an hour, want 5", n)
	}
	e.Clock.Advance(time.Hour)
	sendCode(t, b, login, canaryPhone)
	if n := sent(); n != 6 {
		t.Errorf("no code in the next hour (%d sent)", n)
	}

	// Not a mobile number: said so, nothing sent.
	if p := sendCode(t, b, login, "12345"); p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "手机号码") {
		t.Errorf("a bad number: %d", p.Status)
	}

	// Per client address: sends and entries are limited (429) whatever the number.
	e2, _ := citizenEnv(t, func(c *identity.Config) {
		c.PhoneSendRate, c.PhoneVerifyRate = ratelimit.PerMinute(2, 2), ratelimit.PerMinute(3, 3)
	})
	r2 := newRP(t, e2, "rp", "rp-secret")
	b2 := e2.NewBrowser()
	u2, _ := authorize(r2)
	login2 := loginPage(t, b2, u2)
	var cp *identitytest.Page
	for i, n := range []string{"13900139001", "13900139002"} {
		if cp = sendCode(t, b2, login2, n); cp.Status != 200 {
			t.Fatalf("send %d: %d", i, cp.Status)
		}
	}
	if p := sendCode(t, b2, login2, "13900139003"); p.Status != http.StatusTooManyRequests {
		t.Errorf("third send from one address in a burst of 2: %d, want 429", p.Status)
	}
	for range 3 {
		enterCode(t, b2, cp, "000000")
	}
	if p := enterCode(t, b2, cp, "000000"); p.Status != http.StatusTooManyRequests {
		t.Errorf("fourth entry from one address in a burst of 3: %d, want 429", p.Status)
	}
}

// TestPhoneCodeNoEnumeration: the answers to a known and an unknown number are the same page
// (but for the masked number), and so are the refusals of their wrong codes.
func TestPhoneCodeNoEnumeration(t *testing.T) {
	e, file := citizenEnv(t)
	r := newRP(t, e, "rp", "rp-secret")
	b := e.NewBrowser()
	u, v := authorize(r)
	p := enterCode(t, b, sendCode(t, b, loginPage(t, b, u), canaryPhone), lastCode(t, file, canaryE164))
	tokenClaims(t, r, p, v) // the canary's account exists now

	e.Clock.Advance(61 * time.Second)
	// Forms differ by their tokens, request IDs and the number: values are left out.
	values := regexp.MustCompile(`value="[^"]*"|id=[A-Za-z0-9_-]{16,}`)
	strip := func(p *identitytest.Page, masked string) string {
		return values.ReplaceAllString(strings.ReplaceAll(p.Body, masked, ""), "")
	}
	var pages [2][2]string
	for i, n := range []string{canaryPhone, "139 0013 9000"} {
		b := e.NewBrowser()
		u, _ := authorize(r)
		cp := sendCode(t, b, loginPage(t, b, u), n)
		wrong := enterCode(t, b, cp, "000000")
		e164, _ := identity.NormalizePhone(n)
		masked := e164[3:6] + "****" + e164[10:]
		pages[i] = [2]string{strip(cp, masked), strip(wrong, masked)}
		if cp.Status != 200 || wrong.Status != http.StatusUnauthorized {
			t.Errorf("number %d: send %d, wrong code %d", i, cp.Status, wrong.Status)
		}
	}
	if pages[0][0] != pages[1][0] {
		t.Errorf("the code pages of a known and an unknown number differ:\n%s\n---\n%s", pages[0][0], pages[1][0])
	}
	if pages[0][1] != pages[1][1] {
		t.Error("the wrong-code pages of a known and an unknown number differ")
	}
}

// TestPhoneLoginOffUnlessConfigured: without an SMS sender (the development file sender is used
// only when configured) there is no phone login at all.
func TestPhoneLoginOffUnlessConfigured(t *testing.T) {
	e := identitytest.New(t, identitytest.Localhost)
	r := newRP(t, e, "rp", "rp-secret")
	b := e.NewBrowser()
	u, _ := authorize(r)
	p := loginPage(t, b, u)
	if strings.Contains(p.Body, `name="phone"`) {
		t.Error("the login page offers phone codes without a sender")
	}
	resp, err := b.C.PostForm(e.Issuer+"/oidc/phone/send", url.Values{"phone": {canaryPhone}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("phone send without a sender: %d, want 404", resp.StatusCode)
	}
}

// phoneSession logs a new browser in with the canary number through the client and returns it.
func phoneSession(t *testing.T, e *identitytest.Env, r *rp, file string) *identitytest.Browser {
	t.Helper()
	b := e.NewBrowser()
	u, v := authorize(r)
	p, err := b.PhoneLogin(loginPage(t, b, u), canaryPhone, file)
	if err != nil {
		t.Fatal(err)
	}
	tokenClaims(t, r, p, v)
	return b
}

func accountPage(t *testing.T, e *identitytest.Env, b *identitytest.Browser) *identitytest.Page {
	t.Helper()
	p, err := b.Get(e.Issuer + "/oidc/me?lang=en")
	if err != nil {
		t.Fatal(err)
	}
	if p.Status != 200 || !strings.Contains(p.Body, `id="who"`) {
		t.Fatalf("no account page: %d %.400s", p.Status, p.Body)
	}
	return p
}

func TestPasskeyRegisterLoginRemove(t *testing.T) {
	e, file := citizenEnv(t)
	r := newRP(t, e, "rp", "rp-secret")
	b := phoneSession(t, e, r, file)
	auth := &identitytest.Authenticator{Origin: e.Issuer, Synced: true}

	// The citizen adds a passkey on her account page.
	acct := accountPage(t, e, b)
	if !strings.Contains(acct.Body, "138****8000") || strings.Contains(acct.Body, "13800138000") {
		t.Error("the account page does not show the number masked")
	}
	if err := b.AddPasskey(acct, auth, "My phone"); err != nil {
		t.Fatal(err)
	}
	acct = accountPage(t, e, b)
	if !strings.Contains(acct.Body, "My phone") {
		t.Fatalf("the passkey is not listed: %.600s", acct.Body)
	}
	// A session whose login is not recent adds no passkey.
	e.Clock.Advance(11 * time.Minute)
	if err := b.AddPasskey(accountPage(t, e, b), &identitytest.Authenticator{Origin: e.Issuer}, "late"); err == nil ||
		!strings.Contains(err.Error(), "403") {
		t.Errorf("a passkey added 11 minutes after the login: %v", err)
	}
	// The same authenticator cannot register twice (excludeCredentials).
	if err := b.AddPasskey(acct, auth, "again"); err == nil {
		t.Error("one authenticator registered a second passkey")
	}

	// A service asks for the passkey level: a new browser logs in with the passkey alone.
	b2 := e.NewBrowser()
	u, v := authorize(r, oauth2.SetAuthURLParam("acr_values", identity.ACRPasskey))
	login := loginPage(t, b2, u)
	if strings.Contains(login.Body, `name="phone"`) || !strings.Contains(login.Body, `id="stepup"`) {
		t.Error("the login page for the passkey level offers a phone code or does not say why")
	}
	p, err := b2.PasskeyLogin(login, auth)
	if err != nil {
		t.Fatal(err)
	}
	acr, amr, _ := tokenClaims(t, r, p, v)
	if acr != identity.ACRPasskey || strings.Join(amr, " ") != "swk mfa" {
		t.Errorf("passkey login: acr %q amr %v", acr, amr)
	}

	// An assertion altered after signing, or made for another origin, is refused.
	auth.Tamper = true
	if _, err := b2.PasskeyLogin(loginPage(t, b2, mustAuthorize(r, "login")), auth); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("a tampered assertion: %v, want 401", err)
	}
	auth.Tamper, auth.Origin = false, "http://evil.example"
	if _, err := b2.PasskeyLogin(loginPage(t, b2, mustAuthorize(r, "login")), auth); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("an assertion for another origin: %v, want 401", err)
	}
	auth.Origin = e.Issuer

	// The phone session falls short of the passkey level: it is asked for again.
	u, _ = authorize(r, oauth2.SetAuthURLParam("acr_values", identity.ACRPasskey))
	if p, err := b.Get(u); err != nil || p.Loc != "" || !strings.Contains(p.Body, `id="stepup"`) {
		t.Errorf("a phone session passed for the passkey level: %v %q", err, p.Loc)
	}
	// The real-name level cannot be reached without a card bound: the citizen is told, and goes
	// back to the service with unmet_authentication_requirements.
	u, _ = authorize(r, oauth2.SetAuthURLParam("acr_values", identity.ACRRealName))
	p, err = b2.Get(u)
	if err != nil || !strings.Contains(p.Body, "value=\"unmet\"") {
		t.Fatalf("no real-name page for a passkey session: %v %.300s", err, p.Body)
	}
	if p, err = b2.Submit(p, url.Values{"action": {"unmet"}}); err != nil || !strings.Contains(p.Loc, "error=unmet_authentication_requirements") {
		t.Errorf("unmet level: %v %q", err, p.Loc)
	}

	// Removed on the account page, the passkey no longer logs in.
	acct = accountPage(t, e, b)
	id := regexp.MustCompile(`name="passkey" value="([^"]*)"`).FindStringSubmatch(acct.Body)
	if id == nil {
		t.Fatal("no remove button")
	}
	if p, err := b.Submit(acct, url.Values{"passkey": {id[1]}}); err != nil || p.Status != 200 || strings.Contains(p.Body, "My phone") {
		t.Fatalf("passkey removal: %v %d", err, p.Status)
	}
	if _, err := b2.PasskeyLogin(loginPage(t, b2, mustAuthorize(r, "login")), auth); err == nil {
		t.Error("a removed passkey logged in")
	}
	if strings.Contains(e.Logs.String(), "13800138000") {
		t.Error("the logs hold the number")
	}
}

func mustAuthorize(r *rp, prompt string) string {
	u, _ := authorize(r, oauth2.SetAuthURLParam("prompt", prompt))
	return u
}

// hook is an AccountDeleted room that fails its first call.
type hook struct {
	mu    sync.Mutex
	calls []string
}

func (h *hook) AccountDeleted(_ context.Context, id string, _ time.Time) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, id)
	if len(h.calls) == 1 {
		return errors.New("events room unavailable")
	}
	return nil
}

func (h *hook) n() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.calls)
}

func TestAccountPageConsentsSessionsDeletion(t *testing.T) {
	h := &hook{}
	e, file := citizenEnv(t, func(c *identity.Config) { c.AccountHooks = []identity.AccountDeleted{h} })
	ctx := context.Background()

	// A department's app asks for consent; the citizen gives it, on two browsers.
	third := newRP(t, e, "third", "third-secret")
	b := e.NewBrowser()
	u, _ := authorize(third)
	p, err := b.PhoneLogin(loginPage(t, b, u), canaryPhone, file)
	if err != nil || !strings.Contains(p.Body, `value="approve"`) {
		t.Fatalf("no consent page: %v %.300s", err, p.Body)
	}
	if p, err = b.Submit(p, url.Values{"action": {"approve"}}); err != nil || !strings.Contains(p.Loc, "code=") {
		t.Fatalf("consent: %v %q", err, p.Loc)
	}
	e.Clock.Advance(61 * time.Second)
	other := phoneSession(t, e, newRP(t, e, "rp", "rp-secret"), file)

	acct := accountPage(t, e, b)
	for _, want := range []string{"某部门应用", `id="sessions">1<`, `id="realname-no"`, `id="delete"`} {
		if !strings.Contains(acct.Body, want) {
			t.Errorf("the account page lacks %q", want)
		}
	}
	// Withdrawn, the consent is asked for again.
	if p, err := b.Submit(acct, url.Values{"client": {"third"}}); err != nil || strings.Contains(p.Body, "某部门应用") {
		t.Fatalf("withdraw: %v %d", err, p.Status)
	}
	u, _ = authorize(third)
	if p, err := b.Get(u); err != nil || !strings.Contains(p.Body, `value="approve"`) {
		t.Errorf("a withdrawn consent was not asked for again: %v %q", err, p.Loc)
	}
	// Signed out elsewhere: the other browser's session ends, this one stays.
	acct = accountPage(t, e, b)
	if p := postAccount(t, b, acct, "sessions-end", nil); p.Status != 200 {
		t.Fatalf("sessions-end: %d", p.Status)
	}
	if p, _ := other.Get(e.Issuer + "/oidc/me"); strings.Contains(p.Body, `id="who"`) {
		t.Error("the other browser's session survived sign-out elsewhere")
	}
	acct = accountPage(t, e, b)
	if !strings.Contains(acct.Body, `id="sessions">0<`) {
		t.Error("sessions still counted")
	}

	// Deleted: without the confirmation nothing happens; with it the account goes, the hook is
	// told (again after its failure, by Run), and the number registers a new account.
	who := citizenID(t, e)
	e.Clock.Advance(11 * time.Minute)
	if p := postAccount(t, b, accountPage(t, e, b), "delete", url.Values{"confirm": {"yes"}}); p.Status != http.StatusForbidden {
		t.Errorf("deletion 11 minutes after the login: %d, want 403", p.Status)
	}
	e.Clock.Advance(61 * time.Second)
	b = phoneSession(t, e, newRP(t, e, "rp", "rp-secret"), file)
	acct = accountPage(t, e, b)
	if p := postAccount(t, b, acct, "delete", nil); p.Status != http.StatusBadRequest {
		t.Errorf("deletion without confirmation: %d", p.Status)
	}
	if p := postAccount(t, b, acct, "delete", url.Values{"confirm": {"yes"}}); p.Status != 200 || !strings.Contains(p.Body, "已注销") {
		t.Fatalf("deletion: %d %.300s", p.Status, p.Body)
	}
	if _, err := e.Store.GetAccount(ctx, who); err == nil {
		t.Error("the account survived its deletion")
	}
	if keys, _ := e.Store.ListPasskeys(ctx, who); len(keys) != 0 {
		t.Error("passkeys survived")
	}
	if pend, _ := e.Store.PendingDeletions(ctx); len(pend) != 1 || h.n() != 1 {
		t.Fatalf("after a failed hook: pending %v, hook called %d times", pend, h.n())
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.P.Run(runCtx, 10*time.Millisecond) }()
	polltest.Until(t, 10*time.Second, "the deletion carried to the hook again", func() bool {
		pend, _ := e.Store.PendingDeletions(ctx)
		return len(pend) == 0
	})
	stop()
	<-done
	if h.n() != 2 || h.calls[1] != who {
		t.Errorf("hook calls %v", h.calls)
	}
	if _, err := b.Get(e.Issuer + "/oidc/me"); err != nil {
		t.Fatal(err)
	}
	e.Clock.Advance(61 * time.Second)
	phoneSession(t, e, newRP(t, e, "rp", "rp-secret"), file)
	if again := citizenID(t, e); again == who {
		t.Errorf("the number's login after deletion: account %q, was %q", again, who)
	}
}

// citizenID is the ID of the one citizen account of the store.
func citizenID(t *testing.T, e *identitytest.Env) string {
	t.Helper()
	as, err := e.Store.ListAccounts(context.Background(), "citizen")
	if err != nil || len(as) != 1 {
		t.Fatalf("citizen accounts %v %v, want one", as, err)
	}
	return as[0].ID
}

func formValue(body, name string) string {
	m := regexp.MustCompile(`name="` + name + `" value="([^"]*)"`).FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return m[1]
}

// postAccount posts an account page action with the page's token.
func postAccount(t *testing.T, b *identitytest.Browser, acct *identitytest.Page, action string, form url.Values) *identitytest.Page {
	t.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf", formValue(acct.Body, "csrf"))
	resp, err := b.C.PostForm(acct.URL.Scheme+"://"+acct.URL.Host+"/oidc/me/"+action, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return &identitytest.Page{Status: resp.StatusCode, URL: resp.Request.URL, Body: string(body)}
}

// passkeyCitizen registers a citizen by the phone number, adds a passkey and returns a new
// browser logged in with it (on the account page), and the authenticator.
func passkeyCitizen(t *testing.T, e *identitytest.Env, file, number string) (*identitytest.Browser, *identitytest.Authenticator) {
	t.Helper()
	b := e.NewBrowser()
	login, err := b.Get(e.Issuer + "/oidc/me")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.PhoneLogin(login, number, file); err != nil {
		t.Fatal(err)
	}
	auth := &identitytest.Authenticator{Origin: e.Issuer}
	if err := b.AddPasskey(accountPage(t, e, b), auth, "phone"); err != nil {
		t.Fatal(err)
	}
	b2 := e.NewBrowser()
	login, err = b2.Get(e.Issuer + "/oidc/me")
	if err != nil {
		t.Fatal(err)
	}
	if p, err := b2.PasskeyLogin(login, auth); err != nil || !strings.Contains(p.Body, `id="who"`) {
		t.Fatalf("passkey login to the account page: %v", err)
	}
	return b2, auth
}

// bindAtKiosk approves the kiosk's QR login for real-name binding on the browser and sends the
// card from the kiosk with the QR's device code: the token endpoint's answer.
func bindAtKiosk(t *testing.T, e *identitytest.Env, b *identitytest.Browser, approver, reader *identitytest.Kiosk, n string) (int, map[string]any) {
	t.Helper()
	d := kioskDevice(t, e, approver)
	p, err := b.Get(d.verify)
	if err != nil || !strings.Contains(p.Body, `id="bind"`) {
		t.Fatalf("the approval page offers no binding: %v %.400s", err, p.Body)
	}
	if p, err = b.Submit(p, url.Values{"action": {"bind"}}); err != nil || p.Status != 200 {
		t.Fatalf("bind approval: %v %d", err, p.Status)
	}
	st, m, err := e.PostForm("/oidc/token", url.Values{"grant_type": {identity.GrantTypeJWTBearer},
		"assertion": {reader.Assertion(e.Issuer, card(n), e.Clock.Now(), time.Minute)}, identity.ParamDeviceCode: {d.code},
		"client_id": {identity.ClientKioskShell}, "scope": {"openid"}}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	return st, m
}

// realNameLogin logs in to the client with the passkey in a new browser, asking for the
// real-name level: the ID token's acr.
func realNameLogin(t *testing.T, e *identitytest.Env, r *rp, auth *identitytest.Authenticator) string {
	t.Helper()
	b := e.NewBrowser()
	u, v := authorize(r, oauth2.SetAuthURLParam("acr_values", identity.ACRRealName))
	p, err := b.PasskeyLogin(loginPage(t, b, u), auth)
	if err != nil {
		t.Fatal(err)
	}
	acr, _, _ := tokenClaims(t, r, p, v)
	return acr
}

func TestRealNameBindingAtKiosk(t *testing.T) {
	e, file := citizenEnv(t)
	ctx := context.Background()
	k := e.EnrollKiosk(t, "kiosk-ft-01")
	k2 := e.EnrollKiosk(t, "kiosk-ft-02")
	r := newRP(t, e, "rp", "rp-secret")
	b, auth := passkeyCitizen(t, e, file, canaryPhone)
	who := citizenID(t, e)

	// A phone session cannot bind: the approval page does not offer it.
	e.Clock.Advance(61 * time.Second)
	weak := phoneSession(t, e, r, file)
	if p, _ := weak.Get(kioskDevice(t, e, k).verify); strings.Contains(p.Body, `id="bind"`) {
		t.Error("a phone-code session is offered real-name binding")
	}

	// The card read at another kiosk than the one whose code was approved is refused.
	if st, m := bindAtKiosk(t, e, b, k, k2, canary); st != 400 || m["error"] != "invalid_grant" {
		t.Errorf("a card from another kiosk: %d %v", st, m)
	}
	// Bound: the kiosk gets a session of the citizen's own account.
	st, tok := bindAtKiosk(t, e, b, k, k, canary)
	if st != 200 {
		t.Fatalf("binding: %d %v", st, tok)
	}
	pr, err := e.P.Authenticate(bearer(e, tok["access_token"].(string)))
	if err != nil || pr.Subject != who {
		t.Fatalf("the kiosk session is of %q (%v), want the citizen %q", pr.Subject, err, who)
	}
	acct, err := e.Store.GetAccount(ctx, who)
	if err != nil || len(acct.IDNumberHash) == 0 || len(acct.IDNumberEnc) == 0 {
		t.Fatalf("no card bound: %v", err)
	}
	if strings.Contains(string(acct.IDNumberEnc), canary) || strings.Contains(string(acct.IDNumberHash), canary) {
		t.Error("the ID number is stored in clear")
	}
	if c, err := e.P.IDCardOf(acct); err != nil || string(c.Number) != canary {
		t.Errorf("the bound card does not decrypt to the canary: %v", err)
	}
	if !strings.Contains(accountPage(t, e, b).Body, `id="realname"`) {
		t.Error("the account page does not say the account is verified")
	}
	// Her copy of her data (PIPL art. 45) names her, with the ID number masked.
	resp, err := b.C.Get(e.Issuer + "/oidc/me/export")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var x struct {
		Phone    string `json:"phone"`
		RealName struct {
			Name     string `json:"name"`
			IDNumber string `json:"id_number_masked"`
		} `json:"real_name"`
		Passkeys []struct{ Name string } `json:"passkeys"`
	}
	if err := json.Unmarshal(raw, &x); err != nil || resp.StatusCode != 200 ||
		!strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("export: %d %v %.300s", resp.StatusCode, err, raw)
	}
	if x.Phone != canaryE164 || x.RealName.Name != "张三" || x.RealName.IDNumber != "110105********002X" ||
		len(x.Passkeys) != 1 || strings.Contains(string(raw), canary) {
		t.Errorf("export %s", raw)
	}

	// The account's passkey logins now reach the real-name level.
	if acr := realNameLogin(t, e, r, auth); acr != identity.ACRRealName {
		t.Errorf("acr %q after binding, want %q", acr, identity.ACRRealName)
	}

	// A second account cannot bind the same card until the first unbinds it.
	e.Clock.Advance(61 * time.Second)
	other, _ := passkeyCitizen(t, e, file, "139 0013 9000")
	if st, m := bindAtKiosk(t, e, other, k, k, canary); st != 400 || m["error"] != "access_denied" {
		t.Errorf("a second account bound the card: %d %v", st, m)
	}
	if p := postAccount(t, b, accountPage(t, e, b), "card-unbind", nil); p.Status != 200 {
		t.Fatalf("unbind: %d", p.Status)
	}
	if st, m := bindAtKiosk(t, e, other, k, k, canary); st != 200 {
		t.Errorf("binding after the first account unbound: %d %v", st, m)
	}
	if a, _ := e.Store.GetAccount(ctx, who); len(a.IDNumberHash) != 0 {
		t.Error("the first account still holds the card")
	}
	logs := e.Logs.String()
	for _, s := range []string{canary, "张三", "13800138000", "13900139000"} {
		if strings.Contains(logs, s) {
			t.Errorf("the logs hold %q", s)
		}
	}
}

func FuzzNormalizePhone(f *testing.F) {
	for _, s := range []string{canaryPhone, "+86 138-0013-8000", "008613800138000", "8613800138000", "(138) 0013 8000",
		"12345", "+1 650 555 0100", "1380013800０", "", "++8613800138000"} {
		f.Add(s)
	}
	valid := regexp.MustCompile(`^\+861[3-9][0-9]{9}$`)
	f.Fuzz(func(t *testing.T, s string) {
		n, err := identity.NormalizePhone(s)
		if err != nil {
			if !errors.Is(err, identity.ErrPhone) || n != "" {
				t.Fatalf("%q: %q %v", s, n, err)
			}
			return
		}
		if !valid.MatchString(n) {
			t.Fatalf("%q normalized to %q", s, n)
		}
		if again, err := identity.NormalizePhone(n); err != nil || again != n {
			t.Fatalf("%q: not idempotent: %q %v", n, again, err)
		}
	})
}

// FuzzPasskeyAssertion posts arbitrary bodies as the browser's answer to a passkey login
// ceremony: each is refused (400, 401) or accepted, never a server error or a panic.
func FuzzPasskeyAssertion(f *testing.F) {
	e := identitytest.New(f, identitytest.Localhost)
	h := e.P.Handler()
	login := serve(h, http.MethodGet, "/oidc/login?next=account", "", nil)
	cookie := strings.Split(login.Header().Get("Set-Cookie"), ";")[0]
	csrf := regexp.MustCompile(`data-csrf="([^"]*)"`).FindStringSubmatch(login.Body.String())
	if csrf == nil {
		f.Fatalf("no passkey block: %.300s", login.Body)
	}
	auth := &identitytest.Authenticator{Origin: e.Issuer}
	opts := `{"challenge":"AAAA","rp":{"id":"localhost"},"user":{"id":"dXNlcg"}}`
	if _, err := auth.Create([]byte(opts)); err != nil {
		f.Fatal(err)
	}
	seed, err := auth.Get([]byte(`{"challenge":"AAAA","rpId":"localhost"}`))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(seed))
	f.Add(`{"id":"x","rawId":"x","type":"public-key","response":{}}`)
	f.Add(`{}`)
	f.Add(`[`)
	f.Fuzz(func(t *testing.T, body string) {
		begin := serve(h, http.MethodPost, "/oidc/passkey/login/begin", url.Values{"csrf": {csrf[1]}, "next": {"account"}}.Encode(),
			map[string]string{"Cookie": cookie})
		var c struct{ Ceremony string }
		if err := json.Unmarshal(begin.Body.Bytes(), &c); err != nil || c.Ceremony == "" {
			t.Fatalf("begin: %d %s", begin.Code, begin.Body)
		}
		rec := serve(h, http.MethodPost, "/oidc/passkey/login/finish?ceremony="+c.Ceremony, body,
			map[string]string{"Cookie": cookie, "Content-Type": "application/json"})
		if rec.Code != 200 && rec.Code != 400 && rec.Code != 401 {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
	})
}

// TestPhoneApprovesKioskQR: a citizen with no session scans a kiosk's QR code, logs in on the
// phone with a text-message code, and approves; the kiosk's session carries that login's amr.
func TestPhoneApprovesKioskQR(t *testing.T) {
	e, file := citizenEnv(t)
	k := e.EnrollKiosk(t, "kiosk-ft-01")
	d := kioskDevice(t, e, k)
	b := e.NewBrowser()
	login, err := b.Get(d.verify)
	if err != nil || !strings.Contains(login.Body, `name="phone"`) || !strings.Contains(login.Body, d.user) {
		t.Fatalf("the QR's page offers no phone login for the code: %v %.300s", err, login.Body)
	}
	p, err := b.PhoneLogin(login, canaryPhone, file)
	if err != nil || !strings.Contains(p.Body, `value="approve"`) || !strings.Contains(p.Body, "kiosk-ft-01") {
		t.Fatalf("no approval page after the phone login: %v %.300s", err, p.Body)
	}
	if strings.Contains(p.Body, `id="bind"`) {
		t.Error("a phone-code session is offered real-name binding")
	}
	if p, err = b.Submit(p, url.Values{"action": {"approve"}}); err != nil || p.Status != 200 {
		t.Fatalf("approval: %v", err)
	}
	st, tok, err := poll(e, identity.ClientKioskShell, d.code)
	if err != nil || st != 200 {
		t.Fatalf("kiosk token: %d %v %v", st, tok, err)
	}
	idt, err := oidcVerifier(t, e, identity.ClientKioskShell).Verify(context.Background(), tok["id_token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		ACR string   `json:"acr"`
		AMR []string `json:"amr"`
	}
	idt.Claims(&c)
	if c.ACR != identity.ACRDevice || strings.Join(c.AMR, " ") != "sms" {
		t.Errorf("kiosk session approved by a phone login: acr %q amr %v", c.ACR, c.AMR)
	}
}

// TestLargeText: the pages' large-type toggle is kept for the citizen's next pages.
func TestLargeText(t *testing.T) {
	e, _ := citizenEnv(t)
	b := e.NewBrowser()
	p, err := b.Get(e.Issuer + "/oidc/device?lang=en")
	if err != nil || strings.Contains(p.Body, `<body class="large">`) || !strings.Contains(p.Body, `id="text-large"`) {
		t.Fatalf("normal type page: %v", err)
	}
	if p, err = b.Get(e.Issuer + "/oidc/device?lang=en&text=large"); err != nil || !strings.Contains(p.Body, `<body class="large">`) {
		t.Fatalf("large type not shown: %v", err)
	}
	if p, _ = b.Get(e.Issuer + "/oidc/me"); !strings.Contains(p.Body, `<body class="large">`) || !strings.Contains(p.Body, `id="text-normal"`) {
		t.Error("large type not kept for the next page")
	}
	if p, _ = b.Get(e.Issuer + "/oidc/me?text=normal"); strings.Contains(p.Body, `<body class="large">`) {
		t.Error("normal type not restored")
	}
}

// A card-only account (made by a citizen's ID-card login at a kiosk, no credential of its own)
// is merged into the account that binds its card: the card moves, the consents it gave are
// carried over, its kiosk session ends, it is gone, and the merge is audited. The card then
// logs in to her account, whose passkey logins reach the real-name level. A card-only account
// that has another credential (a phone) is not merged: its card stays bound to it.
func TestRealNameBindingMergesCardOnlyAccount(t *testing.T) {
	e, file := citizenEnv(t)
	ctx := context.Background()
	k := e.EnrollKiosk(t, "kiosk-ft-01")
	cardLogin := func(n string) string {
		t.Helper()
		st, m, err := e.PostForm("/oidc/token", url.Values{"grant_type": {identity.GrantTypeJWTBearer},
			"assertion": {k.Assertion(e.Issuer, card(n), e.Clock.Now(), time.Minute)},
			"client_id": {identity.ClientKioskShell}, "scope": {"openid"}}, "", "")
		if err != nil || st != 200 {
			t.Fatalf("card login: %d %v %v", st, m, err)
		}
		return m["access_token"].(string)
	}
	subject := func(at string) string {
		t.Helper()
		pr, err := e.P.Authenticate(bearer(e, at))
		if err != nil {
			return ""
		}
		return pr.Subject
	}
	old := cardLogin(canary)
	cardOnly := citizenID(t, e)
	if err := e.Store.PutConsent(ctx, store.Consent{AccountID: cardOnly, ClientID: "dept-hukou", Scopes: []string{"openid", "profile"},
		GrantedAt: e.Clock.Now()}); err != nil {
		t.Fatal(err)
	}
	b, auth := passkeyCitizen(t, e, file, canaryPhone)
	var who string
	as, _ := e.Store.ListAccounts(ctx, "citizen")
	for _, a := range as {
		if a.ID != cardOnly {
			who = a.ID
		}
	}

	st, tok := bindAtKiosk(t, e, b, k, k, canary)
	if st != 200 {
		t.Fatalf("binding the card of a card-only account: %d %v", st, tok)
	}
	if got := subject(tok["access_token"].(string)); got != who {
		t.Fatalf("the binding's session is of %q, want %q", got, who)
	}
	if _, err := e.Store.GetAccount(ctx, cardOnly); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the card-only account is still there: %v", err)
	}
	if got := subject(old); got != "" {
		t.Errorf("the card-only account's kiosk session lives on, of %q", got)
	}
	if c, err := e.Store.GetConsent(ctx, who, "dept-hukou"); err != nil || len(c.Scopes) != 2 {
		t.Errorf("the consent not carried over: %+v %v", c, err)
	}
	if a, ok := e.Store.(store.StaffAudit); !ok {
		t.Error("the test store keeps no audit log")
	} else if l, err := a.ListAudit(ctx, store.StaffActionFilter{Actor: who}); err != nil || len(l) != 1 ||
		l[0].Target != "/oidc/accounts/"+cardOnly {
		t.Errorf("the merge's audit entries %+v %v", l, err)
	}
	if got := subject(cardLogin(canary)); got != who {
		t.Errorf("the card logs in to %q, want her account %q", got, who)
	}
	if acr := realNameLogin(t, e, newRP(t, e, "rp", "rp-secret"), auth); acr != identity.ACRRealName {
		t.Errorf("acr %q after the merge, want %q", acr, identity.ACRRealName)
	}

	// A card-only account that has since got a phone is a real account: not merged.
	const second = "44010619900307124X"
	cardLogin(second)
	var withPhone string
	as, _ = e.Store.ListAccounts(ctx, "citizen")
	for _, a := range as {
		if a.ID != who {
			withPhone = a.ID
		}
	}
	if err := e.Store.SetPhone(ctx, store.Phone{AccountID: withPhone, Hash: []byte("h"), Enc: []byte("e"), VerifiedAt: e.Clock.Now()}); err != nil {
		t.Fatal(err)
	}
	e.Clock.Advance(61 * time.Second)
	other, _ := passkeyCitizen(t, e, file, "139 0013 9000")
	if st, m := bindAtKiosk(t, e, other, k, k, second); st != 400 || m["error"] != "access_denied" {
		t.Errorf("the card of an account with a phone bound elsewhere: %d %v", st, m)
	}
	if a, err := e.Store.GetAccount(ctx, withPhone); err != nil || len(a.IDNumberHash) == 0 {
		t.Errorf("the account with a phone lost its card: %v", err)
	}
	logs := e.Logs.String()
	for _, s := range []string{canary, second, "张三", "13800138000"} {
		if strings.Contains(logs, s) {
			t.Errorf("the logs hold %q", s)
		}
	}
}
