package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

// RunIdentity runs the suite of store.Identity.
func RunIdentity(t *testing.T, open func(t *testing.T) store.Identity) {
	suite[store.Identity]{
		{"Clients", testIDClients},
		{"Accounts", testIDAccounts},
		{"AuthRequests", testIDAuthRequests},
		{"Tokens", testIDTokens},
		{"RotateConcurrent", testIDRotateConcurrent},
		{"RotateFailureIsolated", testIDRotateFailureIsolated},
		{"DeviceAuth", testIDDeviceAuth},
		{"KeysAndAssertions", testIDKeys},
		{"SessionsAndPurge", testIDSessions},
		{"Passkeys", testIDPasskeys},
		{"PhoneCodes", testIDPhoneCodes},
		{"PhoneCodeConcurrentUse", testIDPhoneCodeConcurrent},
		{"LinksConsentsCeremonies", testIDLinksConsents},
		{"BindIDCard", testIDBindCard},
		{"MergeCardAccount", testIDMergeCardAccount},
		{"DeleteAccount", testIDDeleteAccount},
		{"Guesses", testIDGuesses},
	}.run(t, open)
}

func idMust(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func idWantErr(t *testing.T, err, want error, what string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got %v, want %v", what, err, want)
	}
}

func testIDClients(t *testing.T, s store.Identity) {
	ctx := context.Background()
	c := store.Client{ID: "c1", Name: "渠道", AppType: "web", SecretHash: []byte{1, 2, 3},
		RedirectURIs: []string{"https://a/cb"}, GrantTypes: []string{"authorization_code"}, Pairwise: true, Sector: "s"}
	idMust(t, s.PutClient(ctx, c))
	got, err := s.GetClient(ctx, "c1")
	idMust(t, err)
	if fmt.Sprint(got) != fmt.Sprint(c) {
		t.Fatalf("got %+v, want %+v", got, c)
	}
	c.Name, c.SecretHash = "renamed", nil
	idMust(t, s.PutClient(ctx, c))
	if got, _ := s.GetClient(ctx, "c1"); got.Name != "renamed" || !got.Public() {
		t.Fatalf("after replace: %+v", got)
	}
	idMust(t, s.PutClient(ctx, store.Client{ID: "c0"}))
	l, err := s.ListClients(ctx)
	idMust(t, err)
	if len(l) != 2 || l[0].ID != "c0" {
		t.Fatalf("list %+v", l)
	}
	idMust(t, s.DeleteClient(ctx, "c1"))
	_, err = s.GetClient(ctx, "c1")
	idWantErr(t, err, store.ErrNotFound, "get deleted")
	idWantErr(t, s.DeleteClient(ctx, "c1"), store.ErrNotFound, "delete twice")
}

func testIDAccounts(t *testing.T, s store.Identity) {
	ctx := context.Background()
	a := store.Account{ID: "u1", Kind: "staff", Username: "bob", Name: "Bob", PasswordHash: "h",
		Roles: []string{"admin"}, Department: "tax", CreatedAt: T0}
	idMust(t, s.CreateAccount(ctx, a))
	c := store.Account{ID: "c1", Kind: "citizen", Name: "张三", IDNumberEnc: []byte{9}, IDNumberHash: []byte{1, 1}, CreatedAt: T0}
	idMust(t, s.CreateAccount(ctx, c))
	idMust(t, s.CreateAccount(ctx, store.Account{ID: "c2", Kind: "citizen", CreatedAt: T0})) // no username, no hash
	idWantErr(t, s.CreateAccount(ctx, store.Account{ID: "u2", Kind: "staff", Username: "bob"}), store.ErrExists, "duplicate username")
	idWantErr(t, s.CreateAccount(ctx, store.Account{ID: "c3", Kind: "citizen", IDNumberHash: []byte{1, 1}}), store.ErrExists, "duplicate ID hash")
	idWantErr(t, s.CreateAccount(ctx, store.Account{ID: "u1", Kind: "staff"}), store.ErrExists, "duplicate ID")

	got, err := s.AccountByUsername(ctx, "bob")
	idMust(t, err)
	if got.ID != "u1" || got.Roles[0] != "admin" || !got.CreatedAt.Equal(T0) || got.PasswordHash != "h" || got.Department != "tax" {
		t.Fatalf("by username %+v", got)
	}
	got, err = s.AccountByIDHash(ctx, []byte{1, 1})
	idMust(t, err)
	if got.ID != "c1" || !bytes.Equal(got.IDNumberEnc, []byte{9}) || got.Username != "" {
		t.Fatalf("by hash %+v", got)
	}
	_, err = s.AccountByUsername(ctx, "nobody")
	idWantErr(t, err, store.ErrNotFound, "unknown username")
	idMust(t, s.CreateAccount(ctx, store.Account{ID: "u0", Kind: "staff", Username: "alice", Roles: []string{"fieldops"}, CreatedAt: T0}))
	staff, err := s.ListAccounts(ctx, "staff")
	idMust(t, err)
	if len(staff) != 2 || staff[0].Username != "alice" || staff[1].ID != "u1" || staff[1].Roles[0] != "admin" {
		t.Fatalf("ListAccounts(staff) = %+v, want alice then bob", staff)
	}
	if cs, err := s.ListAccounts(ctx, "citizen"); err != nil || len(cs) != 2 || cs[0].ID != "c1" || cs[1].ID != "c2" {
		t.Fatalf("ListAccounts(citizen) = %+v, %v", cs, err)
	}
	if none, err := s.ListAccounts(ctx, "robot"); err != nil || len(none) != 0 {
		t.Fatalf("ListAccounts(robot) = %+v, %v", none, err)
	}
	for i := 1; i <= 3; i++ {
		n, err := s.RecordLogin(ctx, "u1", false, T0.Add(time.Duration(i)*time.Second))
		idMust(t, err)
		if n != i {
			t.Fatalf("failure %d counted %d", i, n)
		}
	}
	got, _ = s.GetAccount(ctx, "u1")
	if got.Failures != 3 || !got.LastFailure.Equal(T0.Add(3*time.Second)) {
		t.Fatalf("after failures %+v", got)
	}
	if n, err := s.RecordLogin(ctx, "u1", true, T0); err != nil || n != 0 {
		t.Fatalf("success: %d %v", n, err)
	}
	_, err = s.RecordLogin(ctx, "nobody", false, T0)
	idWantErr(t, err, store.ErrNotFound, "record login of unknown")
	idMust(t, s.SetPassword(ctx, "u1", "h2"))
	idMust(t, s.SetRoles(ctx, "u1", []string{"fieldops", "reviewer"}))
	idMust(t, s.SetDepartment(ctx, "u1", "hr"))
	got, _ = s.GetAccount(ctx, "u1")
	if got.PasswordHash != "h2" || fmt.Sprint(got.Roles) != "[fieldops reviewer]" || got.Department != "hr" {
		t.Fatalf("after updates %+v", got)
	}
	idWantErr(t, s.SetPassword(ctx, "nobody", "x"), store.ErrNotFound, "set password of unknown")

	// Region scope: none at first (everywhere), then set, replaced and cleared.
	if len(got.Regions) != 0 {
		t.Fatalf("a new account has regions %v", got.Regions)
	}
	idMust(t, s.CreateAccount(ctx, store.Account{ID: "u3", Kind: "staff", Username: "carol", Roles: []string{"fieldops"},
		Regions: []string{"440305", "4401"}, CreatedAt: T0}))
	got, _ = s.AccountByUsername(ctx, "carol")
	if fmt.Sprint(got.Regions) != "[440305 4401]" {
		t.Fatalf("created with regions: %v", got.Regions)
	}
	idMust(t, s.SetRegions(ctx, "u3", []string{"44"}))
	if got, _ = s.GetAccount(ctx, "u3"); fmt.Sprint(got.Regions) != "[44]" {
		t.Fatalf("after SetRegions: %v", got.Regions)
	}
	idMust(t, s.SetRegions(ctx, "u3", nil))
	if got, _ = s.GetAccount(ctx, "u3"); len(got.Regions) != 0 {
		t.Fatalf("after clearing: %v", got.Regions)
	}
	idWantErr(t, s.SetRegions(ctx, "nobody", []string{"44"}), store.ErrNotFound, "set regions of unknown")
	idWantErr(t, s.SetDepartment(ctx, "nobody", "x"), store.ErrNotFound, "set department of unknown")
}

func testIDAuthRequests(t *testing.T, s store.Identity) {
	ctx := context.Background()
	a := store.AuthRequest{ID: "r1", ClientID: "c", RedirectURI: "https://a/cb", Scopes: []string{"openid"},
		CodeChallenge: "x", CodeChallengeMethod: "S256", CreatedAt: T0, ExpiresAt: T0.Add(time.Minute), FamilyID: "f1"}
	idMust(t, s.SaveAuthRequest(ctx, a))
	a.Done, a.UserID, a.Subject, a.AMR, a.AuthTime, a.CodeHash = true, "u", "sub", []string{"pwd"}, T0, []byte("code")
	idMust(t, s.SaveAuthRequest(ctx, a))
	got, err := s.GetAuthRequest(ctx, "r1")
	idMust(t, err)
	if !got.Done || got.Subject != "sub" || got.AMR[0] != "pwd" || !bytes.Equal(got.CodeHash, []byte("code")) || got.Consumed {
		t.Fatalf("got %+v", got)
	}
	got, err = s.ConsumeCode(ctx, []byte("code"))
	idMust(t, err)
	if got.ID != "r1" || !got.Consumed {
		t.Fatalf("consumed %+v", got)
	}
	got, err = s.ConsumeCode(ctx, []byte("code"))
	idWantErr(t, err, store.ErrCodeReused, "second use")
	if got.FamilyID != "f1" {
		t.Fatalf("reuse must tell the family, got %+v", got)
	}
	_, err = s.ConsumeCode(ctx, []byte("other"))
	idWantErr(t, err, store.ErrNotFound, "unknown code")
	idMust(t, s.DeleteAuthRequest(ctx, "r1")) // kept: consumed
	_, err = s.ConsumeCode(ctx, []byte("code"))
	idWantErr(t, err, store.ErrCodeReused, "after delete")
	idMust(t, s.SaveAuthRequest(ctx, store.AuthRequest{ID: "r2", ExpiresAt: T0}))
	idMust(t, s.DeleteAuthRequest(ctx, "r2"))
	_, err = s.GetAuthRequest(ctx, "r2")
	idWantErr(t, err, store.ErrNotFound, "deleted")
}

func idTok(id string, kind store.TokenKind, family string, hash []byte) store.Token {
	return store.Token{ID: id, Kind: kind, Hash: hash, FamilyID: family, UserID: "u", Subject: "sub", ClientID: "c",
		Scopes: []string{"openid"}, AMR: []string{"pwd"}, ACR: "a", AuthTime: T0, Audience: []string{"https://hub/api/v1"},
		CreatedAt: T0, ExpiresAt: T0.Add(time.Hour)}
}

func testIDTokens(t *testing.T, s store.Identity) {
	ctx := context.Background()
	idMust(t, s.InsertTokens(ctx, idTok("a1", store.TokenAccess, "f1", nil), idTok("r1", store.TokenRefresh, "f1", []byte("h1"))))
	idWantErr(t, s.InsertTokens(ctx, idTok("a1", store.TokenAccess, "f1", nil)), store.ErrExists, "duplicate")
	got, err := s.TokenByHash(ctx, []byte("h1"))
	idMust(t, err)
	if got.ID != "r1" || got.Kind != store.TokenRefresh || got.ACR != "a" || !got.ExpiresAt.Equal(T0.Add(time.Hour)) ||
		len(got.Audience) != 1 || got.Audience[0] != "https://hub/api/v1" {
		t.Fatalf("by hash %+v", got)
	}
	idMust(t, s.RotateRefresh(ctx, "r1", T0, idTok("a2", store.TokenAccess, "f1", nil), idTok("r2", store.TokenRefresh, "f1", []byte("h2"))))
	if got, _ := s.GetToken(ctx, "r1"); !got.Rotated || got.Revoked {
		t.Fatalf("rotated %+v", got)
	}
	idWantErr(t, s.RotateRefresh(ctx, "r1", T0, idTok("a3", store.TokenAccess, "f1", nil)), store.ErrTokenReused, "reuse")
	for _, id := range []string{"a1", "a2", "r2"} {
		if got, _ := s.GetToken(ctx, id); !got.Revoked {
			t.Errorf("%s not revoked after reuse", id)
		}
	}
	if _, err := s.GetToken(ctx, "a3"); !errors.Is(err, store.ErrNotFound) {
		t.Error("tokens of a refused rotation were stored")
	}

	idMust(t, s.InsertTokens(ctx, idTok("b1", store.TokenAccess, "f2", nil)))
	idMust(t, s.InsertTokens(ctx, idTok("b2", store.TokenAccess, "f3", nil)))
	g, err := s.ListGrants(ctx, "u", T0)
	idMust(t, err)
	if len(g) != 2 {
		t.Fatalf("grants %+v", g)
	}
	if g, _ := s.ListGrants(ctx, "u", T0.Add(2*time.Hour)); len(g) != 0 {
		t.Fatalf("expired grants listed: %+v", g)
	}
	idMust(t, s.RevokeToken(ctx, "b1", T0))
	idWantErr(t, s.RevokeToken(ctx, "nope", T0), store.ErrNotFound, "revoke unknown")
	idMust(t, s.RevokeSubject(ctx, "c", "sub", T0))
	if got, _ := s.GetToken(ctx, "b2"); !got.Revoked {
		t.Error("RevokeSubject missed a token")
	}
	idMust(t, s.RevokeFamily(ctx, "nofamily", T0))
}

// testIDRotateConcurrent: of many concurrent rotations of one refresh token exactly one wins.
func testIDRotateConcurrent(t *testing.T, s store.Identity) {
	ctx := context.Background()
	idMust(t, s.InsertTokens(ctx, idTok("r", store.TokenRefresh, "f", []byte("h"))))
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, reused := 0, 0
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.RotateRefresh(ctx, "r", T0, idTok(fmt.Sprint("n", i), store.TokenRefresh, "f", []byte(fmt.Sprint("h", i))))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, store.ErrTokenReused):
				reused++
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok != 1 || reused != 7 {
		t.Fatalf("%d rotations won, %d reused; want 1 and 7", ok, reused)
	}
}

// testIDRotateFailureIsolated: concurrent rotations of different grants (which a backend may
// commit together) where one fails: it changes nothing, and the others are committed.
func testIDRotateFailureIsolated(t *testing.T, s store.Identity) {
	ctx := context.Background()
	idMust(t, s.InsertTokens(ctx, idTok("taken", store.TokenAccess, "other", nil)))
	const n, bad = 8, 3
	for i := range n {
		idMust(t, s.InsertTokens(ctx, idTok(fmt.Sprint("q", i), store.TokenRefresh, fmt.Sprint("fq", i), []byte(fmt.Sprint("hq", i)))))
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			next := fmt.Sprint("q", i, "-next")
			if i == bad {
				next = "taken" // a new token whose ID exists: the rotation fails
			}
			errs[i] = s.RotateRefresh(ctx, fmt.Sprint("q", i), T0,
				idTok(next, store.TokenRefresh, fmt.Sprint("fq", i), []byte(fmt.Sprint("hq", i, "-next"))))
		})
	}
	wg.Wait()
	for i, err := range errs {
		old, gerr := s.GetToken(ctx, fmt.Sprint("q", i))
		idMust(t, gerr)
		_, nerr := s.GetToken(ctx, fmt.Sprint("q", i, "-next"))
		if i == bad {
			if err == nil || errors.Is(err, store.ErrTokenReused) {
				t.Errorf("rotation onto an existing ID: err = %v, want a failure", err)
			}
			if old.Rotated || old.Revoked {
				t.Errorf("the failed rotation left its token rotated=%v revoked=%v", old.Rotated, old.Revoked)
			}
			continue
		}
		if err != nil || !old.Rotated || nerr != nil {
			t.Errorf("rotation %d beside a failed one: err %v, old rotated %v, new token: %v", i, err, old.Rotated, nerr)
		}
	}
	// The failed grant still rotates.
	idMust(t, s.RotateRefresh(ctx, fmt.Sprint("q", bad), T0, idTok("q-retry", store.TokenRefresh, fmt.Sprint("fq", bad), []byte("hq-retry"))))
}

func testIDDeviceAuth(t *testing.T, s store.Identity) {
	ctx := context.Background()
	d := store.DeviceAuth{CodeHash: []byte("dc"), UserCode: "BCDF-GHJK", ClientID: "c", Scopes: []string{"openid"},
		KioskID: "k1", Resources: []string{"https://hub/api/v1"}, CreatedAt: T0, ExpiresAt: T0.Add(5 * time.Minute), Interval: 5 * time.Second, State: store.DeviceAuthPending}
	idMust(t, s.CreateDeviceAuth(ctx, d))
	d2 := d
	d2.CodeHash = []byte("dc2")
	idWantErr(t, s.CreateDeviceAuth(ctx, d2), store.ErrExists, "duplicate user code")
	got, slow, err := s.PollDeviceAuth(ctx, "c", []byte("dc"), T0)
	idMust(t, err)
	if slow || got.State != store.DeviceAuthPending || got.KioskID != "k1" || len(got.Resources) != 1 {
		t.Fatalf("first poll %+v slow=%v", got, slow)
	}
	got, slow, _ = s.PollDeviceAuth(ctx, "c", []byte("dc"), T0.Add(time.Second))
	if !slow || got.Interval != 10*time.Second {
		t.Fatalf("fast poll: slow=%v interval %s", slow, got.Interval)
	}
	_, _, err = s.PollDeviceAuth(ctx, "other", []byte("dc"), T0)
	idWantErr(t, err, store.ErrNotFound, "poll by another client")
	appr := store.DeviceAuth{State: store.DeviceAuthApproved, UserID: "u", Subject: "s", AMR: []string{"pwd"}, AuthTime: T0}
	idMust(t, s.DecideDeviceAuth(ctx, "BCDF-GHJK", appr, T0))
	idWantErr(t, s.DecideDeviceAuth(ctx, "BCDF-GHJK", appr, T0), store.ErrNotFound, "decide twice")
	got, slow, _ = s.PollDeviceAuth(ctx, "c", []byte("dc"), T0.Add(time.Minute))
	if slow || got.State != store.DeviceAuthApproved || got.UserID != "u" || got.AMR[0] != "pwd" {
		t.Fatalf("approved poll %+v", got)
	}
	got, _, _ = s.PollDeviceAuth(ctx, "c", []byte("dc"), T0.Add(2*time.Minute))
	if got.State != store.DeviceAuthIssued {
		t.Fatalf("after issue: %s", got.State)
	}
	d3 := d
	d3.CodeHash, d3.UserCode = []byte("dc3"), "XXXX-XXXX"
	idMust(t, s.CreateDeviceAuth(ctx, d3))
	idWantErr(t, s.DecideDeviceAuth(ctx, "XXXX-XXXX", appr, T0.Add(6*time.Minute)), store.ErrNotFound, "decide expired")
	got, err = s.DeviceAuthByUserCode(ctx, "XXXX-XXXX")
	idMust(t, err)
	if got.State != store.DeviceAuthPending {
		t.Fatalf("expired request changed: %+v", got)
	}
}

func testIDKeys(t *testing.T, s store.Identity) {
	ctx := context.Background()
	idMust(t, s.AddSigningKey(ctx, store.SigningKey{ID: "k1", Alg: "ES256", PrivateEnc: []byte{1}, CreatedAt: T0}))
	// An encryption key does not retire the signing key, nor the other way round.
	idMust(t, s.AddSigningKey(ctx, store.SigningKey{ID: "e1", Alg: "ECDH-ES", Use: store.KeyUseEnc, PrivateEnc: []byte{3},
		CreatedAt: T0.Add(time.Minute)}))
	idMust(t, s.AddSigningKey(ctx, store.SigningKey{ID: "k2", Alg: "ES256", PrivateEnc: []byte{2}, CreatedAt: T0.Add(time.Hour)}))
	ks, err := s.ListSigningKeys(ctx)
	idMust(t, err)
	if len(ks) != 3 || ks[0].ID != "k2" || !ks[0].RetiredAt.IsZero() || ks[0].Use != store.KeyUseSig ||
		ks[1].ID != "e1" || !ks[1].RetiredAt.IsZero() || ks[1].Use != store.KeyUseEnc ||
		!ks[2].RetiredAt.Equal(T0.Add(time.Hour)) {
		t.Fatalf("keys %+v", ks)
	}
	idMust(t, s.DeleteSigningKeys(ctx, T0.Add(2*time.Hour)))
	if ks, _ := s.ListSigningKeys(ctx); len(ks) != 2 || ks[0].ID != "k2" || ks[1].ID != "e1" {
		t.Fatalf("after delete %+v", ks)
	}
	idMust(t, s.UseAssertion(ctx, "k\x00j1", T0))
	idWantErr(t, s.UseAssertion(ctx, "k\x00j1", T0), store.ErrExists, "replay")
}

func testIDSessions(t *testing.T, s store.Identity) {
	ctx := context.Background()
	b := store.BrowserSession{Hash: []byte("s"), UserID: "u", AMR: []string{"pwd"}, AuthTime: T0, ExpiresAt: T0.Add(time.Hour)}
	idMust(t, s.CreateBrowserSession(ctx, b))
	got, err := s.GetBrowserSession(ctx, []byte("s"))
	idMust(t, err)
	if got.UserID != "u" || !got.ExpiresAt.Equal(b.ExpiresAt) {
		t.Fatalf("got %+v", got)
	}
	idMust(t, s.DeleteBrowserSession(ctx, []byte("s")))
	_, err = s.GetBrowserSession(ctx, []byte("s"))
	idWantErr(t, err, store.ErrNotFound, "deleted session")

	idMust(t, s.CreateBrowserSession(ctx, b))
	idMust(t, s.UseAssertion(ctx, "j", T0))
	idMust(t, s.InsertTokens(ctx, idTok("a", store.TokenAccess, "f", nil)))
	idMust(t, s.SaveAuthRequest(ctx, store.AuthRequest{ID: "r", ExpiresAt: T0}))
	idMust(t, s.Purge(ctx, T0.Add(2*time.Hour)))
	if _, err := s.GetBrowserSession(ctx, []byte("s")); !errors.Is(err, store.ErrNotFound) {
		t.Error("expired session survived purge")
	}
	if _, err := s.GetToken(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Error("expired token survived purge")
	}
	idMust(t, s.UseAssertion(ctx, "j", T0.Add(3*time.Hour))) // purged, so usable again
}

// Wrong user codes count per account in windows; concurrent guesses all count (on one store as
// on replicas sharing it); Purge forgets old windows.
func testIDGuesses(t *testing.T, s store.Identity) {
	ctx := context.Background()
	const w = 15 * time.Minute
	count := func(user string, wrong bool, at time.Time, want int) {
		t.Helper()
		if n, err := s.CountGuess(ctx, user, wrong, at, w); err != nil || n != want {
			t.Fatalf("CountGuess(%s, wrong %v, T0+%v) = %d, %v; want %d", user, wrong, at.Sub(T0), n, err, want)
		}
	}
	count("u", false, T0, 0)
	count("u", true, T0, 1)
	count("u", true, T0.Add(time.Minute), 2)
	count("u", false, T0.Add(2*time.Minute), 2)
	count("v", false, T0.Add(2*time.Minute), 0) // per account
	count("u", false, T0.Add(w+time.Second), 0) // the window ended
	count("u", true, T0.Add(w+time.Second), 1)  // a new one began
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := s.CountGuess(ctx, "c", true, T0, w); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	count("c", false, T0.Add(time.Minute), 20)
	idMust(t, s.Purge(ctx, T0.Add(time.Second)))
	count("c", true, T0.Add(2*time.Minute), 1) // its window (begun at T0) was purged
}
