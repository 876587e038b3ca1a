package web_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/console/web/webtest"
)

// The device page shows the kiosk's log tail in its live part, redacted even when the hub did
// not, and its buttons ask for a tail (the log-tail command) or stop it.
func TestDeviceLogTail(t *testing.T) {
	c := newConsole(t)
	for _, path := range []string{"/devices/" + webtest.PaperOut + "?lang=en", "/devices/" + webtest.PaperOut + "?lang=en&live=1"} {
		status, body := c.get(path)
		if status != http.StatusOK {
			t.Fatalf("%s: status %d", path, status)
		}
		if strings.Contains(path, "live=1") { // the live part, as JSON
			var live struct{ HTML string }
			if err := json.Unmarshal([]byte(body), &live); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			body = live.HTML
		}
		inOrder(t, body, `id="log"`, "streaming", "log tail started command=c-tail", "printer paper-out idNumber=[id]", "3 lines skipped")
		if strings.Contains(body, webtest.LeakedIDNumber) || strings.Contains(body, webtest.LeakedIDNumber[6:]) {
			t.Errorf("%s shows the ID number of a log line", path)
		}
	}
	_, body := c.get("/devices/" + webtest.OK + "?lang=en")
	if !strings.Contains(body, "No log lines yet.") || !strings.Contains(body, "Tail log 15m") {
		t.Error("a kiosk without a tail: no empty note or no tail buttons")
	}

	tok := c.csrf(webtest.PaperOut)
	for _, args := range []string{`{"for":"15m"}`, `{"stop":true}`} {
		status, _, h := c.post("/devices/"+webtest.PaperOut+"/commands", url.Values{"csrf": {tok}, "name": {"log-tail"}, "args": {args}, "ttl": {"10m"}})
		if status != http.StatusSeeOther || !strings.HasSuffix(h.Get("Location"), "#log") {
			t.Fatalf("%s: status %d, location %q", args, status, h.Get("Location"))
		}
		cmd := c.hub.Commands(webtest.PaperOut)[0]
		if cmd.Name != "log-tail" || string(cmd.Args) != args || cmd.ExpiresAt.Sub(cmd.CreatedAt) != 10*time.Minute {
			t.Fatalf("hub got %+v", cmd)
		}
	}
}
