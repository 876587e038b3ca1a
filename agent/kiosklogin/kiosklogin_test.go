package kiosklogin

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

func TestAssertionVerifiesAndCardStaysHidden(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	const number = "44010619900307124X"
	card := wire.IDCard{Number: wire.Secret(number), Name: "张三丰"}
	a, err := Assertion(key, "k-1", "http://hub", card, time.Unix(1764100000, 0), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(a, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %q", a)
	}
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	h := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if len(sig) != 64 || !ecdsa.Verify(&key.PublicKey, h[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		t.Fatal("signature does not verify")
	}
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	for _, want := range []string{`"iss":"k-1"`, `"sub":"k-1"`, `"aud":"http://hub"`, `"exp":1764100060`, `"id_card":{"number":"` + number + `","name":"张三丰"}`} {
		if !strings.Contains(string(payload), want) {
			t.Errorf("payload %s lacks %s", payload, want)
		}
	}
	if s := fmt.Sprintf("%v %+v %s", card, card, card); strings.Contains(s, number) || strings.Contains(s, "张三丰") {
		t.Errorf("card printed: %s", s)
	}
	card.Wipe()
	if card.Number != nil || card.Name != "" {
		t.Fatal("card not wiped")
	}
}

// recorder is a transport that keeps every request the agent sends, as bytes on the wire.
type recorder struct {
	mu   sync.Mutex
	sent bytes.Buffer
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	dump, err := httputil.DumpRequestOut(req, true)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.sent.Write(dump)
	r.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

// TestLoginSealsTheCard captures what Login sends: no request holds the ID number or the name,
// in clear or in any base64url part; the hub's private key opens the assertion, whose signature
// verifies with the kiosk's key and whose claims carry the card.
func TestLoginSealsTheCard(t *testing.T) {
	const number, name = "44010619900307124X", "张三丰"
	device, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	hubEnc, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	hubSig, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	withEnc := true
	var got wire.KioskClaims
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			json.NewEncoder(w).Encode(map[string]string{"issuer": srv.URL, "token_endpoint": srv.URL + "/token", "jwks_uri": srv.URL + "/keys"})
		case "/keys":
			set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &hubSig.PublicKey, KeyID: "s1", Algorithm: "ES256", Use: "sig"}}}
			if withEnc {
				set.Keys = append(set.Keys, jose.JSONWebKey{Key: &hubEnc.PublicKey, KeyID: "e1", Algorithm: "ECDH-ES", Use: "enc"})
			}
			json.NewEncoder(w).Encode(set)
		case "/token":
			jwe, err := jose.ParseEncryptedCompact(r.PostFormValue("assertion"), []jose.KeyAlgorithm{jose.ECDH_ES}, []jose.ContentEncryption{jose.A256GCM})
			if err != nil || jwe.Header.KeyID != "e1" {
				http.Error(w, `{"error":"invalid_grant"}`, 400)
				return
			}
			inner, err := jwe.Decrypt(hubEnc)
			if err != nil {
				http.Error(w, `{"error":"invalid_grant"}`, 400)
				return
			}
			jws, err := jose.ParseSigned(string(inner), []jose.SignatureAlgorithm{jose.ES256})
			if err != nil {
				http.Error(w, `{"error":"invalid_grant"}`, 400)
				return
			}
			payload, err := jws.Verify(&device.PublicKey)
			if err != nil || json.Unmarshal(payload, &got) != nil {
				http.Error(w, `{"error":"invalid_grant"}`, 400)
				return
			}
			w.Write([]byte(`{"access_token":"at","expires_in":600}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	rec := &recorder{}
	hc := &http.Client{Transport: rec}
	card := wire.IDCard{Number: wire.Secret(number), Name: name}
	s, err := Login(t.Context(), hc, srv.URL, "k-1", device, card)
	if err != nil {
		t.Fatal(err)
	}
	if s.AccessToken != "at" || got.Card == nil || string(got.Card.Number) != number || got.Card.Name != name || got.Issuer != "k-1" {
		t.Fatalf("the hub's key does not open the assertion to the card: %v %+v", s, got)
	}
	sent := rec.sent.String()
	var parts []string
	for _, line := range strings.Split(sent, "\n") {
		form, _ := url.ParseQuery(strings.TrimSpace(line))
		for _, vs := range form {
			for _, v := range vs {
				parts = append(parts, strings.Split(v, ".")...)
			}
		}
	}
	if len(parts) < 5 {
		t.Fatalf("no assertion captured: %q", sent)
	}
	for _, p := range append(parts, sent) {
		dec, _ := base64.RawURLEncoding.DecodeString(p)
		for _, s := range []string{p, string(dec)} {
			if strings.Contains(s, number) || strings.Contains(s, name) || strings.Contains(s, number[:17]) {
				t.Fatalf("the card is on the wire: %.200q", s)
			}
		}
	}

	// A hub without an encryption key: the agent sends no card at all.
	withEnc = false
	rec.sent.Reset()
	if _, err := Login(t.Context(), hc, srv.URL, "k-1", device, card); !errors.Is(err, wire.ErrNoEncryptionKey) {
		t.Fatalf("hub without an encryption key: %v", err)
	}
	if strings.Contains(rec.sent.String(), "/token") {
		t.Error("a token request was sent without an encryption key")
	}
}
