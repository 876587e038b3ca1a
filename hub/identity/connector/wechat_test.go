package connector_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/kioskfleet/kioskfleet/hub/identity/connector"
	"github.com/kioskfleet/kioskfleet/hub/identity/connector/connectortest"
)

const redirect = "https://hub.example.org/oidc/upstream/x/callback"

func openConnector(t *testing.T, c connector.Config) connector.Connector {
	t.Helper()
	conn, err := connector.Open(c)
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

func upstreamErr(t *testing.T, err error, code string) {
	t.Helper()
	var ue *connector.Error
	if !errors.As(err, &ue) || ue.Code != code {
		t.Fatalf("err %v, want upstream error %s", err, code)
	}
}

func TestWeChatLogin(t *testing.T) {
	ctx := context.Background()
	f := connectortest.NewWeChat(t, "wx0123456789abcdef", "app-secret")
	conn := openConnector(t, f.Config(t, "wechat"))

	f.Approve(connectortest.WeChatUser{OpenID: "o-1", UnionID: "u-1", Nickname: "小明"})
	authURL, pending, err := conn.Begin(ctx, redirect, "state-1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(authURL, "#wechat_redirect") || !strings.Contains(authURL, "scope=snsapi_login") {
		t.Errorf("authorization URL %s", authURL)
	}
	back := connectortest.Authorize(t, f.Srv, authURL)
	id, err := conn.Finish(ctx, pending, back)
	if err != nil {
		t.Fatal(err)
	}
	if id.Subject != "unionid:u-1" || id.Name != "小明" {
		t.Errorf("identity %+v, want the unionid and nickname", id)
	}
	// The code is good once (errcode 40163).
	_, err = conn.Finish(ctx, pending, back)
	upstreamErr(t, err, "40163")

	// Without a unionid (an app bound to no 开放平台 account) the openid names her.
	f.Approve(connectortest.WeChatUser{OpenID: "o-2", Nickname: "小红"})
	authURL, pending, _ = conn.Begin(ctx, redirect, "state-2")
	if id, err := conn.Finish(ctx, pending, connectortest.Authorize(t, f.Srv, authURL)); err != nil || id.Subject != "openid:o-2" {
		t.Errorf("identity %+v %v, want openid:o-2", id, err)
	}
}

func TestWeChatStateAndErrors(t *testing.T) {
	ctx := context.Background()
	f := connectortest.NewWeChat(t, "wx0123456789abcdef", "app-secret")
	conn := openConnector(t, f.Config(t, "wechat"))
	f.Approve(connectortest.WeChatUser{OpenID: "o-1", Nickname: "小明"})

	// Another login's callback: refused before the code is spent.
	authURL, pending, _ := conn.Begin(ctx, redirect, "state-a")
	back := connectortest.Authorize(t, f.Srv, authURL)
	forged := url.Values{"code": {back.Get("code")}, "state": {"state-b"}}
	if _, err := conn.Finish(ctx, pending, forged); !errors.Is(err, connector.ErrState) {
		t.Errorf("wrong state: %v, want ErrState", err)
	}
	if _, err := conn.Finish(ctx, pending, url.Values{"code": {back.Get("code")}}); !errors.Is(err, connector.ErrState) {
		t.Errorf("no state: %v, want ErrState", err)
	}
	if n := f.Calls("/sns/oauth2/access_token"); n != 0 {
		t.Errorf("the token API was called %d times for callbacks of the wrong state", n)
	}
	if _, err := conn.Finish(ctx, pending, back); err != nil {
		t.Errorf("the right callback after the forged ones: %v", err)
	}

	// She refuses: WeChat brings back the state only.
	f.Refuse()
	authURL, pending, _ = conn.Begin(ctx, redirect, "state-c")
	if _, err := conn.Finish(ctx, pending, connectortest.Authorize(t, f.Srv, authURL)); !errors.Is(err, connector.ErrRefused) {
		t.Errorf("refused: %v, want ErrRefused", err)
	}
	// An unknown code (40029) and a wrong app secret (40125).
	_, err := conn.Finish(ctx, pending, url.Values{"code": {"nope"}, "state": {"state-c"}})
	upstreamErr(t, err, "40029")
	c := f.Config(t, "wechat")
	c.AppSecret = "wrong"
	f.Approve(connectortest.WeChatUser{OpenID: "o-1"})
	bad := openConnector(t, c)
	authURL, pending, _ = bad.Begin(ctx, redirect, "state-d")
	_, err = bad.Finish(ctx, pending, connectortest.Authorize(t, f.Srv, authURL))
	upstreamErr(t, err, "40125")
	if strings.Contains(err.Error(), "wrong") {
		t.Errorf("the error shows the app secret: %v", err)
	}
}
