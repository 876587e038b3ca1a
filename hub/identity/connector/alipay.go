package connector

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"
)

// Alipay scopes: the user's ID only, or her profile too.
const (
	alipayScopeBase = "auth_base"
	alipayScopeUser = "auth_user"
)

// Alipay's addresses.
const (
	alipayAuthorize = "https://openauth.alipay.com/oauth2/publicAppAuthorize.htm"
	alipayGateway   = "https://openapi.alipay.com/gateway.do"
)

// AlipayTokenMethod is the OpenAPI method that exchanges an auth_code.
const AlipayTokenMethod = "alipay.system.oauth.token"

// AlipayUserInfoMethod is the OpenAPI method that reads the user's profile (scope auth_user),
// with alipay.system.oauth.token's access_token as the common parameter auth_token.
const AlipayUserInfoMethod = "alipay.user.info.share"

// alipayOK is the code of a method's successful answer (alipay.user.info.share's).
const alipayOK = "10000"

// beijing is the time zone of Alipay's timestamp parameter.
var beijing = time.FixedZone("CST", 8*3600)

// AlipayTimeFormat is the layout of Alipay's timestamp parameter.
const AlipayTimeFormat = "2006-01-02 15:04:05"

// Alipay is a connector shaped after Alipay's user authorization and alipay.system.oauth.token
// (see the package doc for how they differ from OIDC).
type Alipay struct {
	cfg       Config
	client    *http.Client
	key       *rsa.PrivateKey // the app's, signs requests
	alipayKey *rsa.PublicKey  // Alipay's, verifies answers
	now       func() time.Time
}

var _ Connector = (*Alipay)(nil)

func newAlipay(c Config, hc *http.Client) (*Alipay, error) {
	if c.AuthURL == "" {
		c.AuthURL = alipayAuthorize
	}
	if c.Gateway == "" {
		c.Gateway = alipayGateway
	}
	key, err := readPrivateKey(c.PrivateKeyFile)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: private_key_file: %w", ErrConfig, c.ID, err)
	}
	pub, err := readPublicKey(c.AlipayPublicKeyFile)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: alipay_public_key_file: %w", ErrConfig, c.ID, err)
	}
	return &Alipay{cfg: c, client: hc, key: key, alipayKey: pub, now: time.Now}, nil
}

type alipayPending struct {
	State string `json:"state"`
}

func (a *Alipay) Begin(_ context.Context, redirectURI, state string) (string, []byte, error) {
	doc, err := json.Marshal(alipayPending{State: state})
	if err != nil {
		return "", nil, err
	}
	q := url.Values{"app_id": {a.cfg.AppID}, "scope": {a.cfg.Scope}, "redirect_uri": {redirectURI}, "state": {state}}
	return a.cfg.AuthURL + "?" + q.Encode(), doc, nil
}

// alipayToken is the alipay_system_oauth_token_response member (the fields used).
type alipayToken struct {
	UserID      string `json:"user_id"`
	OpenID      string `json:"open_id"`
	AccessToken string `json:"access_token"`
}

// alipayUserInfo is the alipay_user_info_share_response member (the fields used): code 10000
// with the profile, or another code with sub_code and sub_msg.
type alipayUserInfo struct {
	alipayError
	UserID   string `json:"user_id"`
	OpenID   string `json:"open_id"`
	NickName string `json:"nick_name"`
	Avatar   string `json:"avatar"`
}

// alipayError is the error_response member.
type alipayError struct {
	Code    string `json:"code"`
	Msg     string `json:"msg"`
	SubCode string `json:"sub_code"`
	SubMsg  string `json:"sub_msg"`
}

func (a *Alipay) Finish(ctx context.Context, pending []byte, q url.Values) (Identity, error) {
	var pend alipayPending
	if err := json.Unmarshal(pending, &pend); err != nil {
		return Identity{}, fmt.Errorf("connector: pending login: %w", err)
	}
	if err := checkState(pend.State, q.Get("state")); err != nil {
		return Identity{}, err
	}
	if id := q.Get("app_id"); id != "" && id != a.cfg.AppID {
		return Identity{}, fmt.Errorf("%w: callback for app_id %q", ErrUpstream, id)
	}
	code := q.Get("auth_code")
	if code == "" {
		return Identity{}, ErrRefused
	}
	body, err := a.call(ctx, AlipayTokenMethod, url.Values{"grant_type": {"authorization_code"}, "code": {code}})
	if err != nil {
		return Identity{}, err
	}
	var tok alipayToken
	if err := a.answer(AlipayTokenMethod, body, &tok); err != nil {
		return Identity{}, err
	}
	var id Identity
	switch {
	case tok.UserID != "":
		id.Subject = "user_id:" + tok.UserID
	case tok.OpenID != "":
		id.Subject = "open_id:" + tok.OpenID
	default:
		return Identity{}, fmt.Errorf("%w: %s answer without user_id or open_id", ErrUpstream, AlipayTokenMethod)
	}
	if a.cfg.Scope == alipayScopeUser && tok.AccessToken != "" {
		if id.Name, id.Picture, err = a.profile(ctx, tok); err != nil {
			return Identity{}, err
		}
	}
	return id, nil
}

// profile reads the user's nickname and avatar with alipay.user.info.share. An answer that is
// not Alipay's (signature), or names another user, is an error; Alipay's refusal (the app lacks
// the 获取会员信息 product, the user withheld it) leaves them empty: the login does not need them.
func (a *Alipay) profile(ctx context.Context, tok alipayToken) (name, avatar string, err error) {
	body, err := a.call(ctx, AlipayUserInfoMethod, url.Values{"auth_token": {tok.AccessToken}})
	if err != nil {
		return "", "", err
	}
	var info alipayUserInfo
	err = a.answer(AlipayUserInfoMethod, body, &info)
	var refused *Error
	switch {
	case errors.As(err, &refused):
		return "", "", nil
	case err != nil:
		return "", "", err
	case info.Code != alipayOK:
		return "", "", nil
	case info.UserID != "" && info.UserID != tok.UserID, info.OpenID != "" && info.OpenID != tok.OpenID:
		return "", "", fmt.Errorf("%w: %s names another user than the token", ErrUpstream, AlipayUserInfoMethod)
	}
	return info.NickName, info.Avatar, nil
}

// call calls an OpenAPI method at the gateway with the common parameters and params, signed
// (RSA2), and returns the answer's body.
func (a *Alipay) call(ctx context.Context, method string, params url.Values) ([]byte, error) {
	for k, v := range map[string]string{"app_id": a.cfg.AppID, "method": method, "format": "JSON", "charset": "utf-8",
		"sign_type": "RSA2", "timestamp": a.now().In(beijing).Format(AlipayTimeFormat), "version": "1.0"} {
		params.Set(k, v)
	}
	sig, err := SignAlipay(a.key, params)
	if err != nil {
		return nil, err
	}
	params.Set("sign", sig)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.cfg.Gateway, strings.NewReader(params.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded;charset=utf-8")
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrUpstream, method, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: %s: HTTP %d: %v", ErrUpstream, method, resp.StatusCode, err)
	}
	return body, nil
}

// answer verifies the gateway's answer to method and decodes its response member (method with
// dots as underscores, then _response) into out, or returns its error_response as *Error.
func (a *Alipay) answer(method string, body []byte, out any) error {
	var env map[string]json.RawMessage // raw: the signature is over the member's exact text
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrUpstream, method, err)
	}
	var sign string
	if s, ok := env["sign"]; ok {
		if err := json.Unmarshal(s, &sign); err != nil {
			return fmt.Errorf("%w: sign: %w", ErrUpstream, err)
		}
	}
	if raw, ok := env["error_response"]; ok {
		var e alipayError
		if err := json.Unmarshal(raw, &e); err != nil {
			return fmt.Errorf("%w: error_response: %w", ErrUpstream, err)
		}
		if sign != "" {
			if err := VerifyAlipay(a.alipayKey, raw, sign); err != nil {
				return err
			}
		}
		code := e.SubCode
		if code == "" {
			code = e.Code
		}
		return &Error{Code: code, Description: strings.TrimSpace(e.Msg + " " + e.SubMsg)}
	}
	raw, ok := env[strings.ReplaceAll(method, ".", "_")+"_response"]
	if !ok {
		return fmt.Errorf("%w: %s: no response member", ErrUpstream, method)
	}
	if err := VerifyAlipay(a.alipayKey, raw, sign); err != nil {
		return err
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrUpstream, method, err)
	}
	return nil
}

// AlipaySignContent is the content an Alipay request's signature covers: every parameter but
// sign and those empty, sorted by name, as name=value (not URL-encoded) joined by &.
func AlipaySignContent(params url.Values) string {
	keys := make([]string, 0, len(params))
	for k, v := range params {
		if k != "sign" && len(v) > 0 && v[0] != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(k + "=" + params.Get(k))
	}
	return b.String()
}

// SignAlipay signs request parameters as RSA2 (SHA256withRSA, PKCS #1 v1.5), base64.
func SignAlipay(key *rsa.PrivateKey, params url.Values) (string, error) {
	return SignAlipayBytes(key, []byte(AlipaySignContent(params)))
}

// SignAlipayBytes signs content as RSA2, base64.
func SignAlipayBytes(key *rsa.PrivateKey, content []byte) (string, error) {
	h := sha256.Sum256(content)
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, h[:])
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// errAlipaySign marks an answer whose signature is missing or wrong.
var errAlipaySign = fmt.Errorf("%w: Alipay signature does not verify", ErrUpstream)

// VerifyAlipay checks an RSA2 signature (base64) over content.
func VerifyAlipay(pub *rsa.PublicKey, content []byte, sign string) error {
	sig, err := base64.StdEncoding.DecodeString(sign)
	if err != nil || sign == "" {
		return errAlipaySign
	}
	h := sha256.Sum256(content)
	if rsa.VerifyPKCS1v15(pub, crypto.SHA256, h[:], sig) != nil {
		return errAlipaySign
	}
	return nil
}

// readPrivateKey reads an RSA private key of at least 2048 bits (RSA2), PEM, PKCS #1 or #8.
func readPrivateKey(path string) (*rsa.PrivateKey, error) {
	if path == "" {
		return nil, errors.New("missing")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	var key any
	if key, err = x509.ParsePKCS8PrivateKey(blk.Bytes); err != nil {
		if key, err = x509.ParsePKCS1PrivateKey(blk.Bytes); err != nil {
			return nil, fmt.Errorf("%s: not an RSA private key (PKCS #1 or #8)", path)
		}
	}
	k, ok := key.(*rsa.PrivateKey)
	if !ok || k.N.BitLen() < 2048 {
		return nil, fmt.Errorf("%s: want an RSA key of 2048 bits or more (RSA2)", path)
	}
	return k, nil
}

// readPublicKey reads Alipay's RSA public key: PEM (PUBLIC KEY), or the bare base64 of its DER
// as the Alipay console shows it.
func readPublicKey(path string) (*rsa.PublicKey, error) {
	if path == "" {
		return nil, errors.New("missing")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	der := b
	if blk, _ := pem.Decode(b); blk != nil {
		der = blk.Bytes
	} else if der, err = base64.StdEncoding.DecodeString(string(bytes.TrimSpace(b))); err != nil {
		return nil, fmt.Errorf("%s: neither PEM nor base64", path)
	}
	key, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	k, ok := key.(*rsa.PublicKey)
	if !ok || k.N.BitLen() < 2048 {
		return nil, fmt.Errorf("%s: want an RSA key of 2048 bits or more (RSA2)", path)
	}
	return k, nil
}
