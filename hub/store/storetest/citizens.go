package storetest

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

// The suites of store.Citizens, run as part of RunIdentity.

func idCitizen(t *testing.T, s store.Identity, id string) {
	t.Helper()
	idMust(t, s.CreateAccount(context.Background(), store.Account{ID: id, Kind: "citizen", Roles: []string{"citizen"}, CreatedAt: T0}))
}

func testIDPasskeys(t *testing.T, s store.Identity) {
	ctx := context.Background()
	idCitizen(t, s, "c1")
	k := store.Passkey{ID: []byte{1, 2}, AccountID: "c1", Name: "手机", Credential: []byte(`{"k":1}`), CreatedAt: T0}
	idMust(t, s.AddPasskey(ctx, k))
	idWantErr(t, s.AddPasskey(ctx, k), store.ErrExists, "duplicate credential ID")
	k2 := store.Passkey{ID: []byte{3}, AccountID: "c1", Name: "key", Credential: []byte(`{}`), CreatedAt: T0.Add(time.Second)}
	idMust(t, s.AddPasskey(ctx, k2))
	got, err := s.GetPasskey(ctx, []byte{1, 2})
	idMust(t, err)
	if got.AccountID != "c1" || got.Name != "手机" || string(got.Credential) != `{"k":1}` || !got.CreatedAt.Equal(T0) || !got.LastUsed.IsZero() {
		t.Fatalf("got %+v", got)
	}
	idMust(t, s.UsePasskey(ctx, []byte{1, 2}, []byte(`{"k":2}`), T0.Add(time.Minute)))
	got, _ = s.GetPasskey(ctx, []byte{1, 2})
	if string(got.Credential) != `{"k":2}` || !got.LastUsed.Equal(T0.Add(time.Minute)) {
		t.Fatalf("after use %+v", got)
	}
	idWantErr(t, s.UsePasskey(ctx, []byte{9}, nil, T0), store.ErrNotFound, "use unknown")
	l, err := s.ListPasskeys(ctx, "c1")
	idMust(t, err)
	if len(l) != 2 || !bytes.Equal(l[0].ID, []byte{1, 2}) || !bytes.Equal(l[1].ID, []byte{3}) {
		t.Fatalf("list %+v", l)
	}
	if l, err := s.ListPasskeys(ctx, "nobody"); err != nil || len(l) != 0 {
		t.Fatalf("list of nobody: %v %v", l, err)
	}
	idWantErr(t, s.DeletePasskey(ctx, "other", []byte{3}), store.ErrNotFound, "delete another account's passkey")
	idMust(t, s.DeletePasskey(ctx, "c1", []byte{3}))
	_, err = s.GetPasskey(ctx, []byte{3})
	idWantErr(t, err, store.ErrNotFound, "deleted passkey")
}

func testIDPhoneCodes(t *testing.T, s store.Identity) {
	ctx := context.Background()
	idCitizen(t, s, "c1")
	idCitizen(t, s, "c2")
	idMust(t, s.SetPhone(ctx, store.Phone{AccountID: "c1", Hash: []byte("n1"), Enc: []byte("e1"), VerifiedAt: T0}))
	idWantErr(t, s.SetPhone(ctx, store.Phone{AccountID: "c2", Hash: []byte("n1"), Enc: []byte("e"), VerifiedAt: T0}), store.ErrExists, "number of another account")
	idWantErr(t, s.SetPhone(ctx, store.Phone{AccountID: "nobody", Hash: []byte("n9"), Enc: []byte("e"), VerifiedAt: T0}), store.ErrNotFound, "phone of no account")
	a, err := s.AccountByPhone(ctx, []byte("n1"))
	idMust(t, err)
	if a.ID != "c1" {
		t.Fatalf("by phone %+v", a)
	}
	idMust(t, s.SetPhone(ctx, store.Phone{AccountID: "c1", Hash: []byte("n2"), Enc: []byte("e2"), VerifiedAt: T0.Add(time.Hour)}))
	if _, err := s.AccountByPhone(ctx, []byte("n1")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("old number still found: %v", err)
	}
	p, err := s.PhoneOf(ctx, "c1")
	idMust(t, err)
	if string(p.Hash) != "n2" || string(p.Enc) != "e2" || !p.VerifiedAt.Equal(T0.Add(time.Hour)) {
		t.Fatalf("phone %+v", p)
	}
	_, err = s.PhoneOf(ctx, "c2")
	idWantErr(t, err, store.ErrNotFound, "account without phone")

	lim := store.PhoneCodeLimits{Window: time.Hour, MaxSends: 3, MinInterval: time.Minute}
	code := func(h string, at time.Time) store.PhoneCode {
		return store.PhoneCode{Key: []byte("k"), CodeHash: []byte(h), CreatedAt: at, ExpiresAt: at.Add(5 * time.Minute)}
	}
	idMust(t, s.IssuePhoneCode(ctx, code("h1", T0), lim))
	idWantErr(t, s.IssuePhoneCode(ctx, code("h2", T0.Add(30*time.Second)), lim), store.ErrLimited, "second code within the interval")
	// Wrong attempts count; with three tries allowed, even the right code is refused after them.
	verify := func(h string, at time.Time) error { return s.VerifyPhoneCode(ctx, []byte("k"), []byte(h), at, 3) }
	for range 3 {
		idWantErr(t, verify("wrong", T0.Add(time.Second)), store.ErrNotFound, "a wrong code")
	}
	idWantErr(t, verify("h1", T0.Add(time.Second)), store.ErrNotFound, "the right code past the tries")
	// A new code resets the tries; an expired one cannot be spent.
	idMust(t, s.IssuePhoneCode(ctx, code("h2", T0.Add(2*time.Minute)), lim))
	idWantErr(t, verify("h2", T0.Add(8*time.Minute)), store.ErrNotFound, "an expired code")
	idMust(t, s.IssuePhoneCode(ctx, code("h3", T0.Add(10*time.Minute)), lim))
	idWantErr(t, s.IssuePhoneCode(ctx, code("h4", T0.Add(20*time.Minute)), lim), store.ErrLimited, "fourth code in the window")
	// The code is spent once; the replaced one spends nothing.
	idWantErr(t, verify("h2", T0.Add(11*time.Minute)), store.ErrNotFound, "a replaced code")
	idMust(t, verify("h3", T0.Add(11*time.Minute)))
	idWantErr(t, verify("h3", T0.Add(11*time.Minute)), store.ErrNotFound, "a code spent twice")
	idWantErr(t, verify("", T0.Add(11*time.Minute)), store.ErrNotFound, "the empty hash of a spent code")
	// Purge keeps the number's window until it ends, so that the limits hold.
	idMust(t, s.Purge(ctx, T0.Add(30*time.Minute)))
	idWantErr(t, s.IssuePhoneCode(ctx, code("h5", T0.Add(30*time.Minute)), lim), store.ErrLimited, "limit after purge inside the window")
	idMust(t, s.IssuePhoneCode(ctx, code("h6", T0.Add(61*time.Minute)), lim)) // a new window
	idMust(t, s.Purge(ctx, T0.Add(3*time.Hour)))
	idWantErr(t, verify("h6", T0.Add(62*time.Minute)), store.ErrNotFound, "code after purge")
}

// testIDPhoneCodeConcurrent spends one code from many goroutines at once: exactly one wins.
func testIDPhoneCodeConcurrent(t *testing.T, s store.Identity) {
	ctx := context.Background()
	lim := store.PhoneCodeLimits{Window: time.Hour, MaxSends: 5, MinInterval: time.Minute}
	idMust(t, s.IssuePhoneCode(ctx, store.PhoneCode{Key: []byte("k"), CodeHash: []byte("h"), CreatedAt: T0,
		ExpiresAt: T0.Add(time.Hour)}, lim))
	var won atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if s.VerifyPhoneCode(ctx, []byte("k"), []byte("h"), T0.Add(time.Second), 5) == nil {
				won.Add(1)
			}
		})
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d spent the code, want 1", won.Load())
	}
	// Wrong attempts from many goroutines: no more than the tries are counted.
	idMust(t, s.IssuePhoneCode(ctx, store.PhoneCode{Key: []byte("k2"), CodeHash: []byte("h"), CreatedAt: T0,
		ExpiresAt: T0.Add(time.Hour)}, lim))
	for range 16 {
		wg.Go(func() { s.VerifyPhoneCode(ctx, []byte("k2"), []byte("wrong"), T0.Add(time.Second), 5) })
	}
	wg.Wait()
	idWantErr(t, s.VerifyPhoneCode(ctx, []byte("k2"), []byte("h"), T0.Add(time.Second), 5), store.ErrNotFound,
		"the right code after five wrong ones")
}

func testIDLinksConsents(t *testing.T, s store.Identity) {
	ctx := context.Background()
	idCitizen(t, s, "c1")
	l := store.Link{Connector: "wechat", Subject: "s1", AccountID: "c1", Name: "小明", CreatedAt: T0}
	idMust(t, s.AddLink(ctx, l))
	idWantErr(t, s.AddLink(ctx, store.Link{Connector: "wechat", Subject: "s1", AccountID: "c2", CreatedAt: T0}), store.ErrExists, "link linked")
	idMust(t, s.AddLink(ctx, store.Link{Connector: "alipay", Subject: "s1", AccountID: "c1", CreatedAt: T0.Add(time.Second)}))
	got, err := s.GetLink(ctx, "wechat", "s1")
	idMust(t, err)
	if got != l {
		t.Fatalf("link %+v, want %+v", got, l)
	}
	ls, err := s.ListLinks(ctx, "c1")
	idMust(t, err)
	if len(ls) != 2 || ls[0].Connector != "wechat" || ls[1].Connector != "alipay" {
		t.Fatalf("links %+v", ls)
	}
	idWantErr(t, s.DeleteLink(ctx, "c2", "wechat", "s1"), store.ErrNotFound, "delete another's link")
	idMust(t, s.DeleteLink(ctx, "c1", "wechat", "s1"))
	_, err = s.GetLink(ctx, "wechat", "s1")
	idWantErr(t, err, store.ErrNotFound, "deleted link")

	idMust(t, s.PutConsent(ctx, store.Consent{AccountID: "c1", ClientID: "dept", Scopes: []string{"openid"}, GrantedAt: T0}))
	idMust(t, s.PutConsent(ctx, store.Consent{AccountID: "c1", ClientID: "dept", Scopes: []string{"openid", "profile"}, GrantedAt: T0.Add(time.Hour)}))
	idMust(t, s.PutConsent(ctx, store.Consent{AccountID: "c1", ClientID: "a-dept", Scopes: []string{"openid"}, GrantedAt: T0}))
	c, err := s.GetConsent(ctx, "c1", "dept")
	idMust(t, err)
	if len(c.Scopes) != 2 || !c.GrantedAt.Equal(T0.Add(time.Hour)) {
		t.Fatalf("consent %+v", c)
	}
	cs, err := s.ListConsents(ctx, "c1")
	idMust(t, err)
	if len(cs) != 2 || cs[0].ClientID != "a-dept" {
		t.Fatalf("consents %+v", cs)
	}
	idMust(t, s.DeleteConsent(ctx, "c1", "dept"))
	idWantErr(t, s.DeleteConsent(ctx, "c1", "dept"), store.ErrNotFound, "withdraw twice")

	cer := store.Ceremony{ID: "x", Kind: "passkey", Doc: []byte("{}"), ExpiresAt: T0.Add(time.Minute)}
	idMust(t, s.PutCeremony(ctx, cer))
	idWantErr(t, s.PutCeremony(ctx, cer), store.ErrExists, "duplicate ceremony")
	_, err = s.TakeCeremony(ctx, "x", "other-kind", T0)
	idWantErr(t, err, store.ErrNotFound, "take as another kind")
	got2, err := s.TakeCeremony(ctx, "x", "passkey", T0)
	idMust(t, err)
	if string(got2.Doc) != "{}" {
		t.Fatalf("ceremony %+v", got2)
	}
	_, err = s.TakeCeremony(ctx, "x", "passkey", T0)
	idWantErr(t, err, store.ErrNotFound, "take twice")
	idMust(t, s.PutCeremony(ctx, store.Ceremony{ID: "y", Kind: "k", Doc: []byte("1"), ExpiresAt: T0}))
	_, err = s.TakeCeremony(ctx, "y", "k", T0)
	idWantErr(t, err, store.ErrNotFound, "take expired")
}

func testIDBindCard(t *testing.T, s store.Identity) {
	ctx := context.Background()
	idCitizen(t, s, "c1")
	idCitizen(t, s, "c2")
	idMust(t, s.BindIDCard(ctx, "c1", []byte("card"), []byte("enc")))
	idMust(t, s.BindIDCard(ctx, "c1", []byte("card"), []byte("enc2"))) // the same card: no change
	a, err := s.AccountByIDHash(ctx, []byte("card"))
	idMust(t, err)
	if a.ID != "c1" || string(a.IDNumberEnc) != "enc" {
		t.Fatalf("bound account %+v", a)
	}
	idWantErr(t, s.BindIDCard(ctx, "c2", []byte("card"), []byte("x")), store.ErrExists, "a card bound to another account")
	idWantErr(t, s.BindIDCard(ctx, "c1", []byte("card2"), []byte("x")), store.ErrConflict, "a second card")
	idWantErr(t, s.BindIDCard(ctx, "nobody", []byte("card3"), []byte("x")), store.ErrNotFound, "no account")
	idMust(t, s.UnbindIDCard(ctx, "c1"))
	idWantErr(t, s.UnbindIDCard(ctx, "c1"), store.ErrNotFound, "unbind twice")
	if a, _ := s.GetAccount(ctx, "c1"); len(a.IDNumberHash) != 0 || len(a.IDNumberEnc) != 0 {
		t.Fatalf("after unbinding %+v", a)
	}
	idMust(t, s.BindIDCard(ctx, "c2", []byte("card"), []byte("x")))
}

func testIDMergeCardAccount(t *testing.T, s store.Identity) {
	ctx := context.Background()
	cardOnly := func(id, card string) {
		t.Helper()
		idMust(t, s.CreateAccount(ctx, store.Account{ID: id, Kind: "citizen", Roles: []string{"citizen"}, CreatedAt: T0,
			IDNumberHash: []byte(card), IDNumberEnc: []byte("enc-" + id)}))
	}
	cardOnly("k1", "card1")
	idCitizen(t, s, "c1")
	idMust(t, s.PutConsent(ctx, store.Consent{AccountID: "k1", ClientID: "dept", Scopes: []string{"openid", "profile"}, GrantedAt: T0}))
	idMust(t, s.PutConsent(ctx, store.Consent{AccountID: "k1", ClientID: "both", Scopes: []string{"openid", "phone"}, GrantedAt: T0}))
	idMust(t, s.PutConsent(ctx, store.Consent{AccountID: "c1", ClientID: "both", Scopes: []string{"openid"}, GrantedAt: T0.Add(time.Hour)}))

	idWantErr(t, s.MergeCardAccount(ctx, "k1", "c1", []byte("card9"), []byte("x"), T0), store.ErrConflict, "another card's hash")
	idWantErr(t, s.MergeCardAccount(ctx, "nobody", "c1", []byte("card1"), []byte("x"), T0), store.ErrNotFound, "no account to merge")
	idWantErr(t, s.MergeCardAccount(ctx, "k1", "nobody", []byte("card1"), []byte("x"), T0), store.ErrNotFound, "no account to merge into")
	idMust(t, s.MergeCardAccount(ctx, "k1", "c1", []byte("card1"), []byte("enc-c1"), T0.Add(2*time.Hour)))
	if _, err := s.GetAccount(ctx, "k1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the card-only account is still there: %v", err)
	}
	a, err := s.AccountByIDHash(ctx, []byte("card1"))
	idMust(t, err)
	if a.ID != "c1" || string(a.IDNumberEnc) != "enc-c1" {
		t.Fatalf("the card is held by %+v", a)
	}
	cs, err := s.ListConsents(ctx, "c1")
	idMust(t, err)
	if len(cs) != 2 || cs[0].ClientID != "both" || len(cs[0].Scopes) != 1 || cs[1].ClientID != "dept" || len(cs[1].Scopes) != 2 {
		t.Fatalf("consents after the merge (its own kept, the card-only one's carried): %+v", cs)
	}
	if cs, _ := s.ListConsents(ctx, "k1"); len(cs) != 0 {
		t.Fatalf("the merged account's consents remain: %+v", cs)
	}
	ds, err := s.PendingDeletions(ctx)
	idMust(t, err)
	if len(ds) != 1 || ds[0].AccountID != "k1" || !ds[0].DeletedAt.Equal(T0.Add(2*time.Hour)) {
		t.Fatalf("pending deletions %+v", ds)
	}

	// An account holding the card with another credential is not merged; nor into an account
	// holding a card.
	cardOnly("k2", "card2")
	idCitizen(t, s, "c2")
	idMust(t, s.AddPasskey(ctx, store.Passkey{ID: []byte("pk"), AccountID: "k2", Credential: []byte("{}"), CreatedAt: T0}))
	idWantErr(t, s.MergeCardAccount(ctx, "k2", "c2", []byte("card2"), []byte("x"), T0), store.ErrConflict, "an account with a passkey")
	idMust(t, s.DeletePasskey(ctx, "k2", []byte("pk")))
	idMust(t, s.SetPhone(ctx, store.Phone{AccountID: "k2", Hash: []byte("n2"), Enc: []byte("e"), VerifiedAt: T0}))
	idWantErr(t, s.MergeCardAccount(ctx, "k2", "c2", []byte("card2"), []byte("x"), T0), store.ErrConflict, "an account with a phone")
	cardOnly("k3", "card3")
	idWantErr(t, s.MergeCardAccount(ctx, "k3", "c1", []byte("card3"), []byte("x"), T0), store.ErrConflict, "into an account holding a card")
	if a, err := s.GetAccount(ctx, "k3"); err != nil || string(a.IDNumberHash) != "card3" {
		t.Fatalf("a refused merge changed the card-only account: %+v %v", a, err)
	}
}

func testIDDeleteAccount(t *testing.T, s store.Identity) {
	ctx := context.Background()
	idCitizen(t, s, "c1")
	idCitizen(t, s, "c2")
	for _, id := range []string{"c1", "c2"} {
		idMust(t, s.AddPasskey(ctx, store.Passkey{ID: []byte(id), AccountID: id, Credential: []byte("{}"), CreatedAt: T0}))
		idMust(t, s.SetPhone(ctx, store.Phone{AccountID: id, Hash: []byte("n" + id), Enc: []byte("e"), VerifiedAt: T0}))
		idMust(t, s.IssuePhoneCode(ctx, store.PhoneCode{Key: []byte("n" + id), CodeHash: []byte("h"), CreatedAt: T0,
			ExpiresAt: T0.Add(time.Hour)}, store.PhoneCodeLimits{Window: time.Hour, MaxSends: 1}))
		idMust(t, s.AddLink(ctx, store.Link{Connector: "oidc", Subject: id, AccountID: id, CreatedAt: T0}))
		idMust(t, s.PutConsent(ctx, store.Consent{AccountID: id, ClientID: "dept", Scopes: []string{"openid"}, GrantedAt: T0}))
		for _, h := range []string{"s1", "s2"} {
			idMust(t, s.CreateBrowserSession(ctx, store.BrowserSession{Hash: []byte(id + h), UserID: id, AMR: []string{"sms"},
				AuthTime: T0, ExpiresAt: T0.Add(time.Hour)}))
		}
		tok := idTok("t"+id, store.TokenRefresh, "f"+id, []byte("h"+id))
		tok.UserID = id
		idMust(t, s.InsertTokens(ctx, tok))
		_, err := s.CountGuess(ctx, id, true, T0, time.Hour)
		idMust(t, err)
	}
	bs, err := s.ListBrowserSessions(ctx, "c1", T0)
	idMust(t, err)
	if len(bs) != 2 || bs[0].UserID != "c1" || bs[0].AMR[0] != "sms" {
		t.Fatalf("browser sessions %+v", bs)
	}
	idMust(t, s.DeleteBrowserSessions(ctx, "c1", []byte("c1s2")))
	if bs, _ := s.ListBrowserSessions(ctx, "c1", T0); len(bs) != 1 || string(bs[0].Hash) != "c1s2" {
		t.Fatalf("after signing out elsewhere: %+v", bs)
	}

	idMust(t, s.DeleteAccount(ctx, "c1", T0.Add(time.Hour)))
	idWantErr(t, s.DeleteAccount(ctx, "c1", T0), store.ErrNotFound, "delete twice")
	_, err = s.GetAccount(ctx, "c1")
	idWantErr(t, err, store.ErrNotFound, "deleted account")
	for what, err := range map[string]error{
		"passkey":         func() error { _, err := s.GetPasskey(ctx, []byte("c1")); return err }(),
		"phone":           func() error { _, err := s.PhoneOf(ctx, "c1"); return err }(),
		"phone lookup":    func() error { _, err := s.AccountByPhone(ctx, []byte("nc1")); return err }(),
		"phone code":      s.VerifyPhoneCode(ctx, []byte("nc1"), []byte("h"), T0, 5),
		"link":            func() error { _, err := s.GetLink(ctx, "oidc", "c1"); return err }(),
		"consent":         func() error { _, err := s.GetConsent(ctx, "c1", "dept"); return err }(),
		"browser session": func() error { _, err := s.GetBrowserSession(ctx, []byte("c1s2")); return err }(),
		"token":           func() error { _, err := s.GetToken(ctx, "tc1"); return err }(),
	} {
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s of the deleted account: %v, want not found", what, err)
		}
	}
	if n, err := s.CountGuess(ctx, "c1", false, T0, time.Hour); err != nil || n != 0 {
		t.Errorf("wrong user codes of the deleted account: %d %v, want 0", n, err)
	}
	if n, err := s.CountGuess(ctx, "c2", false, T0, time.Hour); err != nil || n != 1 {
		t.Errorf("wrong user codes of the other account: %d %v, want 1", n, err)
	}
	// The other account keeps everything.
	if _, err := s.GetPasskey(ctx, []byte("c2")); err != nil {
		t.Errorf("the other account's passkey: %v", err)
	}
	if err := s.VerifyPhoneCode(ctx, []byte("nc2"), []byte("h"), T0, 5); err != nil {
		t.Errorf("the other account's code: %v", err)
	}
	if _, err := s.GetToken(ctx, "tc2"); err != nil {
		t.Errorf("the other account's token: %v", err)
	}
	ds, err := s.PendingDeletions(ctx)
	idMust(t, err)
	if len(ds) != 1 || ds[0].AccountID != "c1" || !ds[0].DeletedAt.Equal(T0.Add(time.Hour)) {
		t.Fatalf("pending deletions %+v", ds)
	}
	idMust(t, s.FinishDeletion(ctx, "c1"))
	if ds, _ := s.PendingDeletions(ctx); len(ds) != 0 {
		t.Fatalf("after finishing: %+v", ds)
	}
}
