package connector_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kioskfleet/kioskfleet/hub/identity/connector"
	"github.com/kioskfleet/kioskfleet/hub/identity/connector/connectortest"
)

func TestParseReportsEveryProblem(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.pem")
	file := `connectors:
  - id: Bad ID
    type: oidc
    issuer: http://insecure.example
    client_secret: s
  - id: wx
    type: wechat
    name: 微信
    app_id: wx1
    app_secret: s
    app_secret_env: KF_WX
    scope: snsapi_everything
  - id: ali
    type: alipay
    name: 支付宝
    app_id: "2021"
    private_key_file: ` + missing + `
  - id: wx
    type: saml
    name: x
`
	_, err := connector.Parse([]byte(file), func(string) string { return "" })
	if !errors.Is(err, connector.ErrConfig) {
		t.Fatalf("err %v, want ErrConfig", err)
	}
	for _, want := range []string{`id "Bad ID"`, "name missing", "issuer", "client_id missing",
		"app_secret and app_secret_env", "KF_WX is empty", "scope \"snsapi_everything\"", "private_key_file",
		"alipay_public_key_file", `id "wx" used twice`, `type "saml"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not report %q:\n%v", want, err)
		}
	}
	if _, err := connector.Parse([]byte("connectors:\n  - id: a\n    tpye: oidc\n"), nil); err == nil || !strings.Contains(err.Error(), "tpye") {
		t.Errorf("unknown key: %v", err)
	}
}

func TestParseGoodFile(t *testing.T) {
	a := connectortest.NewAlipay(t, "2021000000000001")
	file := `connectors:
  - id: province
    type: oidc
    name: 省政务服务网
    issuer: https://id.example.gov.cn
    client_id: kf
    client_secret_env: KF_P
  - id: wechat
    type: wechat
    name: 微信
    app_id: wx1
    app_secret: s
  - id: alipay
    type: alipay
    name: 支付宝
    app_id: "2021000000000001"
    private_key_file: ` + a.PrivateKeyFile() + `
    alipay_public_key_file: ` + a.AlipayPublicKeyFile() + `
`
	path := filepath.Join(t.TempDir(), "connectors.yaml")
	os.WriteFile(path, []byte(file), 0o600)
	cs, err := connector.Load(path, func(k string) string { return map[string]string{"KF_P": "secret"}[k] })
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 3 || cs[0].ClientSecret != "secret" || cs[1].Scope != "snsapi_login" || cs[2].Scope != "auth_user" {
		t.Fatalf("configs %+v", cs)
	}
	for _, c := range cs {
		if _, err := connector.Open(c); err != nil {
			t.Errorf("open %s: %v", c.ID, err)
		}
	}
}
