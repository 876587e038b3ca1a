package connector_test

import (
	"context"
	"errors"
	"net/url"
	"testing"

	"github.com/kioskfleet/kioskfleet/hub/identity/connector"
	"github.com/kioskfleet/kioskfleet/hub/identity/connector/connectortest"
)

func TestAlipayLogin(t *testing.T) {
	ctx := context.Background()
	f := connectortest.NewAlipay(t, "2021000000000001")
	conn := openConnector(t, f.Config(t, "alipay"))

	f.Approve(connectortest.AlipayUser{UserID: "2088000000000001"})
	authURL, pending, err := conn.Begin(ctx, redirect, "state-1")
	if err != nil {
		t.Fatal(err)
	}
	back := connectortest.Authorize(t, f.Srv, authURL)
	id, err := conn.Finish(ctx, pending, back)
	if err != nil {
		t.Fatal(err)
	}
	if id.Subject != "user_id:2088000000000001" {
		t.Errorf("identity %+v", id)
	}
	// The auth_code is good once: the signed error_response's sub_code.
	_, err = conn.Finish(ctx, pending, back)
	upstreamErr(t, err, "isv.code-invalid")

	// Newer apps get an open_id instead.
	f.Approve(connectortest.AlipayUser{OpenID: "074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5"})
	authURL, pending, _ = conn.Begin(ctx, redirect, "state-2")
	if id, err := conn.Finish(ctx, pending, connectortest.Authorize(t, f.Srv, authURL)); err != nil || id.Subject[:8] != "open_id:" {
		t.Errorf("identity %+v %v, want an open_id", id, err)
	}
}

func TestAlipayStateSignaturesErrors(t *testing.T) {
	ctx := context.Background()
	f := connectortest.NewAlipay(t, "2021000000000001")
	conn := openConnector(t, f.Config(t, "alipay"))
	f.Approve(connectortest.AlipayUser{UserID: "2088000000000001"})

	authURL, pending, _ := conn.Begin(ctx, redirect, "state-a")
	back := connectortest.Authorize(t, f.Srv, authURL)
	forged := url.Values{"auth_code": {back.Get("auth_code")}, "state": {"state-b"}}
	if _, err := conn.Finish(ctx, pending, forged); !errors.Is(err, connector.ErrState) {
		t.Errorf("wrong state: %v, want ErrState", err)
	}
	if f.Calls() != 0 {
		t.Errorf("gateway called %d times for a callback of the wrong state", f.Calls())
	}

	// An answer changed after Alipay signed it is refused.
	f.Tamper(true)
	if _, err := conn.Finish(ctx, pending, back); !errors.Is(err, connector.ErrUpstream) {
		t.Errorf("tampered answer: %v, want ErrUpstream (signature)", err)
	}
	f.Tamper(false)

	// An answer signed by another key than Alipay's is refused.
	other := connectortest.NewAlipay(t, "2021000000000001")
	c := f.Config(t, "alipay")
	c.AlipayPublicKeyFile = other.AlipayPublicKeyFile()
	f.Approve(connectortest.AlipayUser{UserID: "2088000000000002"})
	wrongKey := openConnector(t, c)
	authURL, pending, _ = wrongKey.Begin(ctx, redirect, "state-c")
	if _, err := wrongKey.Finish(ctx, pending, connectortest.Authorize(t, f.Srv, authURL)); !errors.Is(err, connector.ErrUpstream) {
		t.Errorf("answer under another key: %v, want ErrUpstream", err)
	}

	// A request signed by a key that is not the app's: Alipay refuses it (isv.invalid-signature).
	c = f.Config(t, "alipay")
	c.PrivateKeyFile = other.PrivateKeyFile()
	badSigner := openConnector(t, c)
	authURL, pending, _ = badSigner.Begin(ctx, redirect, "state-d")
	_, err := badSigner.Finish(ctx, pending, connectortest.Authorize(t, f.Srv, authURL))
	upstreamErr(t, err, "isv.invalid-signature")

	// She refuses: no auth_code comes back.
	f.Refuse()
	authURL, pending, _ = conn.Begin(ctx, redirect, "state-e")
	if _, err := conn.Finish(ctx, pending, connectortest.Authorize(t, f.Srv, authURL)); !errors.Is(err, connector.ErrRefused) {
		t.Errorf("refused: %v, want ErrRefused", err)
	}
}

func TestAlipaySignContent(t *testing.T) {
	// The example of Alipay's signing document: sign dropped, empty values dropped, sorted.
	got := connector.AlipaySignContent(url.Values{"method": {"alipay.system.oauth.token"}, "app_id": {"2014072300007148"},
		"charset": {"utf-8"}, "sign": {"x"}, "app_auth_token": {""}, "sign_type": {"RSA2"}})
	want := "app_id=2014072300007148&charset=utf-8&method=alipay.system.oauth.token&sign_type=RSA2"
	if got != want {
		t.Errorf("sign content %q, want %q", got, want)
	}
}

// With scope auth_user the connector reads her nickname and avatar with alipay.user.info.share
// (signed, its member alipay_user_info_share_response); with auth_base it does not call it.
func TestAlipayProfile(t *testing.T) {
	ctx := context.Background()
	f := connectortest.NewAlipay(t, "2021000000000001")
	conn := openConnector(t, f.Config(t, "alipay"))
	const avatar = "https://tfs.alipayobjects.com/images/partner/T1uIxXXbpXXXXXXXX"
	login := func(c connector.Connector, state string) (connector.Identity, error) {
		t.Helper()
		authURL, pending, err := c.Begin(ctx, redirect, state)
		if err != nil {
			t.Fatal(err)
		}
		return c.Finish(ctx, pending, connectortest.Authorize(t, f.Srv, authURL))
	}

	f.Approve(connectortest.AlipayUser{UserID: "2088000000000001", NickName: "支付宝小二", Avatar: avatar})
	id, err := login(conn, "state-1")
	if err != nil || id.Subject != "user_id:2088000000000001" || id.Name != "支付宝小二" || id.Picture != avatar {
		t.Fatalf("identity %+v %v", id, err)
	}
	if f.Calls() != 2 {
		t.Errorf("%d gateway calls, want the token and the profile", f.Calls())
	}
	f.Approve(connectortest.AlipayUser{OpenID: "074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5", NickName: "小二"})
	if id, err := login(conn, "state-2"); err != nil || id.Name != "小二" || id.Subject[:8] != "open_id:" {
		t.Errorf("an open_id user's identity %+v %v", id, err)
	}

	// A profile changed after Alipay signed it fails the login.
	f.Tamper(true)
	if _, err := login(conn, "state-3"); !errors.Is(err, connector.ErrUpstream) {
		t.Errorf("tampered profile: %v, want ErrUpstream", err)
	}
	f.Tamper(false)

	// Alipay refuses the profile (the app lacks the product): logged in, without a name.
	f.Withhold(true)
	if id, err := login(conn, "state-4"); err != nil || id.Name != "" || id.Subject == "" {
		t.Errorf("withheld profile: %+v %v, want the identity without a name", id, err)
	}
	f.Withhold(false)

	// auth_base: the user's ID only, no profile call.
	c := f.Config(t, "alipay")
	c.Scope = "auth_base"
	base := openConnector(t, c)
	before := f.Calls()
	if id, err := login(base, "state-5"); err != nil || id.Name != "" || f.Calls() != before+1 {
		t.Errorf("auth_base: %+v %v, %d gateway calls", id, err, f.Calls()-before)
	}
}
