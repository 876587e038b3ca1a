package identity_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/kioskfleet/kioskfleet/hub/identity"
	"github.com/kioskfleet/kioskfleet/hub/identity/identitytest"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// hubKey is the encryption key the provider publishes now.
func hubKey(t *testing.T, e *identitytest.Env) jose.JSONWebKey {
	t.Helper()
	resp, err := http.Get(e.Issuer + "/oidc/keys")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	k, err := wire.EncryptionKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// leaks reports whether s, or any base64url part of it, holds the card's number or name.
func leaks(s string) bool {
	for _, part := range append(strings.Split(s, "."), s) {
		dec, _ := base64.RawURLEncoding.DecodeString(part)
		for _, b := range []string{part, string(dec)} {
			if strings.Contains(b, canary) || strings.Contains(b, "张三") {
				return true
			}
		}
	}
	return false
}

// TestEncryptedAssertion: the card travels only inside a JWE to the hub's key. A signed assertion
// carrying a card in clear, a tampered one, one encrypted to another key or with other algorithms
// are refused, each with its reason; an assertion sealed just before a key rotation still works.
func TestEncryptedAssertion(t *testing.T) {
	e := identitytest.New(t)
	k := e.EnrollKiosk(t, "kiosk-jwe")
	now := time.Now()
	signed := identitytest.SignAssertion(k.Key, k.ID, e.Issuer, card(canary), now, time.Minute)
	if !leaks(signed) {
		t.Fatal("the leak check finds no card in a signed assertion: it cannot fail")
	}
	sealed := k.Assertion(e.Issuer, card(canary), now, time.Minute)
	if len(strings.Split(sealed, ".")) != 5 || leaks(sealed) {
		t.Fatalf("sealed assertion is no JWE or holds the card: %.120s", sealed)
	}

	key := hubKey(t, e)
	stranger, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	seal := func(signed string, to any, kid string, alg jose.KeyAlgorithm, enc jose.ContentEncryption, cty string) string {
		opts := (&jose.EncrypterOptions{}).WithType("JWT")
		if cty != "" {
			opts = opts.WithContentType(jose.ContentType(cty))
		}
		en, err := jose.NewEncrypter(enc, jose.Recipient{Algorithm: alg, Key: to, KeyID: kid}, opts)
		if err != nil {
			t.Fatal(err)
		}
		obj, err := en.Encrypt([]byte(signed))
		if err != nil {
			t.Fatal(err)
		}
		s, _ := obj.CompactSerialize()
		return s
	}
	fresh := func() string {
		return identitytest.SignAssertion(k.Key, k.ID, e.Issuer, card(canary), now, time.Minute)
	}
	parts := strings.Split(k.Assertion(e.Issuer, card(canary), now, time.Minute), ".")
	ct, _ := base64.RawURLEncoding.DecodeString(parts[3])
	ct[len(ct)/2] ^= 1 // one bit of the ciphertext
	tampered := strings.Join([]string{parts[0], parts[1], parts[2], base64.RawURLEncoding.EncodeToString(ct), parts[4]}, ".")
	for name, c := range map[string]struct{ assertion, want string }{
		"card in clear":  {signed, "id_card must travel encrypted"},
		"tampered":       {tampered, "does not decrypt"},
		"another key":    {seal(fresh(), &stranger.PublicKey, key.KeyID, jose.ECDH_ES, jose.A256GCM, "JWT"), "does not decrypt"},
		"unknown kid":    {seal(fresh(), key.Key, "no-such-key", jose.ECDH_ES, jose.A256GCM, "JWT"), "not this hub's"},
		"key wrapping":   {seal(fresh(), key.Key, key.KeyID, jose.ECDH_ES_A128KW, jose.A256GCM, "JWT"), "not a JWE with ECDH-ES and A256GCM"},
		"weaker content": {seal(fresh(), key.Key, key.KeyID, jose.ECDH_ES, jose.A128GCM, "JWT"), "not a JWE with ECDH-ES and A256GCM"},
		"no cty":         {seal(fresh(), key.Key, key.KeyID, jose.ECDH_ES, jose.A256GCM, ""), "cty JWT"},
	} {
		st, m, err := cardLogin(e, c.assertion)
		if err != nil || st != 400 || m["error"] != "invalid_grant" || !strings.Contains(m["error_description"].(string), c.want) {
			t.Errorf("%s: %d %v %v, want invalid_grant saying %q", name, st, m, err, c.want)
		}
	}
	if st, m, err := cardLogin(e, sealed); err != nil || st != 200 {
		t.Fatalf("sealed assertion refused: %d %v %v", st, m, err)
	}
	if st, m, _ := cardLogin(e, sealed); st != 400 || !strings.Contains(m["error_description"].(string), "replayed") {
		t.Errorf("sealed assertion replayed: %d %v", st, m)
	}

	// Rotation: the key the kiosk fetched a moment ago is still accepted, the new one is published.
	before := k.Assertion(e.Issuer, card(canary), now, time.Minute)
	if err := e.P.RotateKey(t.Context()); err != nil {
		t.Fatal(err)
	}
	if hubKey(t, e).KeyID == key.KeyID {
		t.Fatal("encryption key not rotated")
	}
	if st, m, _ := cardLogin(e, before); st != 200 {
		t.Errorf("assertion sealed before the rotation: %d %v", st, m)
	}
	late := seal(fresh(), key.Key, key.KeyID, jose.ECDH_ES, jose.A256GCM, "JWT")
	e.Clock.Advance(3 * time.Hour) // past the retired key's window
	if st, m, _ := cardLogin(e, late); st != 400 || !strings.Contains(m["error_description"].(string), "not this hub's") {
		t.Errorf("assertion sealed to a long retired key: %d %v", st, m)
	}
}

// TestStrictJSON: every JSON the provider reads refuses invalid UTF-8 and duplicate keys (attack
// 5): the admin API's bodies and a kiosk assertion's claims.
func TestStrictJSON(t *testing.T) {
	e := identitytest.New(t)
	v := oauth2.GenerateVerifier()
	cb := loginCode(t, e, "rp", "openid", v, url.Values{identity.ParamResource: {e.P.FleetAPI()}})
	_, tok := codeToken(t, e, "rp", "rp-secret", cb.Query().Get("code"), v, nil)
	at := tok["access_token"].(string)
	for _, c := range []struct{ path, body, want string }{
		{"/oidc/admin/clients", "{\"id\":\"d1\",\"name\":\"\xe7\xa8\",\"grantTypes\":[\"authorization_code\"]}", "invalid UTF-8"},
		{"/oidc/admin/clients", `{"id":"d1","grantTypes":["authorization_code"],"id":"d2"}`, "duplicate key"},
		{"/oidc/admin/staff", `{"username":"li","password":"a good password","roles":["fieldops"],"Roles":["admin"]}`, "differ only in case"},
		{"/oidc/admin/staff", `{"username":"li\ud800","password":"a good password","roles":[]}`, "lone surrogate"},
	} {
		st, m := apiCall(t, e, "POST", c.path, at, c.body)
		if st != 400 || !strings.Contains(m["error"].(map[string]any)["message"].(string), c.want) {
			t.Errorf("%s %.60q: %d %v, want 400 saying %q", c.path, c.body, st, m, c.want)
		}
	}

	k := e.EnrollKiosk(t, "kiosk-strict")
	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k.Key}, (&jose.SignerOptions{}).WithType("JWT"))
	now := time.Now().Unix()
	for name, claims := range map[string]string{
		"duplicate iss":  fmt.Sprintf(`{"iss":"kiosk-strict","sub":"kiosk-strict","aud":%q,"iat":%d,"exp":%d,"jti":"j1","iss":"kiosk-strict","id_card":{"number":%q,"name":"张三"}}`, e.Issuer, now, now+60, canary),
		"two card names": fmt.Sprintf(`{"iss":"kiosk-strict","sub":"kiosk-strict","aud":%q,"iat":%d,"exp":%d,"jti":"j2","id_card":{"number":%q,"name":"张三","Name":"李四"}}`, e.Issuer, now, now+60, canary),
		"invalid UTF-8":  fmt.Sprintf("{\"iss\":\"kiosk-strict\",\"sub\":\"kiosk-strict\",\"aud\":%q,\"iat\":%d,\"exp\":%d,\"jti\":\"j3\",\"id_card\":{\"number\":%q,\"name\":\"\xe5\xbc\"}}", e.Issuer, now, now+60, canary),
	} {
		jws, err := signer.Sign([]byte(claims))
		if err != nil {
			t.Fatal(err)
		}
		signed, _ := jws.CompactSerialize()
		st, m, err := cardLogin(e, e.Seal(signed))
		desc, _ := m["error_description"].(string)
		if err != nil || st != 400 || !strings.HasPrefix(desc, "assertion: claims are not strict JSON") || strings.Contains(desc, canary) {
			t.Errorf("%s: %d %v %v", name, st, m, err)
		}
	}
}
