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
