package identity_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/kioskfleet/kioskfleet/hub/identity"
	"github.com/kioskfleet/kioskfleet/hub/identity/identitytest"
	"github.com/kioskfleet/kioskfleet/pkg/api"
)

func TestBruteForceThrottleAndLockout(t *testing.T) {
	e := identitytest.New(t)
	ctx := context.Background()
	bob, err := e.P.CreateStaff(ctx, identity.NewStaff{Username: "bob", Password: "bobs password", Roles: []string{identity.RoleFieldOps}})
	if err != nil {
		t.Fatal(err)
	}
	for n, want := range map[int]time.Duration{4: 0, 5: time.Second, 6: 2 * time.Second, 10: 32 * time.Second, 20: 15 * time.Minute, 99: 15 * time.Minute} {
		if got := e.P.Delay(n); got != want {
			t.Errorf("Delay(%d) = %s, want %s", n, got, want)
		}
	}
	for i := 0; i < 5; i++ {
		if _, err := e.P.PasswordLogin(ctx, "bob", "wrong"); !errors.Is(err, identity.ErrLogin) {
			t.Fatalf("wrong password %d: %v", i, err)
		}
	}
	// After 5 failures even the right password waits for the delay.
	if _, err := e.P.PasswordLogin(ctx, "bob", "bobs password"); !errors.Is(err, identity.ErrLogin) {
		t.Fatal("right password accepted while throttled")
	}
	e.Clock.Advance(time.Second)
	if _, err := e.P.PasswordLogin(ctx, "bob", "bobs password"); err != nil {
		t.Fatalf("right password after the delay: %v", err)
	}
	a, _ := e.Store.GetAccount(ctx, bob.ID)
	if a.Failures != 0 {
		t.Errorf("failures %d after success, want 0", a.Failures)
	}
	// The delay grows with each further failure.
	for i := 0; i < 7; i++ {
		e.Clock.Advance(e.P.Delay(i))
		e.P.PasswordLogin(ctx, "bob", "wrong")
	}
	a, _ = e.Store.GetAccount(ctx, bob.ID)
	if a.Failures != 7 {
		t.Fatalf("failures %d, want 7", a.Failures)
	}
	e.Clock.Advance(e.P.Delay(7) - time.Second)
	if _, err := e.P.PasswordLogin(ctx, "bob", "bobs password"); err == nil {
		t.Fatal("accepted before Delay(7)")
	}
	e.Clock.Advance(time.Second)
	if _, err := e.P.PasswordLogin(ctx, "bob", "bobs password"); err != nil {
		t.Fatalf("refused after Delay(7): %v", err)
	}
	// At 100 consecutive failures the account is locked, however long one waits.
	for i := 0; i < 100; i++ {
		if _, err := e.Store.RecordLogin(ctx, bob.ID, false, e.Clock.Now()); err != nil {
			t.Fatal(err)
		}
	}
	e.Clock.Advance(30 * 24 * time.Hour)
	if _, err := e.P.PasswordLogin(ctx, "bob", "bobs password"); !errors.Is(err, identity.ErrLogin) {
		t.Fatal("locked account accepted the right password")
	}
}

// Neither the page nor its timing tells an unknown account from a wrong password or a
// throttled account.
func TestLoginDoesNotRevealAccounts(t *testing.T) {
	floor := 100 * time.Millisecond
	e := identitytest.New(t, func(c *identity.Config) { c.FailureFloor, c.ThrottleBase = floor, time.Hour })
	ctx := context.Background()
	if _, err := e.P.CreateStaff(ctx, identity.NewStaff{Username: "locked", Password: "some password"}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		e.P.PasswordLogin(ctx, "locked", "x")
	}
	b := e.NewBrowser()
	login, err := b.Get(authURL(e, "rp", e.Callback, url.Values{"code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())},
		"code_challenge_method": {"S256"}}))
	if err != nil {
		t.Fatal(err)
	}
	answer := func(user, pass string) (string, time.Duration) {
		start := time.Now()
		p, err := b.Submit(login, url.Values{"username": {user}, "password": {pass}})
		if err != nil {
			t.Fatal(err)
		}
		if p.Status != http.StatusUnauthorized {
			t.Fatalf("%s: status %d", user, p.Status)
		}
		return p.Body, time.Since(start)
	}
	cases := map[string][2]string{"unknown": {"nobody", "x"}, "wrong password": {identitytest.AdminUser, "x"}, "throttled": {"locked", "some password"}}
	bodies := map[string]string{}
	times := map[string][]time.Duration{}
	for round := 0; round < 7; round++ {
		for name, c := range cases {
			body, d := answer(c[0], c[1])
			bodies[name] = body
			times[name] = append(times[name], d)
		}
		// Keep the admin under the throttle threshold.
		e.Store.RecordLogin(ctx, adminID(t, e), true, e.Clock.Now())
	}
	if bodies["unknown"] != bodies["wrong password"] || bodies["unknown"] != bodies["throttled"] {
		t.Error("login pages differ between unknown account, wrong password and throttled account")
	}
	var medians []time.Duration
	for name, ds := range times {
		slices.Sort(ds)
		m := ds[len(ds)/2]
		medians = append(medians, m)
		t.Logf("%s: median %s", name, m)
		if m < floor {
			t.Errorf("%s answered in %s, under the floor %s", name, m, floor)
		}
	}
	slices.Sort(medians)
	if spread := medians[len(medians)-1] - medians[0]; spread > floor/2 {
		t.Errorf("median answer times spread by %s", spread)
	}
}

func adminID(t *testing.T, e *identitytest.Env) string {
	a, err := e.Store.AccountByUsername(context.Background(), identitytest.AdminUser)
	if err != nil {
		t.Fatal(err)
	}
	return a.ID
}

func TestPairwiseSubjectsAndConsent(t *testing.T) {
	e := identitytest.New(t)
	subs := map[string]string{}
	for _, c := range []struct{ id, secret string }{{"rp", "rp-secret"}, {"third", "third-secret"}, {"third2", "third2-secret"}} {
		r := newRP(t, e, c.id, c.secret)
		code, verifier, _ := r.code(t, e.NewBrowser(), identitytest.AdminUser, identitytest.AdminPassword)
		tok, err := r.conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		idt, err := r.ver.Verify(context.Background(), tok.Extra("id_token").(string))
		if err != nil {
			t.Fatal(err)
		}
		subs[c.id] = idt.Subject
	}
	if subs["rp"] != adminID(t, e) {
		t.Errorf("public subject %q, want the account ID", subs["rp"])
	}
	if subs["third"] == subs["third2"] || subs["third"] == subs["rp"] || subs["third2"] == subs["rp"] {
		t.Errorf("pairwise subjects correlate: %v", subs)
	}

	// The consent given above is kept: the client does not ask again for what it was given.
	b := e.NewBrowser()
	r := newRP(t, e, "third", "third-secret")
	p, _ := b.Get(r.conf.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	p, _ = b.Submit(p, url.Values{"username": {identitytest.AdminUser}, "password": {identitytest.AdminPassword}})
	if loc, _ := url.Parse(p.Loc); loc == nil || loc.Query().Get("code") == "" {
		t.Fatalf("a consented client asked again: %d %.300s", p.Status, p.Body)
	}
	// With prompt=consent it asks; a denial reaches the client as access_denied.
	p, _ = b.Get(r.conf.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("prompt", "consent")))
	if !strings.Contains(p.Body, "某部门应用") || !strings.Contains(p.Body, `value="deny"`) {
		t.Fatalf("no consent page: %.300s", p.Body)
	}
	p, _ = b.Submit(p, url.Values{"action": {"deny"}})
	loc, _ := url.Parse(p.Loc)
	if loc == nil || loc.Query().Get("error") != "access_denied" || loc.Query().Get("state") != "st" {
		t.Errorf("denial redirected to %q", p.Loc)
	}
}

func apiCall(t *testing.T, e *identitytest.Env, method, path, token, body string) (int, map[string]any) {
	t.Helper()
	st, b := apiRaw(t, e, method, path, token, body)
	var m map[string]any
	json.Unmarshal(b, &m)
	return st, m
}

func apiRaw(t *testing.T, e *identitytest.Env, method, path, token, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, e.Issuer+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func TestSessionsAndAdminAPI(t *testing.T) {
	e := identitytest.New(t)
	k := e.EnrollKiosk(t, "kiosk-1")
	_, citizen, _ := cardLogin(e, k.Assertion(e.Issuer, card(canary), e.Clock.Now(), time.Minute))
	cat := citizen["access_token"].(string)

	st, m := apiCall(t, e, "GET", "/oidc/account/sessions", cat, "")
	if st != 200 || len(m["sessions"].([]any)) != 1 || m["sessions"].([]any)[0].(map[string]any)["kioskId"] != "kiosk-1" {
		t.Fatalf("citizen sessions: %d %v", st, m)
	}

	verifier := oauth2.GenerateVerifier()
	_, t1, _ := exchange(e, codeFor(t, e, verifier), verifier, e.Callback)
	_, t2, _ := exchange(e, codeFor(t, e, verifier), verifier, e.Callback)
	at1, at2 := t1["access_token"].(string), t2["access_token"].(string)
	st, m = apiCall(t, e, "GET", "/oidc/account/sessions", at1, "")
	sessions := m["sessions"].([]any)
	if st != 200 || len(sessions) != 2 {
		t.Fatalf("admin sessions: %d %v", st, m)
	}
	// Revoke the other session; its tokens stop working, this one does not.
	pr, _ := e.P.Authenticate(bearer(e, at2))
	if st, _ := apiCall(t, e, "DELETE", "/oidc/account/sessions/"+pr.FamilyID, at1, ""); st != 204 {
		t.Fatalf("revoke: %d", st)
	}
	if userinfo(e, at2) != 401 || userinfo(e, at1) != 200 {
		t.Error("revocation hit the wrong session")
	}
	if st, _ := apiCall(t, e, "DELETE", "/oidc/account/sessions/"+pr.FamilyID, cat, ""); st != 404 {
		t.Errorf("a citizen revoking someone else's session: %d, want 404", st)
	}

	// Clients are managed by admins only.
	body := `{"id":"dept-tax","name":"税务","appType":"web","redirectUris":["https://tax.example/cb"],"grantTypes":["authorization_code"],"confidential":true}`
	if st, _ := apiCall(t, e, "POST", "/oidc/admin/clients", cat, body); st != 401 {
		t.Errorf("citizen registering a client with a kiosk token: %d, want 401 (not a fleet API token)", st)
	}
	if st, _ := apiCall(t, e, "POST", "/oidc/admin/clients", "", body); st != 401 {
		t.Errorf("anonymous registering a client: %d", st)
	}
	st, m = apiCall(t, e, "POST", "/oidc/admin/clients", at1, body)
	if st != 201 || m["secret"] == nil || m["secret"] == "" || m["pairwise"] != true {
		t.Fatalf("register: %d %v", st, m)
	}
	if st, _ := apiCall(t, e, "POST", "/oidc/admin/clients", at1, body); st != 409 {
		t.Errorf("duplicate: %d", st)
	}
	st, m = apiCall(t, e, "POST", "/oidc/admin/clients", at1, `{"id":"x","grantTypes":["implicit"]}`)
	if st != 400 || !strings.Contains(m["error"].(map[string]any)["message"].(string), "implicit") {
		t.Errorf("implicit grant: %d %v", st, m)
	}
	st, m = apiCall(t, e, "GET", "/oidc/admin/clients", at1, "")
	if st != 200 || len(m["clients"].([]any)) < 7 {
		t.Errorf("list: %d %v", st, m)
	}
	if st, _ := apiCall(t, e, "DELETE", "/oidc/admin/clients/dept-tax", at1, ""); st != 204 {
		t.Errorf("delete: %d", st)
	}
}

func TestBootstrapIdempotent(t *testing.T) {
	e := identitytest.New(t)
	ctx := context.Background()
	if len(e.Secrets) != 2 || e.Secrets[identity.ClientWebPortal] == "" || e.Secrets[identity.ClientConsole] == "" {
		t.Fatalf("first bootstrap secrets %v", e.Secrets)
	}
	again, err := e.P.Bootstrap(ctx, identity.BootstrapConfig{AdminUsername: identitytest.AdminUser, BaseURL: e.Issuer})
	if err != nil || again.AdminPassword != "" || len(again.ClientSecrets) != 0 {
		t.Fatalf("second bootstrap %+v %v", again, err)
	}
	// The console's addresses follow its URL when it moves; its secret stays.
	if _, err := e.P.Bootstrap(ctx, identity.BootstrapConfig{AdminUsername: identitytest.AdminUser, BaseURL: e.Issuer,
		ConsoleURL: "https://console.example.org/ops/"}); err != nil {
		t.Fatal(err)
	}
	con, err := e.Store.GetClient(ctx, identity.ClientConsole)
	if err != nil || fmt.Sprint(con.RedirectURIs, con.PostLogoutURIs) != "[https://console.example.org/ops/callback] [https://console.example.org/ops/]" ||
		con.Public() || len(con.Resources) != 1 {
		t.Fatalf("console client after its URL changed: %+v %v", con, err)
	}
	cs, _ := e.Store.ListClients(ctx)
	var ids []string
	for _, c := range cs {
		ids = append(ids, c.ID)
	}
	for _, want := range []string{identity.ClientWebPortal, identity.ClientMobileApp, identity.ClientMiniProgram,
		identity.ClientKioskShell, identity.ClientConsole, identity.ClientFleetctl} {
		if !slices.Contains(ids, want) {
			t.Errorf("built-in client %s missing", want)
		}
	}
	// A fresh admin name with no password gets a generated one that works.
	b, err := e.P.Bootstrap(ctx, identity.BootstrapConfig{AdminUsername: "root", BaseURL: e.Issuer})
	if err != nil || len(b.AdminPassword) < 16 {
		t.Fatalf("%+v %v", b, err)
	}
	if _, err := e.P.PasswordLogin(ctx, "root", b.AdminPassword); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(e.Logs.String(), b.AdminPassword) {
		t.Error("generated password logged")
	}
}

func TestStaffAdminAPI(t *testing.T) {
	e := identitytest.New(t)
	ctx := context.Background()
	verifier := oauth2.GenerateVerifier()
	_, tok, _ := exchange(e, codeFor(t, e, verifier), verifier, e.Callback)
	at := tok["access_token"].(string)

	st, m := apiCall(t, e, "POST", "/oidc/admin/staff", at, `{"username":"li","name":"李四","password":"a good password","roles":["fieldops"],"regions":["440305","4401"]}`)
	if st != 201 || m["username"] != "li" || fmt.Sprint(m["regions"]) != "[440305 4401]" {
		t.Fatalf("create: %d %v", st, m)
	}
	for body, want := range map[string]int{
		`{"username":"li","password":"a good password","roles":[]}`:              409,
		`{"username":"wang","password":"short","roles":[]}`:                      400,
		`{"username":"wang","password":"a good password","roles":["god"]}`:       400,
		`{"username":"wang","password":"a good password","extra":1}`:             400,
		`{"username":"wang","password":"a good password","regions":["4403051"]}`: 400,
		`{"username":"wang","password":"a good password","regions":["00"]}`:      400,
		// A developer works for one department.
		`{"username":"wang","password":"a good password","roles":["developer"]}`: 400,
	} {
		if st, m := apiCall(t, e, "POST", "/oidc/admin/staff", at, body); st != want {
			t.Errorf("%s: %d %v, want %d", body, st, m, want)
		}
	}
	// Lock the account, then an admin resets it with new roles and a new password.
	li, _ := e.Store.AccountByUsername(ctx, "li")
	for range 100 {
		e.Store.RecordLogin(ctx, li.ID, false, e.Clock.Now())
	}
	if _, err := e.P.PasswordLogin(ctx, "li", "a good password"); err == nil {
		t.Fatal("locked account logged in")
	}
	var list api.Staff
	if st, b := apiRaw(t, e, "GET", "/oidc/admin/staff", at, ""); st != 200 || json.Unmarshal(b, &list) != nil {
		t.Fatalf("list staff: %d %s", st, b)
	}
	i := slices.IndexFunc(list.Staff, func(s api.StaffAccount) bool { return s.Username == "li" })
	if i < 0 || !list.Staff[i].Locked || list.Staff[i].Failures == 0 || fmt.Sprint(list.Staff[i].Roles) != "[fieldops]" ||
		fmt.Sprint(list.Staff[i].Regions) != "[440305 4401]" {
		t.Fatalf("list staff: %+v, want li locked with its failures", list.Staff)
	}
	if st, m := apiCall(t, e, "PUT", "/oidc/admin/staff/li", at, `{"roles":["reviewer","developer"],"password":"another password","department":"tax"}`); st != 200 || m["department"] != "tax" {
		t.Fatalf("update: %d %v", st, m)
	}
	a, err := e.P.PasswordLogin(ctx, "li", "another password")
	if err != nil || fmt.Sprint(a.Roles) != "[reviewer developer]" || len(a.Regions) != 0 || a.Department != "tax" {
		t.Fatalf("after reset: %+v %v (an update without regions clears the scope)", a, err)
	}
	if st, m := apiCall(t, e, "PUT", "/oidc/admin/staff/li", at, `{"roles":["fieldops"],"regions":["44"]}`); st != 200 || fmt.Sprint(m["regions"]) != "[44]" {
		t.Fatalf("update regions: %d %v", st, m)
	}
	if a, _ = e.Store.AccountByUsername(ctx, "li"); fmt.Sprint(a.Regions) != "[44]" {
		t.Fatalf("regions stored: %v", a.Regions)
	}
	if st, m := apiCall(t, e, "PUT", "/oidc/admin/staff/li", at, `{"roles":["fieldops"],"regions":["4"]}`); st != 400 {
		t.Fatalf("bad region: %d %v", st, m)
	}
	if st, _ := apiCall(t, e, "PUT", "/oidc/admin/staff/nobody", at, `{"roles":[]}`); st != 404 {
		t.Errorf("unknown staff: %d", st)
	}
}

// TestRefusalsTold: every refused password login is told (hub/security keeps them): a wrong
// password with the staff member's name and the browser's address, an unknown account without
// the name typed, a throttled attempt, the lock when it happens and each attempt after it.
func TestRefusalsTold(t *testing.T) {
	type told struct{ kind, staff, source string }
	var mu sync.Mutex
	var got []told
	e := identitytest.New(t, func(c *identity.Config) {
		c.ThrottleAfter, c.LockAfter = 2, 3
		c.OnRefused = func(kind, staff, source string) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, told{kind, staff, source})
		}
	})
	ctx := context.Background()
	if _, err := e.P.CreateStaff(ctx, identity.NewStaff{Username: "bob", Password: "bobs password", Roles: []string{identity.RoleFieldOps}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.NewBrowser().Login(authURL(e, "rp", e.Callback, nil), "bob", "wrong"); err == nil {
		t.Fatal("a wrong password logged in")
	}
	e.P.PasswordLogin(ctx, "secret-typed-as-username", "x")
	e.P.PasswordLogin(ctx, "bob", "wrong") // the second failure: throttled from now on
	e.P.PasswordLogin(ctx, "bob", "bobs password")
	e.Clock.Advance(time.Minute)
	e.P.PasswordLogin(ctx, "bob", "wrong") // the third: locked
	e.Clock.Advance(time.Hour)
	e.P.PasswordLogin(ctx, "bob", "bobs password")
	want := []told{
		{identity.LoginFailed, "bob", "127.0.0.1"},
		{identity.LoginUnknown, "", ""},
		{identity.LoginFailed, "bob", ""},
		{identity.LoginThrottled, "bob", ""},
		{identity.LoginFailed, "bob", ""},
		{identity.LoginLocked, "bob", ""},
		{identity.LoginLocked, "bob", ""},
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, want) {
		t.Fatalf("told %+v\nwant %+v", got, want)
	}
}
