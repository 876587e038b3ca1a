package connectortest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	"github.com/kioskfleet/kioskfleet/hub/identity/connector"
)

// WeChatUser is a WeChat user as an app sees her.
type WeChatUser struct {
	OpenID, UnionID, Nickname string
}

// WeChat is a fake of WeChat's web authorization (open.weixin.qq.com/connect/...) and its sns
// APIs (api.weixin.qq.com/sns/...), after 「网站应用微信登录开发指南」 and 「网页授权」:
//
//	GET /connect/qrconnect, /connect/oauth2/authorize   appid, redirect_uri, response_type=code,
//	    scope, state -> 302 redirect_uri?code=CODE&state=STATE (refused: ?state=STATE only)
//	GET /sns/oauth2/access_token   appid, secret, code, grant_type=authorization_code ->
//	    {access_token, expires_in, refresh_token, openid, scope, unionid}
//	GET /sns/userinfo   access_token, openid -> {openid, nickname, ..., unionid}
//
// Errors are HTTP 200 with {"errcode", "errmsg"}: 40013 invalid appid, 40125 invalid appsecret,
// 40029 invalid code, 40163 code been used, 40001 invalid access_token, 41001 access_token
// missing, 40003 invalid openid.
type WeChat struct {
	Srv    *httptest.Server
	AppID  string
	Secret string

	mu     sync.Mutex
	next   *WeChatUser // who approves at the next authorization; nil: she refuses
	codes  map[string]*wechatCode
	tokens map[string]WeChatUser
	calls  map[string]int
}

type wechatCode struct {
	user WeChatUser
	used bool
}

// NewWeChat starts a fake WeChat with one app registered.
func NewWeChat(t testing.TB, appID, secret string) *WeChat {
	f := &WeChat{AppID: appID, Secret: secret, codes: map[string]*wechatCode{}, tokens: map[string]WeChatUser{},
		calls: map[string]int{}}
	m := http.NewServeMux()
	m.HandleFunc("GET /connect/qrconnect", f.authorize)
	m.HandleFunc("GET /connect/oauth2/authorize", f.authorize)
	m.HandleFunc("GET /sns/oauth2/access_token", f.accessToken)
	m.HandleFunc("GET /sns/userinfo", f.userinfo)
	f.Srv = httptest.NewTLSServer(m)
	t.Cleanup(f.Srv.Close)
	return f
}

// Config is a connector's configuration for this fake (scope snsapi_login).
func (f *WeChat) Config(t testing.TB, id string) connector.Config {
	return connector.Config{ID: id, Type: connector.TypeWeChat, Name: "微信", AppID: f.AppID, AppSecret: f.Secret,
		Scope: "snsapi_login", AuthURL: f.Srv.URL + "/connect/qrconnect", APIURL: f.Srv.URL, CAFile: caFile(t, f.Srv)}
}

// Approve makes u approve the next authorization; Refuse makes her refuse it.
func (f *WeChat) Approve(u WeChatUser) { f.mu.Lock(); f.next = &u; f.mu.Unlock() }
func (f *WeChat) Refuse()              { f.mu.Lock(); f.next = nil; f.mu.Unlock() }

// Calls returns how often an API path was called.
func (f *WeChat) Calls(path string) int { f.mu.Lock(); defer f.mu.Unlock(); return f.calls[path] }

func (f *WeChat) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ru, err := url.Parse(q.Get("redirect_uri"))
	switch {
	case q.Get("appid") != f.AppID:
		http.Error(w, "appid 参数错误", http.StatusBadRequest)
		return
	case err != nil || ru.Scheme == "" || q.Get("response_type") != "code":
		http.Error(w, "redirect_uri 参数错误", http.StatusBadRequest)
		return
	case q.Get("scope") != "snsapi_login" && q.Get("scope") != "snsapi_userinfo" && q.Get("scope") != "snsapi_base":
		http.Error(w, "scope 参数错误", http.StatusBadRequest)
		return
	}
	back := url.Values{"state": {q.Get("state")}}
	f.mu.Lock()
	if f.next != nil {
		code := token()
		f.codes[code] = &wechatCode{user: *f.next}
		back.Set("code", code)
	}
	f.mu.Unlock()
	ru.RawQuery = back.Encode()
	http.Redirect(w, r, ru.String(), http.StatusFound)
}

func (f *WeChat) accessToken(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[r.URL.Path]++
	switch {
	case q.Get("appid") != f.AppID:
		wechatErr(w, 40013, "invalid appid")
		return
	case q.Get("secret") != f.Secret:
		wechatErr(w, 40125, "invalid appsecret")
		return
	case q.Get("grant_type") != "authorization_code":
		wechatErr(w, 40002, "invalid grant_type")
		return
	}
	c, ok := f.codes[q.Get("code")]
	if !ok {
		wechatErr(w, 40029, "invalid code")
		return
	}
	if c.used { // a code is good once
		wechatErr(w, 40163, "code been used")
		return
	}
	c.used = true
	at := token()
	f.tokens[at] = c.user
	out := map[string]any{"access_token": at, "expires_in": 7200, "refresh_token": token(), "openid": c.user.OpenID,
		"scope": "snsapi_login"}
	if c.user.UnionID != "" {
		out["unionid"] = c.user.UnionID
	}
	b, _ := json.Marshal(out)
	writeJSONText(w, string(b))
}

func (f *WeChat) userinfo(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[r.URL.Path]++
	if q.Get("access_token") == "" {
		wechatErr(w, 41001, "access_token missing")
		return
	}
	u, ok := f.tokens[q.Get("access_token")]
	if !ok {
		wechatErr(w, 40001, "invalid credential, access_token is invalid or not latest")
		return
	}
	if q.Get("openid") != u.OpenID {
		wechatErr(w, 40003, "invalid openid")
		return
	}
	out := map[string]any{"openid": u.OpenID, "nickname": u.Nickname, "sex": 0, "province": "", "city": "",
		"country": "CN", "headimgurl": "", "privilege": []string{}}
	if u.UnionID != "" {
		out["unionid"] = u.UnionID
	}
	b, _ := json.Marshal(out)
	writeJSONText(w, string(b))
}

func wechatErr(w http.ResponseWriter, code int, msg string) {
	writeJSONText(w, fmt.Sprintf(`{"errcode":%d,"errmsg":%q}`, code, msg))
}

func token() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
