package devices_test

import (
	"context"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/agent/devices"
	"github.com/kioskfleet/kioskfleet/agent/devices/devicestest"
	"github.com/kioskfleet/kioskfleet/drivers/profile"
	"github.com/kioskfleet/kioskfleet/drivers/qrscan"
	"github.com/kioskfleet/kioskfleet/drivers/qrscan/qrscansim"
	"github.com/kioskfleet/kioskfleet/drivers/transport/transporttest"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// A code scanned while a caller waits reaches it and nothing else (logs, records); unplugging the
// scanner is reported.
func TestQRScan(t *testing.T) {
	sim, err := qrscansim.New(qrscan.SuffixCR)
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	path := stableLink(t, sim.Path)
	var logs lockedBuffer
	rec := devicestest.NewRecorder()
	m := run(t, devices.Config{
		Devices:      &profile.DeviceConfig{Devices: []profile.DeviceEntry{{ID: "qr0", Profile: "saoma-qr20-serial", Path: path}}},
		Profiles:     loadProfiles(t),
		Reporter:     rec,
		Log:          slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		PollInterval: 50 * time.Millisecond,
	})
	rec.WaitPeripherals(t, 5*time.Second, func(p wire.Peripherals) bool {
		d, _ := devicestest.Find(p, "qr0")
		return d.Connected && d.Status == devices.StateOK
	})
	const canary = "kf-login-token-CANARY-7f3a"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got := make(chan string, 1)
	go func() {
		c, err := m.NextScan(ctx, "qr0")
		if err != nil {
			t.Error(err)
		}
		got <- c
	}()
	var code string
	for code == "" { // the scan counts only once the caller waits: repeat until it arrives
		if err := sim.Scan(canary); err != nil {
			t.Fatal(err)
		}
		select {
		case code = <-got:
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			t.Fatal("no scan")
		}
	}
	if code != canary {
		t.Fatalf("scanned %q", code)
	}
	os.Remove(path) // as udev does; the freed pty number may go to another process
	sim.Unplug()
	rec.WaitPeripherals(t, 5*time.Second, func(p wire.Peripherals) bool {
		d, _ := devicestest.Find(p, "qr0")
		return !d.Connected && d.Reasons[0] == devices.ReasonDisconnected
	})
	if strings.Contains(logs.String(), "CANARY") {
		t.Error("a scanned code reached the log")
	}
	for _, r := range rec.Records() {
		if strings.Contains(string(r.Body), "CANARY") {
			t.Errorf("a scanned code reached a %s record", r.Kind)
		}
	}
}

// A scanner that is unplugged while something else still holds the other end of its line (here
// the pty master stays open, as when devsim's children inherited it) shows no hangup on the
// port; it is still reported disconnected within 5 s because its link is gone, and found again
// when a new one appears behind the same link.
func TestQRScanUnplugWithoutHangup(t *testing.T) {
	_, pty := transporttest.PtyPair(t) // the master stays open until the test ends
	link := stableLink(t, pty)
	rec := devicestest.NewRecorder()
	run(t, devices.Config{
		Devices:    &profile.DeviceConfig{Devices: []profile.DeviceEntry{{ID: "qr0", Profile: "saoma-qr20-serial", Path: link}}},
		Profiles:   shippedProfiles(t), // the shipped poll interval (the manager's default, 1 s)
		Reporter:   rec,
		Log:        slog.New(slog.DiscardHandler),
		MinBackoff: 20 * time.Millisecond,
		MaxBackoff: 200 * time.Millisecond,
	})
	qr := func(connected bool, st devices.State, reasons ...string) func(wire.Peripherals) bool {
		return func(p wire.Peripherals) bool {
			d, _ := devicestest.Find(p, "qr0")
			return d.Connected == connected && d.Status == st && slices.Equal(d.Reasons, reasons)
		}
	}
	rec.WaitPeripherals(t, 5*time.Second, qr(true, devices.StateOK))
	os.Remove(link)
	start := time.Now()
	rec.WaitPeripherals(t, 5*time.Second, qr(false, devices.StateFault, devices.ReasonDisconnected))
	t.Logf("unplug noticed after %v", time.Since(start))

	_, pty2 := transporttest.PtyPair(t)
	if err := os.Symlink(pty2, link); err != nil {
		t.Fatal(err)
	}
	rec.WaitPeripherals(t, 5*time.Second, qr(true, devices.StateOK))
}
