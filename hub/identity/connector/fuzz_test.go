package connector

import (
	"crypto/rand"
	"crypto/rsa"
	"testing"
)

// FuzzAlipayAnswer: the gateway's answer is outside bytes. Whatever they are, answer must not
// panic, and must never return a token whose member was not signed by Alipay's key.
func FuzzAlipayAnswer(f *testing.F) {
	member := `{"user_id":"2088000000000001","access_token":"t"}`
	a, good, forged := fuzzAlipay(f, member)
	f.Add([]byte(`{"alipay_system_oauth_token_response":` + member + `,"sign":"` + good + `"}`))
	f.Add([]byte(`{"alipay_system_oauth_token_response":` + member + `,"sign":"` + forged + `"}`))
	f.Add([]byte(`{"error_response":{"code":"40002","sub_code":"isv.code-invalid"},"sign":"x"}`))
	f.Add([]byte(`{"alipay_system_oauth_token_response":{}}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var tok alipayToken
		err := a.answer(AlipayTokenMethod, body, &tok)
		if err == nil && tok.UserID != "" && tok.UserID != "2088000000000001" {
			t.Fatalf("a token for %q without Alipay's signature", tok.UserID)
		}
	})
}

// FuzzAlipayUserInfo: alipay.user.info.share's answer is outside bytes. Whatever they are,
// answer must not panic, and must never return a nickname that Alipay's key did not sign.
func FuzzAlipayUserInfo(f *testing.F) {
	member := `{"code":"10000","msg":"Success","user_id":"2088000000000001","nick_name":"支付宝小二","avatar":"https://tfs.alipayobjects.com/images/partner/x"}`
	a, good, forged := fuzzAlipay(f, member)
	f.Add([]byte(`{"alipay_user_info_share_response":` + member + `,"sign":"` + good + `"}`))
	f.Add([]byte(`{"alipay_user_info_share_response":` + member + `,"sign":"` + forged + `"}`))
	f.Add([]byte(`{"alipay_user_info_share_response":{"code":"20001","msg":"Insufficient Token Permissions","sub_code":"aop.invalid-auth-token"},"sign":"x"}`))
	f.Add([]byte(`{"alipay_user_info_share_response":{"nick_name":7}}`))
	f.Add([]byte(`{"sign":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var info alipayUserInfo
		err := a.answer(AlipayUserInfoMethod, body, &info)
		if err == nil && info.NickName != "" && info.NickName != "支付宝小二" {
			t.Fatalf("a nickname %q without Alipay's signature", info.NickName)
		}
	})
}

// fuzzAlipay returns a connector that trusts a new "Alipay" key, and member signed by that key
// (good) and by another (forged).
func fuzzAlipay(f *testing.F, member string) (a *Alipay, good, forged string) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		f.Fatal(err)
	}
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		f.Fatal(err)
	}
	good, _ = SignAlipayBytes(key, []byte(member))
	forged, _ = SignAlipayBytes(other, []byte(member))
	return &Alipay{alipayKey: &key.PublicKey}, good, forged
}
