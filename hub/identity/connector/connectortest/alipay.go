package connectortest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/identity/connector"
)

// AlipayUser is an Alipay user as an app sees her: user_id (2088...) or, for newer apps, open_id,
// and her profile (alipay.user.info.share).
type AlipayUser struct {
	UserID, OpenID   string
	NickName, Avatar string
}

// Alipay is a fake of Alipay's user authorization page and of the OpenAPI gateway's
// alipay.system.oauth.token, after 「用户信息授权」 and the method's document:
//
//	GET  /oauth2/publicAppAuthorize.htm   app_id, scope (auth_base|auth_user), redirect_uri, state
//	     -> 302 redirect_uri?app_id=&source=alipay_wallet&scope=&auth_code=CODE&state=STATE
//	POST /gateway.do   app_id, method, format, charset, sign_type=RSA2, timestamp
//	     (yyyy-MM-dd HH:mm:ss), version=1.0, grant_type=authorization_code, code, sign
//	     -> {"alipay_system_oauth_token_response": {user_id|open_id, access_token, expires_in,
//	        refresh_token, re_expires_in, auth_start}, "sign": "..."}
//	     or {"error_response": {code, msg, sub_code, sub_msg}, "sign": "..."}
//	POST /gateway.do   the same common parameters, method=alipay.user.info.share, auth_token
//	     -> {"alipay_user_info_share_response": {code "10000", msg "Success", user_id|open_id,
//	        nick_name, avatar}, "sign": "..."}; an unknown token (20001 aop.invalid-auth-token)
//	        or a token of scope auth_base (40006 isv.insufficient-user-permissions) is refused
//	        in that same member, signed.
//
// The request's sign is verified with the app's public key over its parameters but sign and
// empty ones, sorted, joined as k=v with &; the answer is signed with the fake's own ("Alipay's")
// key over the member's JSON text. Errors: 40002 isv.invalid-signature, isv.invalid-app-id,
// isv.code-invalid (unknown or used code), isv.missing-method/isv.invalid-method.
type Alipay struct {
	Srv   *httptest.Server
	AppID string

	appKey    *rsa.PublicKey  // verifies the app's requests
	alipayKey *rsa.PrivateKey // signs answers
	dir       string

	mu       sync.Mutex
	next     *AlipayUser
	codes    map[string]*alipayCode
	tokens   map[string]alipayGrant // access tokens issued
	tamper   bool
	withhold bool // alipay.user.info.share refuses (the app lacks the product)
	calls    int
}

type alipayCode struct {
	user  AlipayUser
	scope string
	used  bool
}

type alipayGrant struct {
	user  AlipayUser
	scope string
}

// NewAlipay starts a fake Alipay with an app whose RSA key it makes (PrivateKeyFile).
func NewAlipay(t testing.TB, appID string) *Alipay {
	t.Helper()
	appKey := rsaKey(t)
	f := &Alipay{AppID: appID, appKey: &appKey.PublicKey, alipayKey: rsaKey(t), dir: t.TempDir(),
		codes: map[string]*alipayCode{}, tokens: map[string]alipayGrant{}}
	der, _ := x509.MarshalPKCS8PrivateKey(appKey)
	write(t, filepath.Join(f.dir, "app-key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	pub, _ := x509.MarshalPKIXPublicKey(&f.alipayKey.PublicKey)
	// As the Alipay console shows it: bare base64.
	write(t, filepath.Join(f.dir, "alipay-public-key.txt"), []byte(base64.StdEncoding.EncodeToString(pub)))
	m := http.NewServeMux()
	m.HandleFunc("GET /oauth2/publicAppAuthorize.htm", f.authorize)
	m.HandleFunc("POST /gateway.do", f.gateway)
	f.Srv = httptest.NewTLSServer(m)
	t.Cleanup(f.Srv.Close)
	return f
}

func rsaKey(t testing.TB) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func write(t testing.TB, path string, b []byte) {
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// PrivateKeyFile is the app's private key (PKCS #8 PEM); AlipayPublicKeyFile is the fake's
// public key as base64.
func (f *Alipay) PrivateKeyFile() string      { return filepath.Join(f.dir, "app-key.pem") }
func (f *Alipay) AlipayPublicKeyFile() string { return filepath.Join(f.dir, "alipay-public-key.txt") }

// Config is a connector's configuration for this fake.
func (f *Alipay) Config(t testing.TB, id string) connector.Config {
	return connector.Config{ID: id, Type: connector.TypeAlipay, Name: "支付宝", AppID: f.AppID, Scope: "auth_user",
		AuthURL: f.Srv.URL + "/oauth2/publicAppAuthorize.htm", Gateway: f.Srv.URL + "/gateway.do",
		PrivateKeyFile: f.PrivateKeyFile(), AlipayPublicKeyFile: f.AlipayPublicKeyFile(), CAFile: caFile(t, f.Srv)}
}

// Approve makes u approve the next authorization; Refuse makes her refuse it.
func (f *Alipay) Approve(u AlipayUser) { f.mu.Lock(); f.next = &u; f.mu.Unlock() }
func (f *Alipay) Refuse()              { f.mu.Lock(); f.next = nil; f.mu.Unlock() }

// Tamper makes the gateway change its answers after signing them (as a man in the middle would).
func (f *Alipay) Tamper(on bool) { f.mu.Lock(); f.tamper = on; f.mu.Unlock() }

// Calls is how often the gateway was called.
// Withhold makes alipay.user.info.share refuse every profile (40006), as for an app without the
// 获取会员信息 product.
func (f *Alipay) Withhold(on bool) { f.mu.Lock(); f.withhold = on; f.mu.Unlock() }

func (f *Alipay) Calls() int { f.mu.Lock(); defer f.mu.Unlock(); return f.calls }

func (f *Alipay) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ru, err := url.Parse(q.Get("redirect_uri"))
	if q.Get("app_id") != f.AppID || err != nil || ru.Scheme == "" ||
		(q.Get("scope") != "auth_base" && q.Get("scope") != "auth_user") {
		http.Error(w, "参数错误 invalid app_id, scope or redirect_uri", http.StatusBadRequest)
		return
	}
	back := ru.Query()
	back.Set("app_id", f.AppID)
	back.Set("source", "alipay_wallet")
	back.Set("scope", q.Get("scope"))
	back.Set("state", q.Get("state"))
	f.mu.Lock()
	if f.next != nil {
		code := token()
		f.codes[code] = &alipayCode{user: *f.next, scope: q.Get("scope")}
		back.Set("auth_code", code)
	}
	f.mu.Unlock()
	ru.RawQuery = back.Encode()
	http.Redirect(w, r, ru.String(), http.StatusFound)
}

// signContent is the document's 待签名字符串: parameters but sign and empty ones, sorted by
// name, "k=v" joined by "&".
func signContent(form url.Values) string {
	var parts []string
	for k := range form {
		if v := form.Get(k); k != "sign" && v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, "&")
}

func (f *Alipay) gateway(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	p := r.Form
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if p.Get("app_id") != f.AppID {
		f.answerError(w, "40002", "Invalid Arguments", "isv.invalid-app-id", "无效的AppID参数")
		return
	}
	sig, err := base64.StdEncoding.DecodeString(p.Get("sign"))
	h := sha256.Sum256([]byte(signContent(p)))
	if p.Get("sign_type") != "RSA2" || err != nil || rsa.VerifyPKCS1v15(f.appKey, crypto.SHA256, h[:], sig) != nil {
		f.answerError(w, "40002", "Invalid Arguments", "isv.invalid-signature", "验签出错")
		return
	}
	if _, err := time.Parse("2006-01-02 15:04:05", p.Get("timestamp")); err != nil || p.Get("version") != "1.0" ||
		p.Get("charset") == "" {
		f.answerError(w, "40002", "Invalid Arguments", "isv.invalid-timestamp", "非法的时间戳或版本参数")
		return
	}
	switch p.Get("method") {
	case connector.AlipayTokenMethod:
		f.token(w, p)
	case connector.AlipayUserInfoMethod:
		f.userInfo(w, p)
	default:
		f.answerError(w, "40002", "Invalid Arguments", "isv.invalid-method", "不存在的方法名")
	}
}

// token answers alipay.system.oauth.token.
func (f *Alipay) token(w http.ResponseWriter, p url.Values) {
	c, ok := f.codes[p.Get("code")]
	if p.Get("grant_type") != "authorization_code" || !ok || c.used {
		f.answerError(w, "40002", "Invalid Arguments", "isv.code-invalid", "授权码code无效")
		return
	}
	c.used = true
	at := "authusrB" + token()
	f.tokens[at] = alipayGrant{user: c.user, scope: c.scope}
	m := map[string]any{"access_token": at, "expires_in": 1296000, "refresh_token": "authusrB" + token(),
		"re_expires_in": 2592000, "auth_start": time.Now().Format("2006-01-02 15:04:05")}
	if c.user.UserID != "" {
		m["user_id"] = c.user.UserID
	}
	if c.user.OpenID != "" {
		m["open_id"] = c.user.OpenID
	}
	b, _ := json.Marshal(m)
	f.answer(w, "alipay_system_oauth_token_response", string(b))
}

// userInfo answers alipay.user.info.share: the profile of the auth_token's user, or a refusal
// in the method's own member.
func (f *Alipay) userInfo(w http.ResponseWriter, p url.Values) {
	const member = "alipay_user_info_share_response"
	g, ok := f.tokens[p.Get("auth_token")]
	m := map[string]string{"code": "10000", "msg": "Success"}
	switch {
	case !ok:
		m = map[string]string{"code": "20001", "msg": "Insufficient Token Permissions", "sub_code": "aop.invalid-auth-token", "sub_msg": "无效的访问令牌"}
	case g.scope != "auth_user" || f.withhold:
		m = map[string]string{"code": "40006", "msg": "Insufficient Permissions", "sub_code": "isv.insufficient-user-permissions", "sub_msg": "用户未授权获取会员信息"}
	default:
		for k, v := range map[string]string{"user_id": g.user.UserID, "open_id": g.user.OpenID, "nick_name": g.user.NickName, "avatar": g.user.Avatar} {
			if v != "" {
				m[k] = v
			}
		}
	}
	b, _ := json.Marshal(m)
	f.answer(w, member, string(b))
}

func (f *Alipay) answerError(w http.ResponseWriter, code, msg, subCode, subMsg string) {
	b, _ := json.Marshal(map[string]string{"code": code, "msg": msg, "sub_code": subCode, "sub_msg": subMsg})
	f.answer(w, "error_response", string(b))
}

// answer signs the member's text and writes {member: text, "sign": ...}.
func (f *Alipay) answer(w http.ResponseWriter, member, text string) {
	h := sha256.Sum256([]byte(text))
	sig, err := rsa.SignPKCS1v15(nil, f.alipayKey, crypto.SHA256, h[:])
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if f.tamper {
		text = strings.Replace(text, `"user_id":"2088`, `"user_id":"2099`, 1)
		text = strings.Replace(text, `"nick_name":"`, `"nick_name":"假`, 1)
	}
	writeJSONText(w, fmt.Sprintf(`{%q:%s,"sign":%q}`, member, text, base64.StdEncoding.EncodeToString(sig)))
}
