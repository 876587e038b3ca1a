package devices_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/agent/devices"
	"github.com/kioskfleet/kioskfleet/agent/devices/devicestest"
	"github.com/kioskfleet/kioskfleet/drivers/profile"
	"github.com/kioskfleet/kioskfleet/drivers/transport"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func shippedProfiles(t *testing.T) []*profile.Profile {
	t.Helper()
	ps, err := profile.LoadDir("../../firmware-profiles")
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// loadProfiles loads the shipped profiles without their poll intervals, so that the tests'
// Config.PollInterval applies.
func loadProfiles(t *testing.T) []*profile.Profile {
	t.Helper()
	ps, err := profile.LoadDir("../../firmware-profiles")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		p.Quirks.PollInterval = 0
	}
	return ps
}

// fakePlug is a device that can be unplugged; its status is set by the test.
type fakePlug struct {
	mu      sync.Mutex
	plugged bool
	status  devices.Status
	opens   int
}

func (f *fakePlug) set(plugged bool, s devices.Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.plugged, f.status = plugged, s
}

func (f *fakePlug) open(context.Context, profile.DeviceEntry, *profile.Profile, *slog.Logger) (devices.Device, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.plugged {
		return nil, fmt.Errorf("open: %w", transport.ErrClosed)
	}
	f.opens++
	return &fakeDev{f}, nil
}

type fakeDev struct{ f *fakePlug }

func (d *fakeDev) Status(context.Context) (devices.Status, error) {
	d.f.mu.Lock()
	defer d.f.mu.Unlock()
	if !d.f.plugged {
		return devices.Status{}, fmt.Errorf("read: %w", transport.ErrClosed)
	}
	return d.f.status, nil
}

func (d *fakeDev) Close() error { return nil }

func run(t *testing.T, cfg devices.Config) *devices.Manager {
	t.Helper()
	m, err := devices.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return m
}

func TestUnplugReplugAndAlerts(t *testing.T) {
	plug := &fakePlug{plugged: true}
	rec := devicestest.NewRecorder()
	m := run(t, devices.Config{
		Devices:      &profile.DeviceConfig{Devices: []profile.DeviceEntry{{ID: "receipt0", Profile: "hengtai-kp80-serial", Path: "/dev/null"}}},
		Profiles:     loadProfiles(t),
		Openers:      map[profile.Driver]devices.Opener{profile.DriverESCPOS: plug.open},
		Reporter:     rec,
		Log:          slog.New(slog.DiscardHandler),
		PollInterval: 20 * time.Millisecond,
		MinBackoff:   10 * time.Millisecond,
		MaxBackoff:   50 * time.Millisecond,
	})
	is := func(connected bool, st devices.State, reasons ...string) func(wire.Peripherals) bool {
		return func(p wire.Peripherals) bool {
			d, _ := devicestest.Find(p, "receipt0")
			return d.Connected == connected && d.Status == st && slices.Equal(d.Reasons, reasons)
		}
	}
	p := rec.WaitPeripherals(t, 5*time.Second, is(true, devices.StateOK))
	if d, _ := devicestest.Find(p, "receipt0"); profile.Class(d.Class) != profile.ClassReceiptPrinter || d.Model != "KP-80S" || d.Profile != "hengtai-kp80-serial" {
		t.Fatalf("inventory: %+v", d)
	}
	// Changed wakes its waiters at the next change (taken before it: the device opened already).
	changed := m.Changed()
	plug.set(true, devices.Status{State: devices.StateFault, Reasons: []string{"paper-out"}})
	rec.WaitPeripherals(t, 5*time.Second, is(true, devices.StateFault, "paper-out"))
	select {
	case <-changed:
		if d, _ := devicestest.Find(m.Snapshot(), "receipt0"); d.Status != devices.StateFault {
			t.Fatalf("after Changed the snapshot shows %+v", d)
		}
	default:
		t.Fatal("Changed not closed after paper-out")
	}
	rec.WaitAlert(t, 5*time.Second, func(a wire.Alert) bool {
		return a.Code == "peripheral.fault" && bytes.Contains([]byte(a.Message), []byte("paper-out"))
	})

	plug.set(false, devices.Status{})
	rec.WaitPeripherals(t, 5*time.Second, is(false, devices.StateFault, devices.ReasonDisconnected))
	plug.set(true, devices.Status{})
	rec.WaitPeripherals(t, 5*time.Second, is(true, devices.StateOK))
	rec.WaitAlert(t, 5*time.Second, func(a wire.Alert) bool { return a.Code == "peripheral.recovered" })
	plug.mu.Lock()
	defer plug.mu.Unlock()
	if plug.opens != 2 {
		t.Errorf("opened %d times, want 2", plug.opens)
	}
}

// A device no profile fits is reported as a fault and never opened.
func TestNoProfile(t *testing.T) {
	rec := devicestest.NewRecorder()
	m := run(t, devices.Config{
		Devices:  &profile.DeviceConfig{Devices: []profile.DeviceEntry{{ID: "x0", Path: "/dev/pts/99"}}},
		Profiles: loadProfiles(t),
		Openers:  map[profile.Driver]devices.Opener{},
		Reporter: rec,
		Log:      slog.New(slog.DiscardHandler),
	})
	d, _ := devicestest.Find(m.Snapshot(), "x0")
	if d.Status != devices.StateFault || !slices.Equal(d.Reasons, []string{devices.ReasonNoProfile}) || d.Connected {
		t.Fatalf("status: %+v", d)
	}
	if _, err := m.PrintTestPage(context.Background(), "x0", devices.TestPage{}); !errors.Is(err, devices.ErrNotConnected) {
		t.Fatalf("PrintTestPage: %v", err)
	}
	if _, err := m.PrintTestPage(context.Background(), "nope", devices.TestPage{}); !errors.Is(err, devices.ErrUnknownDevice) {
		t.Fatalf("PrintTestPage: %v", err)
	}
}

// A flapping device (a loose cable) does not flood the outbox with alerts: an identical alert is
// held back for AlertQuiet, and the next one that goes out counts those held back.
func TestFlappingAlertsHeldBack(t *testing.T) {
	plug := &fakePlug{plugged: true}
	rec := devicestest.NewRecorder()
	run(t, devices.Config{
		Devices:      &profile.DeviceConfig{Devices: []profile.DeviceEntry{{ID: "receipt0", Profile: "hengtai-kp80-serial", Path: "/dev/null"}}},
		Profiles:     loadProfiles(t),
		Openers:      map[profile.Driver]devices.Opener{profile.DriverESCPOS: plug.open},
		Reporter:     rec,
		Log:          slog.New(slog.DiscardHandler),
		PollInterval: 5 * time.Millisecond,
		MinBackoff:   5 * time.Millisecond,
		MaxBackoff:   5 * time.Millisecond,
		AlertQuiet:   700 * time.Millisecond,
	})
	flaps := 0
	for start := time.Now(); time.Since(start) < 500*time.Millisecond; flaps++ {
		plug.set(flaps%2 == 1, devices.Status{})
		time.Sleep(25 * time.Millisecond)
	}
	plug.set(false, devices.Status{})
	time.Sleep(400 * time.Millisecond) // past AlertQuiet since the first alert
	plug.set(true, devices.Status{})
	rec.WaitAlert(t, 5*time.Second, func(a wire.Alert) bool {
		return a.Code == "peripheral.recovered" && strings.Contains(a.Message, "more since")
	})
	n := 0
	for _, r := range rec.Records() {
		if r.Kind == wire.KindAlert {
			n++
		}
	}
	plug.mu.Lock()
	opens := plug.opens
	plug.mu.Unlock()
	if n > 4 || opens < 5 {
		t.Fatalf("%d alerts for %d opens, want at most 4 for at least 5", n, opens)
	}
	t.Logf("%d flaps, %d opens, %d alerts", flaps, opens, n)
}

// flakyReporter refuses its first calls, as a full outbox would.
type flakyReporter struct {
	*devicestest.Recorder
	mu    sync.Mutex
	fails int
}

func (f *flakyReporter) Report(ctx context.Context, kind string, class wire.Class, body any) error {
	f.mu.Lock()
	if f.fails > 0 {
		f.fails--
		f.mu.Unlock()
		return errors.New("outbox full")
	}
	f.mu.Unlock()
	return f.Recorder.Report(ctx, kind, class, body)
}

// What the Reporter refuses is sent again: the alert arrives once, the latest snapshot arrives.
func TestReportRetried(t *testing.T) {
	plug := &fakePlug{plugged: true, status: devices.Status{State: devices.StateFault, Reasons: []string{"paper-out"}}}
	rec := devicestest.NewRecorder()
	run(t, devices.Config{
		Devices:      &profile.DeviceConfig{Devices: []profile.DeviceEntry{{ID: "receipt0", Profile: "hengtai-kp80-serial", Path: "/dev/null"}}},
		Profiles:     loadProfiles(t),
		Openers:      map[profile.Driver]devices.Opener{profile.DriverESCPOS: plug.open},
		Reporter:     &flakyReporter{Recorder: rec, fails: 3},
		Log:          slog.New(slog.DiscardHandler),
		PollInterval: 20 * time.Millisecond,
	})
	rec.WaitPeripherals(t, 10*time.Second, receiptState(true, devices.StateFault, "paper-out"))
	n := 0
	for _, r := range rec.Records() {
		if r.Kind == wire.KindAlert {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d alerts, want 1", n)
	}
}
