package identity_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/identity"
	"github.com/kioskfleet/kioskfleet/hub/identity/identitytest"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// canary is a syntactically valid ID number (GB 11643 check character) used only in tests.
const canary = "11010519491231002X"

func bearer(e *identitytest.Env, at string) *http.Request {
	req, _ := http.NewRequest(http.MethodGet, e.Issuer+"/api/v1/devices", nil)
	req.Header.Set("Authorization", "Bearer "+at)
	return req
}

func card(n string) *wire.IDCard {
	return &wire.IDCard{Number: wire.Secret(n), Name: "张三"}
}

func cardLogin(e *identitytest.Env, assertion string) (int, map[string]any, error) {
	return e.PostForm("/oidc/token", url.Values{"grant_type": {identity.GrantTypeJWTBearer}, "assertion": {assertion},
		"client_id": {identity.ClientKioskShell}, "scope": {"openid profile offline_access"}}, "", "")
}

func TestIDCardLogin(t *testing.T) {
	e := identitytest.New(t)
	// Capture op's own logging (slog's default) too, for the canary check.
	var global identitytest.SyncBuffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&global, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() { slog.SetDefault(prev) })

	k := e.EnrollKiosk(t, "kiosk-ft-01")
	st, tok, err := cardLogin(e, k.Assertion(e.Issuer, card(canary), time.Now(), time.Minute))
	if err != nil || st != 200 {
		t.Fatalf("%d %v %v", st, tok, err)
	}
	if tok["refresh_token"] != nil {
		t.Error("kiosk session has a refresh token")
	}
	if ttl := tok["expires_in"].(float64); ttl > 600 || ttl < 590 {
		t.Errorf("kiosk session lasts %vs, want 10 min", ttl)
	}
	idt, err := oidcVerifier(t, e, identity.ClientKioskShell).Verify(context.Background(), tok["id_token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		ACR  string
		AMR  []string
		Name string
	}
	idt.Claims(&c)
	if c.ACR != identity.ACRIDCard || fmt.Sprint(c.AMR) != "[sc hwk]" {
		t.Errorf("acr %q amr %v", c.ACR, c.AMR)
	}
	pr, err := e.P.Authenticate(bearer(e, tok["access_token"].(string)))
	if err != nil {
		t.Fatal(err)
	}
	if pr.KioskID != k.ID || !pr.Has(identity.RoleCitizen) || pr.Has(identity.RoleFieldOps) || pr.ACR != identity.ACRIDCard {
		t.Errorf("principal %+v", pr)
	}
	// The same card finds the same account.
	_, tok2, _ := cardLogin(e, k.Assertion(e.Issuer, card(canary), time.Now(), time.Minute))
	pr2, err := e.P.Authenticate(bearer(e, tok2["access_token"].(string)))
	if err != nil || pr2.Subject != pr.Subject {
		t.Errorf("second login: account %q, first %q (%v)", pr2.Subject, pr.Subject, err)
	}
	acct, err := e.Store.GetAccount(context.Background(), pr.Subject)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := e.P.IDCardOf(acct)
	if err != nil || string(stored.Number) != canary || stored.Name != "张三" || acct.Name != "" {
		t.Errorf("stored card data does not decrypt back (%v)", err)
	}
	n := stored.Number
	req := bearer(e, tok["access_token"].(string))
	req.URL.Path = "/oidc/userinfo"
	if resp, err := http.DefaultClient.Do(req); err == nil {
		var ui struct{ Name string }
		jsonDecode(resp.Body, &ui)
		resp.Body.Close()
		if ui.Name != "张三" {
			t.Errorf("userinfo name %q", ui.Name)
		}
	}
	if s := fmt.Sprintf("%v %+v %#v %s %v %+v %#v", n, card(canary), card(canary).Number, card(canary), *card(canary),
		*card(canary), *card(canary)); bytes.Contains([]byte(s), []byte(canary)) || bytes.Contains([]byte(s), []byte("张三")) {
		t.Errorf("card data printed: %s", s)
	}
	var js bytes.Buffer
	slog.New(slog.NewJSONHandler(&js, nil)).Info("x", "card", card(canary), "v", *card(canary), "n", n)
	if bytes.Contains(js.Bytes(), []byte(canary)) || bytes.Contains(js.Bytes(), []byte("张三")) {
		t.Errorf("card data in a JSON log: %s", js.String())
	}

	// The canary appears in no log line and only encrypted in the database files.
	for name, logs := range map[string]string{"provider": e.Logs.String(), "global": global.String()} {
		if bytes.Contains([]byte(logs), []byte(canary)) || bytes.Contains([]byte(logs), []byte(canary[:17])) {
			t.Errorf("%s log contains the ID number", name)
		}
	}
	if err := e.Store.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(e.DBPath + "*")
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if bytes.Contains(b, []byte(canary[:17])) || bytes.Contains(b, []byte("张三")) {
			t.Errorf("%s contains card data in clear", f)
		}
	}
	if len(files) == 0 {
		t.Error("no database files found")
	}
}

func TestIDCardLoginRefusals(t *testing.T) {
	e := identitytest.New(t)
	k := e.EnrollKiosk(t, "kiosk-a")
	other := e.EnrollKiosk(t, "kiosk-b")
	now := time.Now()

	replayed := k.Assertion(e.Issuer, card(canary), now, time.Minute)
	if st, m, err := cardLogin(e, replayed); err != nil || st != 200 {
		t.Fatalf("first use: %d %v %v", st, m, err)
	}
	stranger, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for name, a := range map[string]string{
		"replayed":          replayed,
		"expired":           k.Assertion(e.Issuer, card(canary), now.Add(-5*time.Minute), time.Minute),
		"too long-lived":    k.Assertion(e.Issuer, card(canary), now, time.Hour),
		"issued in future":  k.Assertion(e.Issuer, card(canary), now.Add(10*time.Minute), time.Minute),
		"another key":       e.Seal(identitytest.SignAssertion(stranger, k.ID, e.Issuer, card(canary), now, time.Minute)),
		"other kiosk's key": e.Seal(identitytest.SignAssertion(other.Key, k.ID, e.Issuer, card(canary), now, time.Minute)),
		"unknown kiosk":     e.Seal(identitytest.SignAssertion(stranger, "kiosk-x", e.Issuer, card(canary), now, time.Minute)),
		"wrong audience":    k.Assertion("https://elsewhere.example", card(canary), now, time.Minute),
		"no card":           k.Assertion(e.Issuer, nil, now, time.Minute),
		"bad check digit":   k.Assertion(e.Issuer, card("110105194912310021"), now, time.Minute),
		"short number":      k.Assertion(e.Issuer, card("1101051949"), now, time.Minute),
		"not a JWT":         "a.b.c",
	} {
		st, m, err := cardLogin(e, a)
		if err != nil || st != 400 || m["error"] != "invalid_grant" {
			t.Errorf("%s: %d %v %v, want invalid_grant", name, st, m, err)
		}
	}
	if err := e.Store.RevokeDevice(context.Background(), k.ID, now); err != nil {
		t.Fatal(err)
	}
	st, m, err := cardLogin(e, k.Assertion(e.Issuer, card(canary), now, time.Minute))
	if err != nil || st != 400 || m["error"] != "invalid_grant" || m["error_description"] != "assertion: kiosk is revoked" {
		t.Errorf("revoked kiosk: %d %v %v", st, m, err)
	}
	// Only clients registered for the grant may use it.
	st, m, err = e.PostForm("/oidc/token", url.Values{"grant_type": {identity.GrantTypeJWTBearer},
		"assertion": {other.Assertion(e.Issuer, card(canary), now, time.Minute)}}, "rp", "rp-secret")
	oauthErr(t, st, m, err, 400, "unauthorized_client")
}

func TestCheckIDNumber(t *testing.T) {
	for n, ok := range map[string]bool{canary: true, "11010519491231002x": true, "110105194912310021": false,
		"11010519491231002": false, "1101051949123100AX": false, "": false} {
		if err := identity.CheckIDNumber([]byte(n)); (err == nil) != ok {
			t.Errorf("%q: %v", n, err)
		}
		if err := identity.CheckIDNumber([]byte(n)); err != nil && bytes.Contains([]byte(err.Error()), []byte(n[:min(len(n), 6)])) && n != "" {
			t.Errorf("error names the number: %v", err)
		}
	}
}

func FuzzCheckIDNumber(f *testing.F) {
	f.Add([]byte(canary))
	f.Add([]byte("110105194912310021"))
	f.Add([]byte("x"))
	f.Fuzz(func(t *testing.T, n []byte) {
		_ = identity.CheckIDNumber(n)
	})
}

// When the citizen walks away, the kiosk shell ends the session by revoking its access token
// (RFC 7009, public client).
func TestKioskSessionEndsByRevocation(t *testing.T) {
	e := identitytest.New(t)
	k := e.EnrollKiosk(t, "kiosk-r")
	_, tok, err := cardLogin(e, k.Assertion(e.Issuer, card(canary), e.Clock.Now(), time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	at := tok["access_token"].(string)
	st, _, _ := e.PostForm("/oidc/revoke", url.Values{"token": {at}, "token_type_hint": {"access_token"},
		"client_id": {identity.ClientKioskShell}}, "", "")
	if st != 200 {
		t.Fatalf("revoke: %d", st)
	}
	if got := userinfo(e, at); got != 401 {
		t.Errorf("kiosk session after revocation: %d", got)
	}
	if _, err := e.P.Authenticate(bearer(e, at)); err == nil {
		t.Error("hub API accepts a revoked kiosk session")
	}
}
