package wire

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

func TestSealAssertion(t *testing.T) {
	enc, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sig, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	big, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	jwks := func(keys ...jose.JSONWebKey) []byte {
		b, _ := json.Marshal(jose.JSONWebKeySet{Keys: keys})
		return b
	}
	sigKey := jose.JSONWebKey{Key: &sig.PublicKey, KeyID: "s1", Algorithm: "ES256", Use: "sig"}
	encKey := jose.JSONWebKey{Key: &enc.PublicKey, KeyID: "e1", Algorithm: "ECDH-ES", Use: "enc"}
	p384 := jose.JSONWebKey{Key: &big.PublicKey, KeyID: "e2", Algorithm: "ECDH-ES", Use: "enc"}
	for name, set := range map[string][]byte{"no enc key": jwks(sigKey), "P-384 only": jwks(sigKey, p384), "not JSON": []byte("{")} {
		if _, err := EncryptionKey(set); err == nil {
			t.Errorf("%s: a key was chosen", name)
		}
	}
	k, err := EncryptionKey(jwks(sigKey, p384, encKey))
	if err != nil || k.KeyID != "e1" {
		t.Fatalf("EncryptionKey = %+v, %v", k, err)
	}
	sealed, err := SealAssertion("a.b.c", k)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := jose.ParseEncryptedCompact(sealed, []jose.KeyAlgorithm{AssertionKeyAlg}, []jose.ContentEncryption{AssertionEnc})
	if err != nil || obj.Header.KeyID != "e1" || obj.Header.ExtraHeaders[jose.HeaderContentType] != "JWT" {
		t.Fatalf("sealed %q: %v %+v", sealed, err, obj)
	}
	if plain, err := obj.Decrypt(enc); err != nil || string(plain) != "a.b.c" {
		t.Fatalf("decrypt: %q %v", plain, err)
	}
}
