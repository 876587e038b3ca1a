package identity_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/kioskfleet/kioskfleet/hub/identity"
	"github.com/kioskfleet/kioskfleet/hub/identity/identitytest"
)

func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }

// oauthErr asserts an OAuth error response (RFC 6749 §5.2).
func oauthErr(t *testing.T, status int, m map[string]any, err error, wantStatus int, want string) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if status != wantStatus || m["error"] != want {
		t.Fatalf("got %d %v, want %d error=%s", status, m, wantStatus, want)
	}
}

func authURL(e *identitytest.Env, client, redirect string, extra url.Values) string {
	q := url.Values{"client_id": {client}, "redirect_uri": {redirect}, "response_type": {"code"},
		"scope": {"openid offline_access"}, "state": {"s"}}
	for k, v := range extra {
		q[k] = v
	}
	return e.Issuer + "/oidc/authorize?" + q.Encode()
}

func exchange(e *identitytest.Env, code, verifier, redirect string) (int, map[string]any, error) {
	f := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}}
	if verifier != "" {
		f.Set("code_verifier", verifier)
	}
	return e.PostForm("/oidc/token", f, "rp", "rp-secret")
}

func refresh(e *identitytest.Env, rt string) (int, map[string]any, error) {
	return e.PostForm("/oidc/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, "rp", "rp-secret")
}

func userinfo(e *identitytest.Env, at string) int {
	req, _ := http.NewRequest(http.MethodGet, e.Issuer+"/oidc/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+at)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// codeFor runs the login for client rp with an S256 challenge of verifier.
func codeFor(t *testing.T, e *identitytest.Env, verifier string) string {
	t.Helper()
	u := authURL(e, "rp", e.Callback, url.Values{"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)},
		"code_challenge_method": {"S256"}, identity.ParamResource: {e.P.FleetAPI()}})
	cb, err := e.NewBrowser().Login(u, identitytest.AdminUser, identitytest.AdminPassword)
	if err != nil {
		t.Fatal(err)
	}
	if cb.Query().Get("code") == "" {
		t.Fatalf("no code: %s", cb)
	}
	return cb.Query().Get("code")
}

func TestPKCERefusals(t *testing.T) {
	e := identitytest.New(t)
	b := e.NewBrowser()
	for name, extra := range map[string]url.Values{
		"missing":                      {},
		"plain":                        {"code_challenge": {strings.Repeat("a", 43)}, "code_challenge_method": {"plain"}},
		"no method (plain by default)": {"code_challenge": {strings.Repeat("a", 43)}},
	} {
		p, err := b.Get(authURL(e, "spa", "cn.test.app:/cb", extra))
		if err != nil {
			t.Fatal(err)
		}
		loc, _ := url.Parse(p.Loc)
		if loc == nil || loc.Query().Get("error") != "invalid_request" {
			t.Errorf("%s challenge for a public client: status %d location %q, want error=invalid_request", name, p.Status, p.Loc)
		}
	}
	// A confidential client using plain is refused too.
	p, _ := b.Get(authURL(e, "rp", e.Callback, url.Values{"code_challenge": {strings.Repeat("a", 43)}, "code_challenge_method": {"plain"}}))
	if loc, _ := url.Parse(p.Loc); loc == nil || loc.Query().Get("error") != "invalid_request" {
		t.Errorf("plain for a confidential client: %q", p.Loc)
	}

	verifier := oauth2.GenerateVerifier()
	code := codeFor(t, e, verifier)
	st, m, err := exchange(e, code, "", e.Callback)
	oauthErr(t, st, m, err, 400, "invalid_request") // verifier missing
	code = codeFor(t, e, verifier)
	st, m, err = exchange(e, code, oauth2.GenerateVerifier(), e.Callback)
	oauthErr(t, st, m, err, 400, "invalid_grant") // wrong verifier (RFC 7636 §4.6)
}

func TestRedirectURIMustMatchExactly(t *testing.T) {
	e := identitytest.New(t)
	b := e.NewBrowser()
	pkce := url.Values{"code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"}}
	for _, bad := range []string{e.Callback + "/", e.Callback + "?x=1", e.Callback + "x", "http://127.0.0.1:2/callback",
		strings.ToUpper(e.Callback[:4]) + e.Callback[4:], "http://evil.example/callback"} {
		p, err := b.Get(authURL(e, "rp", bad, pkce))
		if err != nil {
			t.Fatal(err)
		}
		// Never redirect to an unregistered URI (RFC 6749 §4.1.2.1): answer in the browser.
		if p.Loc != "" || p.Status != http.StatusBadRequest {
			t.Errorf("redirect_uri %q: status %d location %q, want 400 without redirect", bad, p.Status, p.Loc)
		}
	}
	verifier := oauth2.GenerateVerifier()
	code := codeFor(t, e, verifier)
	st, m, err := exchange(e, code, verifier, e.Callback+"/")
	oauthErr(t, st, m, err, 400, "invalid_grant")
}

func TestCodeReuseRevokesItsTokens(t *testing.T) {
	e := identitytest.New(t)
	verifier := oauth2.GenerateVerifier()
	code := codeFor(t, e, verifier)
	st, first, err := exchange(e, code, verifier, e.Callback)
	if err != nil || st != 200 {
		t.Fatalf("first exchange: %d %v %v", st, first, err)
	}
	at, rt := first["access_token"].(string), first["refresh_token"].(string)
	if userinfo(e, at) != 200 {
		t.Fatal("fresh access token refused")
	}
	st, m, err := exchange(e, code, verifier, e.Callback)
	oauthErr(t, st, m, err, 400, "invalid_grant")
	if got := userinfo(e, at); got != 401 {
		t.Errorf("access token of a reused code: userinfo %d, want 401", got)
	}
	st, m, err = refresh(e, rt)
	oauthErr(t, st, m, err, 400, "invalid_grant")
}

func TestRefreshReuseRevokesFamily(t *testing.T) {
	e := identitytest.New(t)
	verifier := oauth2.GenerateVerifier()
	_, tok, err := exchange(e, codeFor(t, e, verifier), verifier, e.Callback)
	if err != nil {
		t.Fatal(err)
	}
	rt1 := tok["refresh_token"].(string)
	st, tok2, err := refresh(e, rt1)
	if err != nil || st != 200 {
		t.Fatalf("refresh: %d %v %v", st, tok2, err)
	}
	rt2, at2 := tok2["refresh_token"].(string), tok2["access_token"].(string)
	// A second, independent grant of the same user is not touched.
	_, other, _ := exchange(e, codeFor(t, e, verifier), verifier, e.Callback)

	st, m, err := refresh(e, rt1) // reuse of the rotated token
	oauthErr(t, st, m, err, 400, "invalid_grant")
	st, m, err = refresh(e, rt2) // the family is revoked
	oauthErr(t, st, m, err, 400, "invalid_grant")
	if got := userinfo(e, at2); got != 401 {
		t.Errorf("access token of the revoked family: %d, want 401", got)
	}
	if got := userinfo(e, other["access_token"].(string)); got != 200 {
		t.Errorf("access token of another grant: %d, want 200", got)
	}
	if st, _, _ := refresh(e, other["refresh_token"].(string)); st != 200 {
		t.Errorf("refresh of another grant: %d", st)
	}
}

// TestRefreshTokenOfBefore: a refresh token issued before refresh tokens began with their time
// (the store keyed it by its SHA-256 alone) is still found, rotated to one of the new form, and
// its reuse still revokes its family. New tokens are stored under their time and SHA-256.
func TestRefreshTokenOfBefore(t *testing.T) {
	e := identitytest.New(t)
	verifier := oauth2.GenerateVerifier()
	_, tok, err := exchange(e, codeFor(t, e, verifier), verifier, e.Callback)
	if err != nil {
		t.Fatal(err)
	}
	rt := tok["refresh_token"].(string)
	at, err := strconv.ParseUint(rt[:16], 16, 64)
	if len(rt) != 16+43 || err != nil {
		t.Fatalf("refresh token %q: want 16 hexadecimal digits of time and 43 characters", rt)
	}
	sum := sha256.Sum256([]byte(rt))
	row, err := e.Store.TokenByHash(t.Context(), append(binary.BigEndian.AppendUint64(nil, at), sum[:]...))
	if err != nil {
		t.Fatalf("new refresh token not stored under its time and SHA-256: %v", err)
	}
	// The same grant's token as the hub issued it before: 32 random bytes, keyed by their SHA-256.
	old := make([]byte, 32)
	rand.Read(old)
	before := base64.RawURLEncoding.EncodeToString(old)
	sum = sha256.Sum256([]byte(before))
	row.ID, row.Hash = "before-"+row.ID, sum[:]
	if err := e.Store.InsertTokens(t.Context(), row); err != nil {
		t.Fatal(err)
	}
	st, tok2, err := refresh(e, before)
	if err != nil || st != 200 || len(tok2["refresh_token"].(string)) != 16+43 {
		t.Fatalf("refresh with a token of before: %d %v %v", st, tok2, err)
	}
	st, m, err := refresh(e, before) // reuse of the rotated token
	oauthErr(t, st, m, err, 400, "invalid_grant")
	st, m, err = refresh(e, tok2["refresh_token"].(string)) // the family is revoked
	oauthErr(t, st, m, err, 400, "invalid_grant")
	st, m, err = refresh(e, rt) // the grant's other token too
	oauthErr(t, st, m, err, 400, "invalid_grant")
}

func TestExpiredCode(t *testing.T) {
	e := identitytest.New(t)
	verifier := oauth2.GenerateVerifier()
	code := codeFor(t, e, verifier)
	e.Clock.Advance(6 * time.Minute)
	st, m, err := exchange(e, code, verifier, e.Callback)
	oauthErr(t, st, m, err, 400, "invalid_grant")
}

func TestWrongClientSecret(t *testing.T) {
	e := identitytest.New(t)
	verifier := oauth2.GenerateVerifier()
	code := codeFor(t, e, verifier)
	f := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {e.Callback}, "code_verifier": {verifier}}
	st, m, err := e.PostForm("/oidc/token", f, "rp", "wrong")
	oauthErr(t, st, m, err, 401, "invalid_client")
	st, m, err = e.PostForm("/oidc/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}, "nobody", "x")
	oauthErr(t, st, m, err, 401, "invalid_client")
	st, m, err = e.PostForm("/oidc/token", url.Values{"grant_type": {"password"}, "username": {"admin"}, "password": {"x"}}, "rp", "rp-secret")
	oauthErr(t, st, m, err, 400, "unsupported_grant_type")
}

func TestTokenSignedByUnknownKey(t *testing.T) {
	e := identitytest.New(t)
	ctx := context.Background()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	// Same kid as the provider's real key, so only the signature tells.
	sig, _ := jwks(t, e.Issuer+"/oidc/keys")
	kid := sig[0]
	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, nil)
	now := time.Now()
	claims, _ := json.Marshal(map[string]any{"iss": e.Issuer, "sub": "u_admin", "aud": "rp", "exp": now.Add(time.Hour).Unix(),
		"iat": now.Unix(), "jti": "forged", "client_id": "rp", "scope": "openid"})
	jws, _ := signer.Sign(claims)
	forged, _ := jws.CompactSerialize()

	if got := userinfo(e, forged); got != 401 {
		t.Errorf("userinfo with a forged token: %d, want 401", got)
	}
	req, _ := http.NewRequest(http.MethodGet, e.Issuer+"/api/v1/sites", nil)
	req.Header.Set("Authorization", "Bearer "+forged)
	if _, err := e.P.Authenticate(req); err == nil {
		t.Error("hub API accepted a forged token")
	}
	r := newRP(t, e, "rp", "rp-secret")
	if _, err := r.ver.Verify(ctx, forged); err == nil {
		t.Error("relying party accepted an ID token signed by an unknown key")
	}
	p, err := e.NewBrowser().Get(e.Issuer + "/oidc/end_session?" + url.Values{"id_token_hint": {forged},
		"post_logout_redirect_uri": {e.Callback + "/out"}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(p.Loc, e.Callback) {
		t.Errorf("logout with a forged id_token_hint redirected to %s", p.Loc)
	}
}

func TestIntrospectionAndRevocation(t *testing.T) {
	e := identitytest.New(t)
	verifier := oauth2.GenerateVerifier()
	_, tok, err := exchange(e, codeFor(t, e, verifier), verifier, e.Callback)
	if err != nil {
		t.Fatal(err)
	}
	at, rt := tok["access_token"].(string), tok["refresh_token"].(string)
	st, m, err := e.PostForm("/oidc/introspect", url.Values{"token": {at}}, "rp", "rp-secret")
	if err != nil || st != 200 || m["active"] != true || m["client_id"] != "rp" {
		t.Fatalf("introspect: %d %v %v", st, m, err)
	}
	if st, _, _ := e.PostForm("/oidc/introspect", url.Values{"token": {at}}, "rp", "wrong"); st != 401 {
		t.Errorf("introspection with a wrong secret: %d", st)
	}
	// RFC 7009: revoking the refresh token ends its grant, access token included.
	st, _, _ = e.PostForm("/oidc/revoke", url.Values{"token": {rt}, "token_type_hint": {"refresh_token"}}, "rp", "rp-secret")
	if st != 200 {
		t.Fatalf("revoke: %d", st)
	}
	if got := userinfo(e, at); got != 401 {
		t.Errorf("access token after revocation: %d", got)
	}
	_, m, _ = e.PostForm("/oidc/introspect", url.Values{"token": {at}}, "rp", "rp-secret")
	if m["active"] == true {
		t.Errorf("revoked token introspected active: %v", m)
	}
	st, m, err = refresh(e, rt)
	oauthErr(t, st, m, err, 400, "invalid_grant")
}

// Issued tokens, rotations and keys survive a restart of the hub.
func TestRestartKeepsPromises(t *testing.T) {
	e := identitytest.New(t)
	ctx := context.Background()
	verifier := oauth2.GenerateVerifier()
	_, tok, _ := exchange(e, codeFor(t, e, verifier), verifier, e.Callback)
	rt1 := tok["refresh_token"].(string)
	_, tok2, _ := refresh(e, rt1)
	rt2, at2, idt := tok2["refresh_token"].(string), tok2["access_token"].(string), tok2["id_token"].(string)
	kid, enc := jwks(t, e.Issuer+"/oidc/keys")

	e.Restart(t)

	if got, gotEnc := jwks(t, e.Issuer+"/oidc/keys"); len(got) != 1 || got[0] != kid[0] || gotEnc != enc {
		t.Fatalf("keys changed across restart: %v %s -> %v %s", kid, enc, got, gotEnc)
	}
	if _, err := newRP(t, e, "rp", "rp-secret").ver.Verify(ctx, idt); err != nil {
		t.Errorf("ID token from before the restart: %v", err)
	}
	if got := userinfo(e, at2); got != 200 {
		t.Errorf("access token from before the restart: %d", got)
	}
	st, m, err := refresh(e, rt2)
	if err != nil || st != 200 {
		t.Fatalf("refresh token from before the restart: %d %v %v", st, m, err)
	}
	rt3 := m["refresh_token"].(string)
	st, m, err = refresh(e, rt1) // rotated before the restart: still a reuse
	oauthErr(t, st, m, err, 400, "invalid_grant")
	st, m, err = refresh(e, rt3) // and the family is revoked
	oauthErr(t, st, m, err, 400, "invalid_grant")
}
