package connector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// WeChat scopes: 网站应用 QR login, and 公众号网页授权 with or without the user's profile.
const (
	wechatScopeLogin    = "snsapi_login"
	wechatScopeUserinfo = "snsapi_userinfo"
	wechatScopeBase     = "snsapi_base"
)

// WeChat's addresses.
const (
	wechatQRConnect = "https://open.weixin.qq.com/connect/qrconnect"
	wechatAuthorize = "https://open.weixin.qq.com/connect/oauth2/authorize"
	wechatAPI       = "https://api.weixin.qq.com"
)

// WeChat is a connector shaped after WeChat's OAuth 2.0 logins (see the package doc for how
// they differ from OIDC).
type WeChat struct {
	cfg    Config
	client *http.Client
}

var _ Connector = (*WeChat)(nil)

func newWeChat(c Config, hc *http.Client) *WeChat {
	if c.AuthURL == "" {
		c.AuthURL = wechatAuthorize
		if c.Scope == wechatScopeLogin {
			c.AuthURL = wechatQRConnect
		}
	}
	if c.APIURL == "" {
		c.APIURL = wechatAPI
	}
	c.APIURL = strings.TrimSuffix(c.APIURL, "/")
	return &WeChat{cfg: c, client: hc}
}

type wechatPending struct {
	State string `json:"state"`
}

// Begin sends the browser to the QR page (snsapi_login) or the in-WeChat authorization page.
// The parameters must be in this order, and the URL must end in #wechat_redirect, or WeChat
// refuses it (its 网页授权 document says so).
func (w *WeChat) Begin(_ context.Context, redirectURI, state string) (string, []byte, error) {
	doc, err := json.Marshal(wechatPending{State: state})
	if err != nil {
		return "", nil, err
	}
	u := w.cfg.AuthURL + "?appid=" + url.QueryEscape(w.cfg.AppID) + "&redirect_uri=" + url.QueryEscape(redirectURI) +
		"&response_type=code&scope=" + w.cfg.Scope + "&state=" + url.QueryEscape(state) + "#wechat_redirect"
	return u, doc, nil
}

// wechatError is the errcode/errmsg every WeChat API answers with on failure (with HTTP 200).
type wechatError struct {
	ErrCode int    `json:"errcode"`
	ErrMsg  string `json:"errmsg"`
}

func (e wechatError) err() error {
	if e.ErrCode == 0 {
		return nil
	}
	return &Error{Code: strconv.Itoa(e.ErrCode), Description: e.ErrMsg}
}

// wechatToken is /sns/oauth2/access_token's answer.
type wechatToken struct {
	wechatError
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
	OpenID      string `json:"openid"`
	UnionID     string `json:"unionid"`
	Scope       string `json:"scope"`
}

// wechatUser is /sns/userinfo's answer (the fields used).
type wechatUser struct {
	wechatError
	OpenID   string `json:"openid"`
	UnionID  string `json:"unionid"`
	Nickname string `json:"nickname"`
}

func (w *WeChat) Finish(ctx context.Context, pending []byte, q url.Values) (Identity, error) {
	var pend wechatPending
	if err := json.Unmarshal(pending, &pend); err != nil {
		return Identity{}, fmt.Errorf("connector: pending login: %w", err)
	}
	if err := checkState(pend.State, q.Get("state")); err != nil {
		return Identity{}, err
	}
	code := q.Get("code")
	if code == "" { // 用户禁止授权: only state comes back
		return Identity{}, ErrRefused
	}
	var tok wechatToken
	if err := w.get(ctx, "/sns/oauth2/access_token", url.Values{"appid": {w.cfg.AppID}, "secret": {w.cfg.AppSecret},
		"code": {code}, "grant_type": {"authorization_code"}}, &tok); err != nil {
		return Identity{}, err
	}
	if tok.OpenID == "" || tok.AccessToken == "" {
		return Identity{}, fmt.Errorf("%w: access_token answer without openid or access_token", ErrUpstream)
	}
	id := Identity{Subject: "openid:" + tok.OpenID}
	if tok.UnionID != "" {
		id.Subject = "unionid:" + tok.UnionID
	}
	if w.cfg.Scope == wechatScopeBase {
		return id, nil
	}
	var u wechatUser
	if err := w.get(ctx, "/sns/userinfo", url.Values{"access_token": {tok.AccessToken}, "openid": {tok.OpenID},
		"lang": {"zh_CN"}}, &u); err != nil {
		return Identity{}, err
	}
	if u.OpenID != tok.OpenID {
		return Identity{}, fmt.Errorf("%w: userinfo is of another openid", ErrUpstream)
	}
	if tok.UnionID == "" && u.UnionID != "" {
		id.Subject = "unionid:" + u.UnionID
	}
	id.Name = u.Nickname
	return id, nil
}

// get calls a WeChat API and decodes its answer into out, which embeds wechatError.
func (w *WeChat) get(ctx context.Context, path string, q url.Values, out interface{ err() error }) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.cfg.APIURL+path+"?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := w.client.Do(req)
	if err != nil {
		var ue *url.Error // its message holds the URL, and so the app secret: never said
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("%w: %s: %w", ErrUpstream, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrUpstream, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: %s: HTTP %d", ErrUpstream, path, resp.StatusCode)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrUpstream, path, err)
	}
	return out.err()
}
