package e2e

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/agent/enroll"
	"github.com/kioskfleet/kioskfleet/agent/kiosklogin"
	"github.com/kioskfleet/kioskfleet/agent/shell"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

var listening = regexp.MustCompile(`local device API listening".* addr=(127\.0\.0\.1:[0-9]+)`)

// localAPIAddr waits for an agent started with --local-api 127.0.0.1:0 to say where it listens.
func localAPIAddr(t testing.TB, agent *proc) string {
	t.Helper()
	var addr string
	waitFor(t, 30*time.Second, "local API listening", func() bool {
		b, _ := os.ReadFile(agent.log)
		if m := listening.FindSubmatch(b); m != nil {
			addr = string(m[1])
		}
		return addr != ""
	})
	return addr
}

// shellCall calls the kiosk shell's API as its pages do.
func shellCall(t *testing.T, addr, method, path string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+addr+"/shell/api/"+path, nil)
	req.Header.Set(shell.Header, "1")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if out != nil {
		json.NewDecoder(res.Body).Decode(out)
	}
	return res.StatusCode
}

// tile returns the home screen's tile of app ("" ID: none).
func tile(t *testing.T, addr, app string) shell.Service {
	var out struct{ Services []shell.Service }
	shellCall(t, addr, "GET", "services", &out)
	for _, s := range out.Services {
		if s.ID == app && s.App != nil {
			return s
		}
	}
	return shell.Service{}
}

// TestKioskCatalogGating: a real agent with the kiosk shell on a devsim kiosk. tax-print needs
// the receipt printer. Rolled out while a citizen uses the shell, it waits for the session to
// end, then its tile opens it where the agent serves it. Unplugging the printer withdraws it from
// the kiosk's catalog — the hub's view and the shell's home screen — within 5 s; plugging it back
// offers it again.
func TestKioskCatalogGating(t *testing.T) {
	h := newHub(t)
	h.site("hall-1")
	r := newRepo(t, h)
	r.publish("1.0.0", 50_000, "receipt-printer")
	if _, err := h.client.Transition(bg, "tax-print", "1.0.0", api.Transition{To: api.StateListed, Channel: api.ChannelKiosk}); err != nil {
		t.Fatal(err)
	}
	dir, id := h.enroll("hall-1")
	simDir := t.TempDir()
	start(t, "devsim", "devsim", "kiosk", "--dir", simDir, "--no-sane", "--no-ipp")
	cfg := filepath.Join(simDir, "devices.yaml")
	waitFor(t, 30*time.Second, "devsim ready", func() bool { _, err := os.Stat(cfg); return err == nil })
	apps := freeAddr(t)
	agent := startAgent(t, "agent", dir, "--devices", cfg, "--profiles", "../firmware-profiles", "--local-api", "127.0.0.1:0", "--apps-addr", apps)
	addr := localAPIAddr(t, agent)
	offered := func() (hub, kiosk bool) {
		kc, err := h.client.KioskCatalog(bg, id)
		if err != nil {
			t.Fatal(err)
		}
		hub = len(kc.Apps) == 1 && kc.Apps[0].App == "tax-print" && len(kc.Withheld) == 0
		tl := tile(t, addr, "tax-print")
		return hub, tl.Available && tl.App.URL != ""
	}
	waitFor(t, 30*time.Second, "tax-print listed, not installed", func() bool {
		kc, err := h.client.KioskCatalog(bg, id)
		return err == nil && len(kc.Apps) == 1 && tile(t, addr, "tax-print").Reason == shell.ReasonNotInstalled
	})

	// A citizen at the kiosk: the new app waits for the session to end.
	if code := shellCall(t, addr, "POST", "session/guest", nil); code != 200 {
		t.Fatalf("guest session: %d", code)
	}
	ro, err := h.client.CreateRollout(bg, api.RolloutSpec{Kind: api.RolloutBundle, App: "tax-print", Version: "1.0.0",
		Selector: api.Selector{IDs: []string{id}}, Waves: []int{100}, Soak: "0s", MinDone: 1})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the install waiting for the citizen", func() bool {
		return h.updates(id).Bundles["tax-print"].State == wire.BundleWaitingIdle
	})
	if tl := tile(t, addr, "tax-print"); tl.Available || served(t, apps) != "" {
		t.Fatalf("activated during the citizen's session: %+v", tl)
	}
	if code := shellCall(t, addr, "POST", "session/end", nil); code != 200 {
		t.Fatalf("end session: %d", code)
	}
	waitFor(t, 30*time.Second, "tax-print installed and offered", func() bool {
		hub, kiosk := offered()
		return hub && kiosk
	})
	if tl := tile(t, addr, "tax-print"); !strings.HasPrefix(tl.App.URL, "http://tax-print.localhost:") || served(t, apps) != "1.0.0" {
		t.Fatalf("offered at %q, serving %q", tl.App.URL, served(t, apps))
	}
	waitFor(t, 10*time.Second, "the rollout counting it updated", func() bool { return h.rollout(ro.ID).Totals.Updated == 1 })
	if out := h.fleetctl("apps", "kiosk", id); !regexp.MustCompile(`tax-print\s+1\.0\.0\s+1\.0\.0\s+yes`).MatchString(out) {
		t.Fatalf("fleetctl apps kiosk:\n%s", out)
	}

	// Unplugged: withheld within 5 s, at the hub and on the kiosk; plugged back: offered again.
	for _, step := range []struct {
		cmd  string
		want bool
	}{{"unplug", false}, {"replug", true}} {
		devsimCtl(t, simDir, step.cmd, "receipt0")
		at := time.Now()
		waitFor(t, 15*time.Second, "tax-print after "+step.cmd, func() bool {
			hub, kiosk := offered()
			return hub == step.want && kiosk == step.want
		})
		took := time.Since(at)
		if took > 5*time.Second {
			t.Errorf("%s: the catalog followed after %s, want <= 5 s", step.cmd, took)
		}
		t.Logf("%s: catalog followed in %s", step.cmd, took.Round(10*time.Millisecond))
		if !step.want {
			if out := h.fleetctl("apps", "kiosk", id); !regexp.MustCompile(`tax-print\s+-\s+-\s+no\s+receipt-printer not working \(receipt0`).MatchString(out) {
				t.Fatalf("fleetctl apps kiosk:\n%s", out)
			}
			kc, _ := h.client.KioskCatalog(bg, id)
			tl := tile(t, addr, "tax-print")
			if len(kc.Withheld) != 1 || !strings.Contains(kc.Withheld[0].Reason, "receipt-printer") || tl.Reason != shell.ReasonPeripheral ||
				!strings.Contains(tl.Detail, "receipt0") {
				t.Fatalf("withheld: hub %+v, kiosk %+v", kc.Withheld, tl)
			}
		}
	}
}

// TestKioskCatalogOwnCredential: the agent's hub client reads its kiosk's catalog (with the
// versions installed) with its own enrolled device key, over the hub's HTTPS; without
// credentials the hub answers 401, and to another kiosk's credential 403.
func TestKioskCatalogOwnCredential(t *testing.T) {
	h := newHub(t)
	h.site("hall-1")
	kiosk := func() *shell.HubClient {
		dir, id := h.enroll("hall-1")
		ident, err := enroll.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		return &shell.HubClient{API: &api.Client{BaseURL: h.client.BaseURL, HTTP: ident.HTTPClient()}, DeviceID: id, Key: ident.Signer()}
	}
	k1, k2 := kiosk(), kiosk()
	for range 2 { // a new assertion each time
		kc, err := k1.KioskCatalog(bg)
		if err != nil || kc.Kiosk != k1.DeviceID {
			t.Fatalf("own catalog: %+v, %v", kc, err)
		}
	}
	var ae *api.Error
	anon := &api.Client{BaseURL: h.client.BaseURL, HTTP: h.client.HTTP}
	if _, err := anon.KioskCatalog(bg, k1.DeviceID); !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
		t.Fatalf("without credentials: %v", err)
	}
	op, err := kiosklogin.Discover(bg, k2.API.HTTP, h.client.BaseURL)
	if err != nil {
		t.Fatal(err)
	}
	other := *k2.API
	other.Kiosk = func() (string, error) {
		return kiosklogin.Assertion(k2.Key, k2.DeviceID, op.Issuer+api.Prefix, wire.IDCard{}, time.Now(), time.Minute)
	}
	if _, err := other.KioskCatalog(bg, k1.DeviceID); !errors.As(err, &ae) || ae.Status != http.StatusForbidden {
		t.Fatalf("another kiosk's credential: %v", err)
	}
}
