package web_test

import (
	"context"
	"github.com/kioskfleet/kioskfleet/pkg/proctest"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/", "../../hub/cmd/fleet-hub", "../../agent/cmd/kiosk-agent", "../../drivers/cmd/devsim")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
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
	sim := filepath.Join(data, "devsim")
	proctest.Start(t, filepath.Join(bin, "devsim"), "kiosk", "--dir", sim, "--no-ipp", "--no-sane")
	proctest.Eventually(t, 20*time.Second, "devsim kiosk ready", func() bool {
		_, err := os.Stat(filepath.Join(sim, "devices.yaml"))
		return err == nil
	})
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

	if out, err := exec.Command(filepath.Join(bin, "devsim"), "ctl", "--dir", sim, "fault", "receipt0", "paper-out").CombinedOutput(); err != nil {
		t.Fatalf("inject paper-out: %v\n%s", err, out)
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
