package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/drivers/escpos"
	"github.com/kioskfleet/kioskfleet/drivers/idcard"
	"github.com/kioskfleet/kioskfleet/drivers/idcard/idcardsim"
	"github.com/kioskfleet/kioskfleet/drivers/profile"
	"github.com/kioskfleet/kioskfleet/drivers/qrscan"
	"github.com/kioskfleet/kioskfleet/drivers/transport"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startKiosk runs "devsim kiosk" in-process until the test ends and waits for its files.
func startKiosk(t *testing.T, extra ...string) (dir, url string, stdout *bytes.Buffer) {
	t.Helper()
	dir = t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	stdout = &bytes.Buffer{}
	var stderr bytes.Buffer
	go func() { done <- run(ctx, nil, append([]string{"kiosk", "--dir", dir}, extra...), stdout, &stderr) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("devsim kiosk: %v\n%s", err, stderr.String())
		}
		if _, err := os.Stat(filepath.Join(dir, "control.url")); err == nil {
			t.Error("control.url left behind")
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(dir, "control.url"))
		if err == nil {
			return dir, strings.TrimSpace(string(b)), stdout
		}
		select {
		case err := <-done:
			t.Fatalf("devsim kiosk ended early: %v\n%s", err, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("devsim kiosk not ready after 20 s\n%s", stderr.String())
		}
	}
}

func post(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Post(url, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func openPrinter(t *testing.T, path string) (*escpos.Device, transport.Port) {
	t.Helper()
	port, err := transport.Serial{}.OpenSerial(path, transport.SerialMode{Baud: 38400})
	if err != nil {
		t.Fatal(err)
	}
	return escpos.New(&escpos.SerialLink{Port: port}, discard(), escpos.Options{}), port
}

// The kiosk's configuration names every device with a shipped profile at a path that works; faults
// injected through the control API reach the simulators; unplug and replug keep the path.
func TestKiosk(t *testing.T) {
	dir, url, _ := startKiosk(t, "--no-ipp", "--no-sane")
	cfg, err := profile.LoadDeviceConfig(filepath.Join(dir, "devices.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	profiles, err := profile.LoadDir("../../../firmware-profiles")
	if err != nil {
		t.Fatal(err)
	}
	paths := map[string]string{}
	for _, e := range cfg.Devices {
		if _, err := profile.Match(profiles, e.Attached()); err != nil {
			t.Errorf("%s: %v", e.ID, err)
		}
		paths[e.ID] = e.Path
	}
	if len(cfg.Devices) != 3 || paths["idcard0"] == "" || paths["receipt0"] == "" || paths["qr0"] == "" {
		t.Fatalf("devices: %+v", cfg.Devices)
	}
	ctx := context.Background()

	// Receipt printer: paper out through the control API.
	pr, port := openPrinter(t, paths["receipt0"])
	if s, err := pr.Status(ctx); err != nil || !s.Ready() {
		t.Fatalf("printer status %v, %v", s, err)
	}
	if code := post(t, url+"/devices/receipt0/faults/paper-out"); code != http.StatusOK {
		t.Fatalf("fault: %d", code)
	}
	if s, err := pr.Status(ctx); err != nil || !s.PaperOut {
		t.Fatalf("after paper-out: %v, %v", s, err)
	}
	if code := post(t, url+"/devices/receipt0/faults/no-such-fault"); code != http.StatusBadRequest {
		t.Fatalf("unknown fault: %d", code)
	}
	if code := post(t, url+"/devices/nope/faults/paper-out"); code != http.StatusNotFound {
		t.Fatalf("unknown device: %d", code)
	}

	// Unplug: the open port fails; replug: the same path works again, with the fault kept.
	if code := post(t, url+"/devices/receipt0/unplug"); code != http.StatusOK {
		t.Fatalf("unplug: %d", code)
	}
	if _, err := pr.Status(ctx); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("status after unplug: %v", err)
	}
	port.Close()
	if _, err := os.Stat(paths["receipt0"]); err == nil {
		t.Fatal("link still there after unplug")
	}
	if code := post(t, url+"/devices/receipt0/replug"); code != http.StatusOK {
		t.Fatalf("replug: %d", code)
	}
	pr, port = openPrinter(t, paths["receipt0"])
	defer port.Close()
	if s, err := pr.Status(ctx); err != nil || !s.PaperOut {
		t.Fatalf("after replug: %v, %v", s, err)
	}
	if code := post(t, url+"/devices/receipt0/faults/paper-out?on=false"); code != http.StatusOK {
		t.Fatalf("clear fault: %d", code)
	}
	if s, err := pr.Status(ctx); err != nil || !s.Ready() {
		t.Fatalf("after clearing: %v, %v", s, err)
	}

	// ID reader: the sample card, then none.
	ip, err := transport.Serial{}.OpenSerial(paths["idcard0"], transport.SerialMode{Baud: 115200})
	if err != nil {
		t.Fatal(err)
	}
	defer ip.Close()
	r := idcard.NewSerialReader(ip, idcard.Config{})
	id, err := r.ReadCard(ctx, idcard.ReadOptions{})
	if err != nil || id.Number() != idcardsim.CanaryResident {
		t.Fatalf("read card: %v, %v", id, err)
	}
	id.Wipe()
	if code := post(t, url+"/devices/idcard0/card/none"); code != http.StatusOK {
		t.Fatalf("card none: %d", code)
	}
	if _, err := r.ReadCard(ctx, idcard.ReadOptions{}); !errors.Is(err, idcard.StatusNoCard) {
		t.Fatalf("read without card: %v", err)
	}

	// The ctl client.
	var out bytes.Buffer
	if err := run(ctx, nil, []string{"ctl", "--dir", dir, "devices"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var infos []info
	if err := json.Unmarshal(out.Bytes(), &infos); err != nil || len(infos) != 3 {
		t.Fatalf("ctl devices: %v\n%s", err, out.String())
	}
	if err := run(ctx, nil, []string{"ctl", "--dir", dir, "fault", "receipt0", "cover-open", "on"}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if s, err := pr.Status(ctx); err != nil || !s.CoverOpen {
		t.Fatalf("after ctl cover-open: %v, %v", s, err)
	}
	if err := run(ctx, nil, []string{"ctl", "--dir", dir, "fault", "receipt0", "bogus"}, io.Discard, io.Discard); err == nil {
		t.Fatal("ctl with a bad fault succeeded")
	}

	// QR scanner: a code sent through ctl arrives with the profile's suffix.
	qp, err := transport.Serial{}.OpenSerial(paths["qr0"], transport.SerialMode{Baud: 9600})
	if err != nil {
		t.Fatal(err)
	}
	defer qp.Close()
	sc, err := qrscan.New(qp, qrscan.Config{Suffix: qrscan.SuffixCR}, discard())
	if err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- sc.Run(sctx) }()
	defer func() { scancel(); <-runDone }()
	if err := run(ctx, nil, []string{"ctl", "--dir", dir, "scan", "qr0", "hello-kiosk"}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-sc.Scans():
		if s.Err != nil || s.Data != "hello-kiosk" {
			t.Fatalf("scan: %+v", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no scan")
	}
}

// With the peers installed, the kiosk also runs a real IPP printer and configures the SANE test
// scanner.
func TestKioskIPPAndSANE(t *testing.T) {
	if _, err := findBin("ippeveprinter"); err != nil {
		t.Skipf("skipping: %v", err)
	}
	dir, url, stdout := startKiosk(t)
	cfg, err := profile.LoadDeviceConfig(filepath.Join(dir, "devices.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var uri string
	for _, e := range cfg.Devices {
		if e.ID == "a4" {
			uri = e.URI
		}
	}
	if uri == "" {
		t.Fatalf("no IPP printer in %+v\n%s", cfg.Devices, stdout)
	}
	host := strings.TrimPrefix(strings.Split(uri, "/ipp/")[0], "ipp://")
	c, err := net.DialTimeout("tcp", host, time.Second)
	if err != nil {
		t.Fatalf("printer not listening: %v", err)
	}
	c.Close()
	if code := post(t, url+"/devices/a4/faults/media-empty"); code != http.StatusOK {
		t.Fatalf("media-empty: %d", code)
	}
	if _, err := os.Stat(filepath.Join(dir, "ipp", "faults", "media-empty")); err != nil {
		t.Fatal(err)
	}

	// Unplugged, the printer refuses connections; plugged in again, it listens on the same port.
	if code := post(t, url+"/devices/a4/unplug"); code != http.StatusOK {
		t.Fatalf("unplug a4: %d", code)
	}
	if c, err := net.DialTimeout("tcp", host, time.Second); err == nil {
		c.Close()
		t.Fatal("printer still listening after unplug")
	}
	start := time.Now()
	if code := post(t, url+"/devices/a4/replug"); code != http.StatusOK {
		t.Fatalf("replug a4: %d", code)
	}
	t.Logf("printer back after %v", time.Since(start))
	if c, err := net.DialTimeout("tcp", host, time.Second); err != nil {
		t.Fatalf("printer not listening after replug: %v", err)
	} else {
		c.Close()
	}
	if _, err := os.Stat(filepath.Join(dir, "ipp", "faults", "media-empty")); err != nil {
		t.Fatal("fault lost on replug")
	}

	// The SANE scanner: scanimage cannot open it while it is unplugged.
	if _, err := exec.LookPath("scanimage"); err != nil {
		t.Skipf("no SANE scanner here: %v", err)
	}
	probe := func() error {
		cmd := exec.Command("scanimage", "-d", saneDevice, "-A")
		cmd.Env = append(os.Environ(), "SANE_CONFIG_DIR="+filepath.Join(dir, "sane"))
		return cmd.Run()
	}
	if err := probe(); err != nil {
		t.Fatalf("scanner not there at start: %v", err)
	}
	for _, step := range []struct {
		op    string
		there bool
	}{{"unplug", false}, {"replug", true}} {
		if code := post(t, url+"/devices/scan0/"+step.op); code != http.StatusOK {
			t.Fatalf("%s scan0: %d", step.op, code)
		}
		if err := probe(); (err == nil) != step.there {
			t.Fatalf("after %s: scanimage -A: %v", step.op, err)
		}
	}
}

func TestHelpAndUsage(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), nil, []string{"--help"}, &out, io.Discard); err != nil || !strings.Contains(out.String(), "devsim kiosk") {
		t.Fatalf("help: %v %q", err, out.String())
	}
	if err := run(context.Background(), nil, []string{"toast"}, io.Discard, io.Discard); !errors.Is(err, errUsage) {
		t.Fatalf("unknown command: %v", err)
	}
	if err := run(context.Background(), nil, []string{"kiosk"}, io.Discard, io.Discard); !errors.Is(err, errUsage) {
		t.Fatalf("kiosk without dir: %v", err)
	}
}

// The single-device commands print the pty path first; a driver opens it.
func TestESCPOSCommand(t *testing.T) {
	d, port := openPrinter(t, firstLine(t, nil, "escpos", "--fault", "paper-near-end"))
	defer port.Close()
	if s, err := d.Status(context.Background()); err != nil || !s.PaperNearEnd {
		t.Fatalf("status: %v, %v", s, err)
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// firstLine runs a single-device command and returns the path it prints.
func firstLine(t *testing.T, stdin io.Reader, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run(ctx, stdin, args, pw, io.Discard); pw.Close() }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("devsim %s: %v", args[0], err)
		}
	})
	line := make([]byte, 64)
	n, err := pr.Read(line)
	if err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, pr)
	return strings.TrimSpace(string(line[:n]))
}

func TestIDCardCommand(t *testing.T) {
	path := firstLine(t, nil, "idcard", "--card", "hkmotw")
	p, err := transport.Serial{}.OpenSerial(path, transport.SerialMode{Baud: 115200})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	id, err := idcard.NewSerialReader(p, idcard.Config{}).ReadCard(context.Background(), idcard.ReadOptions{})
	if err != nil || id.Number() != idcardsim.CanaryHKMOTW {
		t.Fatalf("read: %v, %v", id, err)
	}
	id.Wipe()
}

func TestQRScanCommand(t *testing.T) {
	in, feed := io.Pipe()
	defer feed.Close()
	path := firstLine(t, in, "qrscan", "--suffix", "lf")
	p, err := transport.Serial{}.OpenSerial(path, transport.SerialMode{Baud: 9600})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	sc, err := qrscan.New(p, qrscan.Config{Suffix: qrscan.SuffixLF}, discard())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- sc.Run(ctx) }()
	defer func() { cancel(); <-runDone }()
	if _, err := io.WriteString(feed, "code-from-stdin\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-sc.Scans():
		if s.Data != "code-from-stdin" {
			t.Fatalf("scan %+v", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no scan")
	}
}
