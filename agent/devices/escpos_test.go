package devices_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/agent/devices"
	"github.com/kioskfleet/kioskfleet/agent/devices/devicestest"
	"github.com/kioskfleet/kioskfleet/drivers/escpos/escpossim"
	"github.com/kioskfleet/kioskfleet/drivers/profile"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// plugPrinter starts a simulated printer on a new pty and points link (a stable path, like
// /dev/serial/by-id) at it.
func plugPrinter(t *testing.T, link string) *escpossim.Pty {
	t.Helper()
	sim, err := escpossim.NewPty()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	os.Remove(link)
	if err := os.Symlink(sim.Path, link); err != nil {
		t.Fatal(err)
	}
	return sim
}

func receiptState(connected bool, st devices.State, reasons ...string) func(wire.Peripherals) bool {
	return func(p wire.Peripherals) bool {
		d, _ := devicestest.Find(p, "receipt0")
		return d.Connected == connected && d.Status == st && slices.Equal(d.Reasons, reasons)
	}
}

// Paper out injected in the simulator is reported within 5 s; unplug and replug are noticed; the
// test page prints on the simulator and is refused while the paper is out.
func TestESCPOSPaperOutUnplugReplug(t *testing.T) {
	link := filepath.Join(t.TempDir(), "receipt0")
	sim := plugPrinter(t, link)
	rec := devicestest.NewRecorder()
	m := run(t, devices.Config{
		Devices:    &profile.DeviceConfig{Devices: []profile.DeviceEntry{{ID: "receipt0", Profile: "hengtai-kp80-serial", Path: link}}},
		Profiles:   shippedProfiles(t),
		Reporter:   rec,
		Log:        slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		MinBackoff: 20 * time.Millisecond,
		MaxBackoff: 200 * time.Millisecond,
	})
	rec.WaitPeripherals(t, 5*time.Second, receiptState(true, devices.StateOK))

	// The shipped profile polls every second.
	start := time.Now()
	sim.SetFault(escpossim.PaperOut, true)
	p := rec.WaitPeripherals(t, 5*time.Second, receiptState(true, devices.StateFault, "paper-out"))
	t.Logf("paper out reported after %v", time.Since(start))
	if d, _ := devicestest.Find(p, "receipt0"); !slices.Equal(d.Consumables, []devices.Consumable{{Name: "paper", Level: devices.LevelEmpty}}) {
		t.Errorf("consumables: %+v", d.Consumables)
	}
	rec.WaitAlert(t, 5*time.Second, func(a wire.Alert) bool {
		return a.Code == "peripheral.fault" && strings.Contains(a.Message, "paper-out") && strings.Contains(a.Message, "receipt0")
	})
	out, err := m.PrintTestPage(context.Background(), "receipt0", devices.TestPage{Title: "refused"})
	if err != nil || out.State != devices.JobRefused || !slices.Contains(out.Reasons, "paper-out") {
		t.Fatalf("test page with paper out: %+v, %v", out, err)
	}

	sim.SetFault(escpossim.PaperOut, false)
	rec.WaitPeripherals(t, 5*time.Second, receiptState(true, devices.StateOK))
	rec.WaitAlert(t, 5*time.Second, func(a wire.Alert) bool { return a.Code == "peripheral.recovered" })
	out, err = m.PrintTestPage(context.Background(), "receipt0", devices.TestPage{Title: "kioskfleet test page", Lines: []string{"kiosk k-001"}})
	if err != nil || out.State != devices.JobCompleted {
		t.Fatalf("test page: %+v, %v", out, err)
	}
	if !strings.Contains(sim.Text(), "kioskfleet test page") || strings.Contains(sim.Text(), "refused") || sim.Cuts() != 1 {
		t.Fatalf("printer got %q, %d cuts", sim.Text(), sim.Cuts())
	}
	out, err = m.PrintReceipt(context.Background(), "receipt0", devices.Receipt{Lines: []string{"排队号 A017"}, QR: "A017"})
	if err != nil || out.State != devices.JobCompleted || out.Device != "receipt0" {
		t.Fatalf("receipt: %+v, %v", out, err)
	}
	if !strings.Contains(sim.Text(), "排队号 A017") || !slices.Equal(sim.QRCodes(), []string{"A017"}) || sim.Cuts() != 2 {
		t.Fatalf("printer got %q, QR %q, %d cuts", sim.Text(), sim.QRCodes(), sim.Cuts())
	}
	if _, err := m.PrintDocument(context.Background(), "receipt0", devices.Document{Data: []byte("%PDF-")}, nil); !errors.Is(err, devices.ErrUnsupported) {
		t.Fatalf("PDF on a receipt printer: %v", err)
	}

	os.Remove(link) // as udev does on unplug
	sim.Unplug()
	start = time.Now()
	rec.WaitPeripherals(t, 5*time.Second, receiptState(false, devices.StateFault, devices.ReasonDisconnected))
	t.Logf("unplug noticed after %v", time.Since(start))

	sim2 := plugPrinter(t, link)
	start = time.Now()
	rec.WaitPeripherals(t, 5*time.Second, receiptState(true, devices.StateOK))
	t.Logf("replug noticed after %v", time.Since(start))
	sim2.SetFault(escpossim.PaperNearEnd, true)
	rec.WaitPeripherals(t, 5*time.Second, receiptState(true, devices.StateDegraded, "paper-near-end"))
}

// stableLink returns a symlink to a pty, as /dev/serial/by-id gives for real ports. Tests that
// unplug remove it first: the manager keeps reopening the configured path, and a freed pty number
// is soon handed to another process.
func stableLink(t *testing.T, pty string) string {
	t.Helper()
	link := filepath.Join(t.TempDir(), filepath.Base(pty))
	if err := os.Symlink(pty, link); err != nil {
		t.Fatal(err)
	}
	return link
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
