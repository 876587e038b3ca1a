// Package connector logs citizens in at upstream identity providers for the hub's OpenID
// Provider (hub/identity): another OpenID Provider (a province's unified identity platform, a
// second fleet-hub), 微信 (WeChat) and 支付宝 (Alipay). A connector knows one upstream's protocol;
// what an upstream identity means locally (which account it logs into, how it is linked) is
// hub/identity's business, never the connector's.
//
// The interface is small (Connector: Begin and Finish, the two legs of a browser redirect);
// further capabilities are separate interfaces found by type assertion (Preparer), as in dex's
// connector package. The caller keeps what Begin returns (pending) one-time and bound to the
// browser, and makes the state: a connector checks the state it is given back on the callback
// (RFC 6749 §10.12) against the one it sent, so that a callback of another login fails.
//
// # How the upstreams differ from OpenID Connect
//
// OIDC (oidc.go; OpenID Connect Core 1.0): authorization code flow with PKCE (RFC 7636, S256),
// state and nonce; the token endpoint authenticates the client (client_secret_basic) and returns
// an ID token, a JWT signed by the upstream, whose signature (the upstream's JWKS, found by
// discovery), issuer, audience, expiry and nonce are checked (OIDC Core §3.1.3.7). The identity is
// the ID token's sub, unique within the issuer.
//
// WeChat (wechat.go), after 微信开放平台「网站应用微信登录」(scope snsapi_login, the QR page
// https://open.weixin.qq.com/connect/qrconnect) and 公众号「网页授权」(scope snsapi_base or
// snsapi_userinfo, https://open.weixin.qq.com/connect/oauth2/authorize), as documented at
// https://developers.weixin.qq.com/doc/oplatform/Website_App/WeChat_Login/Wechat_Login.html and
// https://developers.weixin.qq.com/doc/offiaccount/OA_Web_Apps/Wechat_webpage_authorization.html:
//   - the client is named by appid (not client_id); the authorization URL ends in #wechat_redirect;
//     there is no PKCE and no nonce: state is the only binding of the callback to the browser;
//   - a user who refuses comes back with state and no code (not with error=access_denied);
//   - the code is exchanged by a GET to /sns/oauth2/access_token with appid and the app's secret
//     in the query string (not a POST with client authentication);
//   - there is no ID token: the token response itself names the user, by openid (one per app)
//     and unionid (one per 开放平台 account, across its apps; present when the app is bound to one),
//     over TLS from api.weixin.qq.com, unsigned: the TLS connection is the only proof;
//   - errors come as HTTP 200 with {"errcode": N, "errmsg": "..."} (40029: invalid code, 40163:
//     code been used), not as RFC 6749 §5.2 error responses;
//   - the nickname comes from /sns/userinfo (snsapi_userinfo and snsapi_login only).
//
// The WeChat connector's identity is the unionid when there is one (so that the web QR login
// and the 公众号/mini-program logins of one citizen are one identity), else the openid.
//
// Alipay (alipay.go), after 支付宝「网页/移动应用 用户信息授权」: the browser goes to
// https://openauth.alipay.com/oauth2/publicAppAuthorize.htm with app_id, scope (auth_base or
// auth_user), redirect_uri and state, and the code is exchanged with the OpenAPI method
// alipay.system.oauth.token (https://opendocs.alipay.com/open/02ailc):
//   - the callback's code parameter is auth_code (and app_id, scope, source come with it);
//   - the exchange is not a token endpoint but the one OpenAPI gateway
//     (https://openapi.alipay.com/gateway.do) with method=alipay.system.oauth.token and the
//     common parameters app_id, charset, sign_type, timestamp ("yyyy-MM-dd HH:mm:ss", Beijing
//     time), version 1.0;
//   - the client authenticates by signing the request, not with a secret: every parameter but
//     sign and those empty, sorted by name, joined as k=v with &, signed with the app's RSA key,
//     SHA256withRSA (sign_type RSA2), base64;
//   - the answer is signed too: the JSON text of the alipay_system_oauth_token_response (or
//     error_response) member, byte for byte, is verified against Alipay's public key with the
//     response's sign, and an answer that does not verify is refused;
//   - there is no ID token: the token response names the user by user_id (2088..., per Alipay
//     user) or, for apps created since 2024, open_id (per app);
//   - errors come as HTTP 200 with error_response {code, msg, sub_code, sub_msg} (e.g. 40002
//     isv.code-invalid), signed like a success;
//   - the nickname and avatar come from another OpenAPI method, alipay.user.info.share
//     (https://opendocs.alipay.com/open/02aild; scope auth_user only), called at the same
//     gateway with the same common parameters and signature, plus auth_token (the access_token
//     of alipay.system.oauth.token) and no business parameter; its signed answer's member is
//     alipay_user_info_share_response {code "10000", msg, user_id|open_id, nick_name, avatar,
//     ...}, and a refusal comes in that same member with another code and sub_code (e.g. 20001
//     aop.invalid-auth-token, 40006 isv.insufficient-isv-permissions), not in error_response.
//     The connector takes nick_name as the link's name and avatar as Identity.Picture; a refusal
//     leaves them empty (the login does not need them), an answer that does not verify or names
//     another user than the token fails the login.
//
// The fakes in connectortest are written from the same documents; they speak the bytes above,
// check the parameters and signatures the documents ask for, and answer as the documents show.
package connector

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/url"
)

var (
	// ErrConfig marks an invalid connector configuration.
	ErrConfig = errors.New("connector: invalid configuration")
	// ErrState marks a callback whose state is not the login's: another login's callback, or a
	// forged one.
	ErrState = errors.New("connector: callback state does not match the login")
	// ErrRefused marks a callback without a code: the citizen did not consent at the upstream.
	ErrRefused = errors.New("connector: the upstream login was refused or cancelled")
	// ErrUpstream marks an answer of the upstream that is malformed or fails a check (signature,
	// issuer, audience, nonce).
	ErrUpstream = errors.New("connector: upstream answer invalid")
)

// Connector logs a citizen in at one upstream identity provider.
type Connector interface {
	// Begin starts a login: the URL the browser is sent to, with redirectURI to come back to
	// and state to bring along, and what Finish needs of this login (the state, a PKCE verifier,
	// a nonce), which the caller keeps, one-time and bound to the browser.
	Begin(ctx context.Context, redirectURI, state string) (authURL string, pending []byte, err error)
	// Finish checks the upstream's redirect back (its query) against pending and returns the
	// identity it names. Errors: ErrState, ErrRefused, ErrUpstream, *Error (the upstream's own).
	Finish(ctx context.Context, pending []byte, callback url.Values) (Identity, error)
}

// Preparer is a connector that fetches what it needs of the upstream before its first login
// (OIDC discovery and keys). The provider calls it at start to report a misconfigured upstream
// early; a connector must still work (fetching then) when Prepare failed.
type Preparer interface {
	Prepare(ctx context.Context) error
}

// Identity is a citizen as an upstream names her.
type Identity struct {
	// Subject is stable and unique within the connector (OIDC sub, WeChat unionid or openid,
	// Alipay user_id or open_id); the provider keys links on (connector, Subject).
	Subject string
	// Name is what the citizen is called upstream (a nickname), for her to recognise the link.
	Name string
	// Picture is the URL of her avatar upstream (Alipay's avatar), informational: the provider
	// does not keep it.
	Picture string
	// Email is informational. It is never used to find or link an account: an address (or a
	// phone number) an upstream asserts proves nothing about an account here.
	Email string
}

// Error is an upstream's own error answer: an OAuth 2.0 error code (RFC 6749 §4.1.2.1, §5.2),
// a WeChat errcode or an Alipay sub_code, with its description.
type Error struct {
	Code        string
	Description string
}

func (e *Error) Error() string {
	if e.Description == "" {
		return "connector: upstream error " + e.Code
	}
	return fmt.Sprintf("connector: upstream error %s: %s", e.Code, e.Description)
}

// checkState compares the callback's state with the login's in constant time.
func checkState(want, got string) error {
	if want == "" || subtle.ConstantTimeCompare([]byte(want), []byte(got)) != 1 {
		return ErrState
	}
	return nil
}
