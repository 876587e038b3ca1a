package web_test

import (
	"context"
	"fmt"
	"github.com/kioskfleet/kioskfleet/pkg/proctest"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kioskfleet/kioskfleet/console/web"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
)

// TestAgainstRealHub runs the console in front of a real fleet-hub with a real kiosk-agent whose
// peripherals are devsim's simulators speaking their real bytes on pseudo-terminals. A paper-out
// injected into the simulated receipt printer shows on the overview in words; a ping sent through
// the console's form comes back succeeded; a desired state set through it is applied. The
// binaries are built from this tree; nothing of the hub or agent is imported.
func TestAgainstRealHub(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs fleet-hub, kiosk-agent and devsim; skipped with -short")
	}
	bin := buildCmds(t, "hub/cmd/fleet-hub", "agent/cmd/kiosk-agent", "drivers/cmd/devsim")
	data := t.TempDir()
	httpAddr, mqttAddr := proctest.FreeAddr(t), proctest.FreeAddr(t)
	proctest.Start(t, filepath.Join(bin, "fleet-hub"), "--data", filepath.Join(data, "hub"), "--http-addr", httpAddr, "--mqtt-addr", mqttAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// The console trusts the hub's CA, as fleet-console --hub-ca does; the kiosk pins it through
	// its enrollment token.
	client := &api.Client{BaseURL: "https://" + httpAddr}
	proctest.Eventually(t, 30*time.Second, "hub up with a bootstrap token and its CA", func() bool {
		b, err := os.ReadFile(filepath.Join(data, "hub", "bootstrap-token"))
		client.Token = strings.TrimSpace(string(b))
		if err != nil || client.Token == "" {
			return false
		}
		roots, err := api.LoadCA(filepath.Join(data, "hub", "ca", "ca.crt"))
		if err != nil {
			return false
		}
		client.HTTP = &http.Client{Transport: api.Transport(roots)}
		_, err = client.Health(ctx)
		return err == nil
	})
	if _, err := client.CreateSite(ctx, fleet.Site{ID: "sz-futian-1", Name: "福田区市民服务中心", Region: "440304"}); err != nil {
		t.Fatal(err)
	}
	tok, err := client.CreateToken(ctx, api.CreateToken{SiteID: "sz-futian-1"})
	if err != nil {
		t.Fatal(err)
	}
	agentData := filepath.Join(data, "agent")
	if out, err := exec.Command(filepath.Join(bin, "kiosk-agent"), "enroll", "--data", agentData, "--hub", client.BaseURL,
		"--token", tok.Secret, "--model", "KF-K200").CombinedOutput(); err != nil {
		t.Fatalf("enroll: %v\n%s", err, out)
	}
	sim := startDevsim(t, bin, filepath.Join(data, "devsim"))
	proctest.Start(t, filepath.Join(bin, "kiosk-agent"), "run", "--data", agentData, "--devices", filepath.Join(sim, "devices.yaml"),
		"--profiles", "../../firmware-profiles", "--max-backoff", "1s")

	srv, err := web.New(web.Config{Hub: client})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	c := &console{t: t, url: ts.URL, c: browserClient(t)}

	var id string
	proctest.Eventually(t, 30*time.Second, "kiosk online with its peripherals on the devices page", func() bool {
		devs, err := client.ListDevices(ctx, api.DeviceQuery{Status: "online"})
		if err != nil || len(devs) != 1 || len(devs[0].Peripherals) == 0 {
			return false
		}
		id = devs[0].ID
		_, body := c.get("/devices/" + id)
		return strings.Contains(body, "凭条打印机") && strings.Contains(body, "身份证阅读器")
	})

	// The overview open on a live socket shows the paper-out within 3 s, without a reload.
	ws := c.liveSocket("/?live=1")
	readUntil(t, ws, 10*time.Second, "first update", func(m string) bool { return strings.Contains(m, `id=\"problems\"`) })
	alertsWS := c.liveSocket("/alerts?live=1")
	readUntil(t, alertsWS, 10*time.Second, "alerts page", func(m string) bool { return strings.Contains(m, `id=\"alerts\"`) })
	if out, err := exec.Command(filepath.Join(bin, "devsim"), "ctl", "--dir", sim, "fault", "receipt0", "paper-out").CombinedOutput(); err != nil {
		t.Fatalf("inject paper-out: %v\n%s", err, out)
	}
	injected := time.Now()
	readUntil(t, ws, 3*time.Second, "paper-out on the live overview", func(m string) bool { return strings.Contains(m, "凭条打印机 receipt0：缺纸") })
	t.Logf("paper-out on the live overview %v after devsim's fault", time.Since(injected))
	// It opened an alert, on the live alerts page within 3 s too; acknowledged and resolved there.
	readUntil(t, alertsWS, 3*time.Second-time.Since(injected), "paper-out alert on the live alerts page", func(m string) bool {
		return strings.Contains(m, "receipt0：缺纸") && strings.Contains(m, "未处理")
	})
	as, err := client.ListAlerts(ctx, false)
	if err != nil || len(as) != 1 || as[0].Rule != "peripheral-fault" || as[0].Subject != "receipt0" || as[0].Detail != "paper-out" {
		t.Fatalf("alerts: %+v %v", as, err)
	}
	alertID := fmt.Sprint(as[0].ID)
	// The hub's metrics count it, and the live viewers (the two pages, the alert engine).
	metrics := func() string {
		res, err := client.HTTP.Get(client.BaseURL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return string(b)
	}
	if m := metrics(); !strings.Contains(m, `kf_alerts_opened_total{rule="peripheral-fault"} 1`) || !strings.Contains(m, "kf_feed_subscribers 3") ||
		!strings.Contains(m, "kf_feed_lost_total 0") {
		t.Errorf("hub metrics lack the alert or the viewers:\n%s", grepLines(m, "kf_alert", "kf_events"))
	}
	if status, body, h := c.post("/alerts/"+alertID+"/ack", url.Values{"csrf": {c.csrf(id)}}); status != http.StatusSeeOther || h.Get("Location") != "/alerts#alert-"+alertID {
		t.Fatalf("ack: %d %s", status, body)
	}
	readUntil(t, alertsWS, 3*time.Second, "acknowledged on the live alerts page", func(m string) bool { return strings.Contains(m, "处理中") })
	// A maintenance window over the kiosk's whole county, from the alert's card; ended again.
	if _, body := c.get("/alerts"); !strings.Contains(body, `name="region" value="`+as[0].Region+`"`) {
		t.Fatalf("the alert's card offers no silence of county %s", as[0].Region)
	}
	if status, body, _ := c.post("/alerts/"+alertID+"/silence", url.Values{"csrf": {c.csrf(id)}, "region": {as[0].Region},
		"rule": {"peripheral-fault"}, "for": {"2h"}}); status != http.StatusSeeOther {
		t.Fatalf("silence the county: %d %s", status, body)
	}
	if ss, err := client.ListSilences(ctx); err != nil || len(ss) != 1 || ss[0].Region != as[0].Region || ss[0].DeviceID != "" {
		t.Fatalf("silences after the county's: %+v %v", ss, err)
	} else if _, err := client.EndSilence(ctx, ss[0].ID); err != nil {
		t.Fatal(err)
	}
	if status, body, _ := c.post("/alerts/"+alertID+"/resolve", url.Values{"csrf": {c.csrf(id)}}); status != http.StatusSeeOther {
		t.Fatalf("resolve: %d %s", status, body)
	}
	// (The paper is still out: the hub may raise a new alert for it at the kiosk's next report.)
	as, err = client.ListAlerts(ctx, true)
	i := slices.IndexFunc(as, func(a api.Alert) bool { return fmt.Sprint(a.ID) == alertID })
	if err != nil || i < 0 || as[i].State != "resolved" || as[i].AckBy != "bootstrap-admin" || as[i].ResolvedBy != "bootstrap-admin" {
		t.Fatalf("alert after resolve: %+v %v", as, err)
	}
	if status, _, _ := c.post("/alerts/"+alertID+"/ack", url.Values{"csrf": {c.csrf(id)}}); status != http.StatusConflict {
		t.Fatalf("ack of a resolved alert: %d", status)
	}
	proctest.Eventually(t, 20*time.Second, "paper-out on the overview", func() bool {
		_, body := c.get("/")
		return strings.Contains(between(body, `id="problems"`, "</div>\n\n<h2>"), "凭条打印机 receipt0：缺纸")
	})

	form := url.Values{"csrf": {c.csrf(id)}, "name": {"ping"}, "args": {`{"n":1}`}, "ttl": {"1m"}}
	if status, body, _ := c.post("/devices/"+id+"/commands", form); status != http.StatusSeeOther {
		t.Fatalf("send ping: status %d\n%s", status, body)
	}
	proctest.Eventually(t, 20*time.Second, "ping succeeded on the device page", func() bool {
		_, body := c.get("/devices/" + id)
		return strings.Contains(between(body, `id="commands"`, "</section>"), `<span class="chip cmd-succeeded">成功</span> <strong>ping</strong>`)
	})

	form = url.Values{"csrf": {c.csrf(id)}, "doc": {`{"heartbeatInterval":"20s"}`}}
	if status, body, _ := c.post("/devices/"+id+"/desired", form); status != http.StatusSeeOther {
		t.Fatalf("set desired: status %d\n%s", status, body)
	}
	proctest.Eventually(t, 20*time.Second, "desired state applied", func() bool {
		_, body := c.get("/devices/" + id + "?lang=en")
		return strings.Contains(body, "In sync") && strings.Contains(body, "Reported · version 1")
	})

	// The hub's refusal of a bad TTL is shown, not hidden.
	form = url.Values{"csrf": {c.csrf(id)}, "name": {"ping"}, "ttl": {"0s"}}
	if status, body, _ := c.post("/devices/"+id+"/commands?lang=en", form); status != http.StatusBadRequest || !strings.Contains(body, "ttl:") {
		t.Errorf("bad ttl: status %d", status)
	}
}

// buildCmds builds the tree's commands (paths from the top of the checkout) into a temporary
// folder, which it returns.
func buildCmds(t *testing.T, cmds ...string) string {
	t.Helper()
	bin := t.TempDir()
	args := []string{"build", "-o", bin + "/"}
	for _, c := range cmds {
		args = append(args, "../../"+c)
	}
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// startDevsim starts devsim's simulated kiosk peripherals (serial ones: no IPP printer or SANE
// scanner) in dir, until the test ends, and returns dir once they are ready.
func startDevsim(t *testing.T, bin, dir string) string {
	t.Helper()
	proctest.Start(t, filepath.Join(bin, "devsim"), "kiosk", "--dir", dir, "--no-ipp", "--no-sane")
	proctest.Eventually(t, 20*time.Second, "devsim kiosk ready", func() bool {
		_, err := os.Stat(filepath.Join(dir, "devices.yaml"))
		return err == nil
	})
	return dir
}

// liveSocket opens the live WebSocket of a page (its live URL), closed when the test ends.
func (c *console) liveSocket(page string) *websocket.Conn {
	c.t.Helper()
	ws, _, err := (&websocket.Dialer{Jar: c.c.Jar, HandshakeTimeout: 10 * time.Second}).Dial(
		"ws://"+strings.TrimPrefix(c.url, "http://")+"/live?page="+url.QueryEscape(page), nil)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { ws.Close() })
	return ws
}

// grepLines returns the lines of s that contain one of the words.
func grepLines(s string, words ...string) string {
	var out []string
	for l := range strings.Lines(s) {
		for _, w := range words {
			if strings.Contains(l, w) {
				out = append(out, strings.TrimSpace(l))
				break
			}
		}
	}
	return strings.Join(out, "\n")
}
