package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kioskfleet/kioskfleet/hub/identity"
)

func TestCitizensConfig(t *testing.T) {
	for _, c := range []struct {
		cfg  Citizens
		want string
	}{
		{Citizens{SMSGatewayURL: "https://sms.example.com/send", SMSDevFile: "x"}, "choose one"},
		{Citizens{SMSGatewayURL: "http://sms.example.com/send", SMSGatewayKey: "k"}, "https"},
		{Citizens{SMSGatewayURL: "https://sms.example.com/send"}, "key is empty"},
		{Citizens{SMSGatewayKey: "k"}, "without a gateway url"},
		{Citizens{PasskeyRPID: "10.0.0.1"}, "not an IP"},
		{Citizens{PasskeyOrigins: []string{"portal.example.com"}}, "passkey origins"},
		{Citizens{ConnectorsFile: "/nonexistent/connectors.yaml"}, "connectors file"},
	} {
		if err := c.cfg.validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
	ok := Citizens{SMSGatewayURL: "https://sms.example.com/send", SMSGatewayKey: "k", PasskeyRPID: "gov.example.cn",
		PasskeyOrigins: []string{"https://portal.gov.example.cn", "android:apk-key-hash:abc"}}
	if err := ok.validate(); err != nil {
		t.Error(err)
	}
	var ic identity.Config
	if err := ok.apply(&ic); err != nil || ic.SMS == nil || ic.PasskeyRPID != "gov.example.cn" || len(ic.PasskeyOrigins) != 2 {
		t.Errorf("apply: %v %+v", err, ic)
	}
	// The development sender only when its file is given.
	ic = identity.Config{}
	if err := (Citizens{}).apply(&ic); err != nil || ic.SMS != nil {
		t.Errorf("no sms configured, yet a sender: %v", ic.SMS)
	}
	if err := (Citizens{SMSDevFile: filepath.Join(t.TempDir(), "codes")}).apply(&ic); err != nil || ic.SMS == nil {
		t.Errorf("dev file: %v", err)
	}
	// Upstream identity providers from a connectors file.
	conns := filepath.Join(t.TempDir(), "connectors.yaml")
	os.WriteFile(conns, []byte("connectors:\n  - id: wechat\n    type: wechat\n    name: 微信\n    app_id: wx1\n    app_secret: s\n"), 0o600)
	ic = identity.Config{}
	c := Citizens{ConnectorsFile: conns}
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	if err := c.apply(&ic); err != nil || len(ic.Upstreams) != 1 || ic.Upstreams[0].ID != "wechat" || ic.Upstreams[0].Name != "微信" {
		t.Errorf("connectors: %v %+v", err, ic.Upstreams)
	}
}
