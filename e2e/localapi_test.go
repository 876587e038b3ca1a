package e2e

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kioskfleet/kioskfleet/agent/localapi"
	"github.com/kioskfleet/kioskfleet/agent/localapi/localapitest"
	"github.com/kioskfleet/kioskfleet/drivers/idcard/idcardsim"
)

// A kiosk-agent serving the local device API on loopback: the shell logs the citizen on the
// devsim card reader in at the real hub (the session's acr says idcard) and prints a receipt;
// the ID number reaches no app; at SIGTERM the agent closes the shell's connection.
func TestLocalAPIThroughAgent(t *testing.T) {
	h := newHub(t)
	h.site("hall-1")
	dir, _ := h.enroll("hall-1")
	simDir := t.TempDir()
	start(t, "devsim", "devsim", "kiosk", "--dir", simDir, "--no-sane", "--no-ipp")
	cfg := filepath.Join(simDir, "devices.yaml")
	waitFor(t, 30*time.Second, "devsim ready", func() bool { _, err := os.Stat(cfg); return err == nil })
	agent := startAgent(t, "agent", dir, "--devices", cfg, "--profiles", "../firmware-profiles", "--local-api", "127.0.0.1:0")
	addr := localAPIAddr(t, agent)
	url := "ws://" + addr + localapi.Path
	if _, resp, err := localapitest.Dial(t, url, "https://evil.example"); err == nil || resp.StatusCode != 403 {
		t.Fatalf("a page of another origin connected: %v", err)
	}
	c := localapitest.MustDial(t, url, "http://"+addr)
	waitFor(t, 20*time.Second, "devices connected", func() bool {
		r := c.Do("Common.Status", nil, 5*time.Second)
		return strings.Count(string(r.Completion.Payload), `"connected":true`) >= 3
	})

	r := c.Do("Login.IdCard", nil, 30*time.Second)
	if r.Code() != "success" {
		t.Fatalf("login: %s", r.Completion.Raw)
	}
	var res localapi.LoginResult
	r.Completion.Decode(t, &res)
	parts := strings.Split(res.IDToken, ".")
	if len(parts) != 3 || res.AccessToken == "" || res.ACR != "idcard" || res.Holder.Name != "张*丰" {
		t.Fatalf("login result %s", r.Completion.Raw)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims struct {
		ACR string `json:"acr"`
	}
	if json.Unmarshal(payload, &claims); !strings.Contains(claims.ACR, "idcard") {
		t.Fatalf("the hub session's acr is %q", claims.ACR)
	}
	r = c.Do("Printer.PrintReceipt", map[string]any{"lines": []string{"欢迎 " + res.Holder.Name}}, 10*time.Second)
	if r.Code() != "success" {
		t.Fatalf("receipt: %s", r.Completion.Raw)
	}
	for _, m := range c.Received() {
		if strings.Contains(string(m), idcardsim.CanaryResident) || strings.Contains(string(m), "张三丰") {
			t.Fatalf("the app got the card's data: %s", m)
		}
	}

	agent.stop()
	if _, err := c.TryNext(10*time.Second, func(localapitest.Msg) bool { return false }); !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Errorf("at SIGTERM the connection ended with %v, want a going-away close", err)
	}
	if b, _ := os.ReadFile(agent.log); strings.Contains(string(b), idcardsim.CanaryResident) {
		t.Error("the agent logged the ID number")
	}
}
