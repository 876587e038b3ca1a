package connector

import (
	"crypto/rand"
	"crypto/rsa"
	"testing"
)

// FuzzAlipayAnswer: the gateway's answer is outside bytes. Whatever they are, answer must not
// panic, and must never return a token whose member was not signed by Alipay's key.
func FuzzAlipayAnswer(f *testing.F) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		f.Fatal(err)
	}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	a := &Alipay{alipayKey: &key.PublicKey}
	member := `{"user_id":"2088000000000001","access_token":"t"}`
	good, _ := SignAlipayBytes(key, []byte(member))
	forged, _ := SignAlipayBytes(other, []byte(member))
	f.Add([]byte(`{"alipay_system_oauth_token_response":` + member + `,"sign":"` + good + `"}`))
	f.Add([]byte(`{"alipay_system_oauth_token_response":` + member + `,"sign":"` + forged + `"}`))
	f.Add([]byte(`{"error_response":{"code":"40002","sub_code":"isv.code-invalid"},"sign":"x"}`))
	f.Add([]byte(`{"alipay_system_oauth_token_response":{}}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, body []byte) {
		tok, err := a.answer(body)
		if err == nil && tok.UserID != "" && tok.UserID != "2088000000000001" {
			t.Fatalf("a token for %q without Alipay's signature", tok.UserID)
		}
	})
}
