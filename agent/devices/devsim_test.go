package devices_test

import (
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/agent/devices"
	"github.com/kioskfleet/kioskfleet/agent/devices/devicestest"
	"github.com/kioskfleet/kioskfleet/drivers/profile"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// devsimKiosk is a "devsim kiosk" process: the simulated peripherals of make run, in their own
// process as there (the IPP printer's daemons are its children).
type devsimKiosk struct {
	dir, control string
	cfg          *profile.DeviceConfig
}

// startDevsim builds devsim, runs "devsim kiosk" until the test ends and waits for its
// configuration.
func startDevsim(t *testing.T) *devsimKiosk {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "devsim")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/kioskfleet/kioskfleet/drivers/cmd/devsim").CombinedOutput(); err != nil {
		t.Fatalf("build devsim: %v\n%s", err, out)
	}
	k := &devsimKiosk{dir: t.TempDir()}
	var out lockedBuffer
	cmd := exec.Command(bin, "kiosk", "--dir", k.dir)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("devsim ignored SIGTERM for 10 s\n%s", out.String())
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; {
		b, err := os.ReadFile(filepath.Join(k.dir, "control.url"))
		if err == nil {
			k.control = strings.TrimSpace(string(b))
			break
		}
		select {
		case <-exited:
			t.Fatalf("devsim kiosk ended early\n%s", out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("devsim kiosk not ready after 30 s\n%s", out.String())
		}
	}
	cfg, err := profile.LoadDeviceConfig(filepath.Join(k.dir, "devices.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	k.cfg = cfg
	return k
}

// ctl posts to devsim's control API (devsim ctl --dir DIR VERB ID).
func (k *devsimKiosk) ctl(t *testing.T, id, verb string) {
	t.Helper()
	resp, err := http.Post(k.control+"/devices/"+id+"/"+verb, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("devsim %s %s: %s\n%s", verb, id, resp.Status, body)
	}
}

// Every peripheral devsim simulates, driven by the manager with the shipped profiles: unplugged,
// the peripherals record shows it disconnected (a fault) within 5 s; plugged in again, ok.
func TestDevsimUnplugReplug(t *testing.T) {
	k := startDevsim(t)
	ids := map[string]bool{}
	for _, e := range k.cfg.Devices {
		ids[e.ID] = true
	}
	want := []string{"idcard0", "receipt0", "qr0", "a4", "scan0"}
	for _, id := range want {
		if !ids[id] { // make test installs the peers
			t.Errorf("devsim kiosk has no %s: is its peer (ippeveprinter, scanimage) installed?", id)
		}
	}
	profiles := shippedProfiles(t)
	for _, p := range profiles {
		if p.Class == profile.ClassDocumentScanner {
			p.Quirks.PollInterval = time.Second // shipped: 30 s, as scanimage -A is not free
		}
	}
	rec := devicestest.NewRecorder()
	run(t, devices.Config{
		Devices:    k.cfg,
		Profiles:   profiles,
		Reporter:   rec,
		Log:        slog.New(slog.NewTextHandler(testWriter{t}, nil)),
		MaxBackoff: time.Second, // so that a replug is seen soon after the unplug test
	})
	state := func(id string, ok func(wire.Peripheral) bool) func(wire.Peripherals) bool {
		return func(p wire.Peripherals) bool {
			d, found := devicestest.Find(p, id)
			return found && ok(d)
		}
	}
	up := func(d wire.Peripheral) bool { return d.Connected && d.Status == devices.StateOK }
	down := func(d wire.Peripheral) bool {
		return !d.Connected && d.Status == devices.StateFault && slices.Equal(d.Reasons, []string{devices.ReasonDisconnected})
	}
	rec.WaitPeripherals(t, 20*time.Second, func(p wire.Peripherals) bool {
		for _, e := range k.cfg.Devices {
			if !state(e.ID, up)(p) {
				return false
			}
		}
		return true
	})
	for _, e := range k.cfg.Devices {
		t.Run(e.ID, func(t *testing.T) {
			k.ctl(t, e.ID, "unplug")
			start := time.Now()
			p := rec.WaitPeripherals(t, 5*time.Second, state(e.ID, down))
			d, _ := devicestest.Find(p, e.ID)
			t.Logf("unplug seen after %v: %s %v (%s)", time.Since(start).Round(time.Millisecond), d.Status, d.Reasons, d.Error)
			k.ctl(t, e.ID, "replug")
			start = time.Now()
			rec.WaitPeripherals(t, 10*time.Second, state(e.ID, up))
			t.Logf("replug seen after %v", time.Since(start).Round(time.Millisecond))
		})
	}
}
