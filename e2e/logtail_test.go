package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/agent/localapi"
	"github.com/kioskfleet/kioskfleet/agent/localapi/localapitest"
	"github.com/kioskfleet/kioskfleet/console/web"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// A field technician's log tail through a real hub and a real agent: the log-tail command, sent
// while the kiosk is offline, starts it when the kiosk connects; the agent's lines reach the hub's API and the console's device page (one the test makes
// the agent log, carrying an ID-shaped canary, redacted), and the stream ends by itself at its
// deadline. The canary is nowhere on the hub: not in its API, its log or its files.
func TestLogTail(t *testing.T) {
	const canary = "44030519900101123X"
	h := newHub(t)
	h.site("hall-1")
	dir, id := h.enroll("hall-1")
	simDir := t.TempDir()
	start(t, "devsim", "devsim", "kiosk", "--dir", simDir, "--no-sane", "--no-ipp")
	cfg := filepath.Join(simDir, "devices.yaml")
	waitFor(t, 30*time.Second, "devsim ready", func() bool { _, err := os.Stat(cfg); return err == nil })
	if lg, err := h.client.DeviceLog(bg, id, 0); err != nil || lg.Active || len(lg.Lines) != 0 {
		t.Fatalf("log before any tail: %+v, %v", lg, err)
	}
	// Past its bound a tail is refused, clearly.
	_, err := h.client.SendCommand(bg, id, api.CreateCommand{Name: api.CmdLogTail, Args: json.RawMessage(`{"for":"1h"}`)})
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || !strings.Contains(err.Error(), "1s to 15m") {
		t.Fatalf("a 1h tail: %v", err)
	}
	// The kiosk is offline: the request waits, as any command does, and starts when it connects.
	const span = 20 * time.Second
	c, err := h.client.SendCommand(bg, id, api.CreateCommand{Name: api.CmdLogTail, Args: json.RawMessage(`{"for":"20s"}`)})
	if err != nil || c.State != wire.CmdQueued {
		t.Fatalf("log-tail for an offline kiosk: %+v, %v", c, err)
	}
	agent := startAgent(t, "agent", dir, "--devices", cfg, "--profiles", "../firmware-profiles", "--local-api", "127.0.0.1:0")
	addr := localAPIAddr(t, agent)
	if c, err = h.client.Command(bg, c.ID, 30*time.Second); err != nil || c.State != wire.CmdSucceeded {
		t.Fatalf("log-tail: %+v %v", c, err)
	}
	waitFor(t, 10*time.Second, "tail active", func() bool {
		lg, err := h.client.DeviceLog(bg, id, 0)
		return err == nil && lg.Active && lg.Tail == c.ID
	})

	// The agent logs the origin of a page it refuses: the test's line, with the canary in it.
	if _, resp, err := localapitest.Dial(t, "ws://"+addr+localapi.Path, "https://"+canary+".tail-marker.example"); err == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a page of another origin connected: %v", err)
	}
	var lg api.DeviceLog
	waitFor(t, 10*time.Second, "the test's line in the tail", func() bool {
		lg, err = h.client.DeviceLog(bg, id, 0)
		return err == nil && strings.Contains(string(mustJSON(t, lg)), "tail-marker.example")
	})
	if !strings.Contains(string(mustJSON(t, lg)), `https://[id].tail-marker.example`) {
		t.Errorf("the canary is not redacted as expected: %s", mustJSON(t, lg))
	}
	if !grepFile(t, agent.log, canary) {
		t.Fatal("the agent did not log the canary: the test proves nothing")
	}

	// The console's device page shows the lines, live part included.
	console, err := web.New(web.Config{Hub: h.client, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cs := httptest.NewServer(console)
	defer cs.Close()
	for _, path := range []string{"/devices/" + id + "?lang=en", "/devices/" + id + "?lang=en&live=1"} {
		body := getPage(t, cs.URL+path)
		if !strings.Contains(body, "[id].tail-marker.example") || !strings.Contains(body, "log tail started") {
			t.Errorf("console %s does not show the tail's lines", path)
		}
		if strings.Contains(body, canary) {
			t.Errorf("console %s shows the canary", path)
		}
	}

	// The tail ends by itself at its deadline: the agent says so after its last batch, and the
	// hub no longer calls it active.
	waitFor(t, span+10*time.Second, "the tail's end", func() bool { return grepFile(t, agent.log, "log tail ended") })
	waitFor(t, 5*time.Second, "the tail inactive on the hub", func() bool {
		lg, err = h.client.DeviceLog(bg, id, 0)
		return err == nil && !lg.Active
	})
	if lasted := lg.Until.Sub(c.UpdatedAt); lasted < span-2*time.Second || lasted > span+5*time.Second {
		t.Errorf("the tail ran %v on the hub's clock, want about %v", lasted, span)
	}

	// Nowhere on the hub: its API, its log, its files.
	det, _ := h.client.Device(bg, id)
	cmds, _ := h.client.ListCommands(bg, id, 50)
	for what, v := range map[string]any{"log": lg, "device": det, "commands": cmds} {
		if bytes.Contains(mustJSON(t, v), []byte(canary)) {
			t.Errorf("the hub's API (%s) holds the canary", what)
		}
	}
	h.p.stop()
	_ = filepath.Walk(h.dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(canary)) {
				t.Errorf("hub file %s holds the canary", p)
			}
		}
		return nil
	})
	if grepFile(t, h.p.log, canary) {
		t.Error("the hub logged the canary")
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func getPage(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}
