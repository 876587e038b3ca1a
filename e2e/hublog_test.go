package e2e

import (
	"bufio"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/fleet"
)

// The hub writes every log line in one slog format, each naming its component at most once:
// also the lines of the OpenID Provider library (which logs through slog's default logger) and
// a kiosk's MQTT session. In text format each line is time=... level=... msg=...; in JSON format
// each line is an object with time, level and msg.
func TestHubLogFormat(t *testing.T) {
	text := regexp.MustCompile(`^time=\S+ level=(DEBUG|INFO|WARN|ERROR) msg=`)
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			lines := hubLogLines(t, format)
			seen := map[string]bool{}
			for _, l := range lines {
				var comps int
				if format == "text" {
					if !text.MatchString(l) {
						t.Errorf("not a slog text line: %s", l)
					}
					comps = strings.Count(l, " component=")
					if m := regexp.MustCompile(` component=(\S+)`).FindStringSubmatch(l); m != nil {
						seen[m[1]] = true
					}
				} else {
					var m map[string]any
					if err := json.Unmarshal([]byte(l), &m); err != nil || m["time"] == nil || m["level"] == nil || m["msg"] == nil {
						t.Errorf("not a slog JSON line (%v): %s", err, l)
					}
					comps = strings.Count(l, `"component":`)
					if c, ok := m["component"].(string); ok {
						seen[c] = true
					}
				}
				if comps > 1 {
					t.Errorf("component given %d times: %s", comps, l)
				}
				if strings.Contains(l, `msg="identity: `) || strings.Contains(l, `"msg":"identity: `) {
					t.Errorf("the component repeated in the message: %s", l)
				}
			}
			for _, c := range []string{"store", "broker", "identity", "oidc", "api"} {
				if !seen[c] {
					t.Errorf("no line of component %s in:\n%s", c, strings.Join(lines, "\n"))
				}
			}
		})
	}
}

// hubLogLines runs a hub with the log format, has it log a kiosk's session, an enrollment and
// an OpenID error, stops it and returns what it wrote to standard error.
func hubLogLines(t *testing.T, format string) []string {
	t.Helper()
	h := unstartedHub(t)
	logPath := filepath.Join(t.TempDir(), "hub.log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(filepath.Join(binDir, "fleet-hub"), "--data", h.dir, "--http-addr", h.httpAddr,
		"--mqtt-addr", h.mqttAddr, "--log-level", "debug", "--log-format", format)
	cmd.Stderr = f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitFor(t, 20*time.Second, "hub healthy", h.healthy)
	tok, err := os.ReadFile(filepath.Join(h.dir, "bootstrap-token"))
	if err != nil {
		t.Fatal(err)
	}
	h.client.Token = strings.TrimSpace(string(tok))
	h.site("hall-1")
	dir, id := h.enroll("hall-1")
	agent := startAgent(t, "agent", dir)
	waitFor(t, 20*time.Second, "kiosk online", func() bool { return online(h, id) })
	agent.stop()
	// A wrong authorization code: zitadel/oidc logs "request error".
	resp, err := h.client.HTTP.PostForm(h.client.BaseURL+"/oidc/token", url.Values{"grant_type": {"authorization_code"},
		"code": {"nope"}, "client_id": {"fleetctl"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, err := h.client.CreateSite(bg, fleet.Site{ID: "hall-1", Name: "again", Region: "440305"}); err == nil {
		t.Error("a second site hall-1 was created")
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("hub after SIGTERM: %v", err)
	}
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}
