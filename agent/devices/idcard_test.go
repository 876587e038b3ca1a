package devices_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/agent/devices"
	"github.com/kioskfleet/kioskfleet/agent/devices/devicestest"
	"github.com/kioskfleet/kioskfleet/drivers/idcard"
	"github.com/kioskfleet/kioskfleet/drivers/idcard/idcardsim"
	"github.com/kioskfleet/kioskfleet/drivers/profile"
	"github.com/kioskfleet/kioskfleet/drivers/transport/transporttest"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// lockedBuffer collects log output from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A canary ID number read through the manager reaches the caller and appears in no log line
// (debug level, text and JSON handlers) and in no reported record.
func TestIDCardCanaryNeverLoggedOrReported(t *testing.T) {
	master, pty := transporttest.PtyPair(t)
	path := stableLink(t, pty)
	sim := idcardsim.New(idcardsim.Resident())
	ctx, cancel := context.WithCancel(context.Background())
	simDone := make(chan struct{})
	go func() { defer close(simDone); sim.Run(ctx, master) }()
	t.Cleanup(func() { cancel(); <-simDone })

	var logs lockedBuffer
	h := slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})
	log := slog.New(multiHandler{h, slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})})
	rec := devicestest.NewRecorder()
	m := run(t, devices.Config{
		Devices:  &profile.DeviceConfig{Devices: []profile.DeviceEntry{{ID: "idcard0", Profile: "huaxin-hx-r200-serial", Path: path}}},
		Profiles: loadProfiles(t),
		Reporter: rec,
		Log:      log,
	})
	rec.WaitPeripherals(t, 5*time.Second, func(p wire.Peripherals) bool {
		d, _ := devicestest.Find(p, "idcard0")
		return d.Connected && d.Status == devices.StateOK
	})

	var got, shown string
	var kept *idcard.Identity
	err := m.ReadCard(context.Background(), "idcard0", func(id devices.Identity) error {
		card := id.(*idcard.Identity)
		got, shown, kept = card.Number(), card.String(), card
		log.Info("caller logs the identity the safe way", "identity", card)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got != idcardsim.CanaryResident {
		t.Fatalf("read number %q, want the canary", got)
	}
	if strings.Contains(shown, idcardsim.CanaryResident) {
		t.Fatalf("String shows the number: %s", shown)
	}
	if kept.Number() == idcardsim.CanaryResident || len(bytes.Trim(kept.Photo(), "\x00")) != 0 {
		t.Fatal("identity not wiped after use")
	}

	// A failed read (no card) is reported to the caller and leaves the reader healthy.
	sim.SetCard(nil)
	if err := m.ReadCard(context.Background(), "idcard0", func(devices.Identity) error { return nil }); err == nil {
		t.Fatal("read without a card succeeded")
	}
	sim.SetCard(idcardsim.Resident())
	sim.SetFaults(idcardsim.Faults{Misread: true}) // a failed check must not echo the number
	if err := m.ReadCard(context.Background(), "idcard0", func(devices.Identity) error { return nil }); !errors.Is(err, idcard.ErrMisread) {
		t.Fatalf("misread: %v", err)
	}
	sim.SetFaults(idcardsim.Faults{})
	for range 3 { // and a few more reads, interleaved with status polls
		if err := m.ReadCard(context.Background(), "idcard0", func(devices.Identity) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	os.Remove(path)
	sim.Unplug()
	<-simDone
	// The reader goes away: that too is logged and reported, and must not leak the number either.
	rec.WaitPeripherals(t, 5*time.Second, func(p wire.Peripherals) bool {
		d, _ := devicestest.Find(p, "idcard0")
		return !d.Connected
	})

	canaries := []string{idcardsim.CanaryResident, idcardsim.CanaryResident[:6] + idcardsim.CanaryResident[6:14], "张三丰", "体育西路"}
	for _, c := range canaries {
		if strings.Contains(logs.String(), c) {
			t.Errorf("log output contains %q", c)
		}
		for _, r := range rec.Records() {
			if bytes.Contains(r.Body, []byte(c)) {
				t.Errorf("%s record contains %q", r.Kind, c)
			}
			enc, _ := json.Marshal(r)
			if bytes.Contains(enc, []byte(c)) {
				t.Errorf("encoded %s record contains %q", r.Kind, c)
			}
		}
	}
	if !strings.Contains(logs.String(), "card read") {
		t.Error("the read itself was not logged")
	}
	if !strings.Contains(logs.String(), idcard.MaskNumber(idcardsim.CanaryResident)) {
		t.Error("masked number missing from the caller's log line")
	}
}

// multiHandler sends each record to every handler.
type multiHandler []slog.Handler

func (m multiHandler) Enabled(ctx context.Context, l slog.Level) bool { return true }
func (m multiHandler) Handle(ctx context.Context, r slog.Record) error {
	for _, h := range m {
		if err := h.Handle(ctx, r.Clone()); err != nil {
			return err
		}
	}
	return nil
}
func (m multiHandler) WithAttrs(as []slog.Attr) slog.Handler {
	out := make(multiHandler, len(m))
	for i, h := range m {
		out[i] = h.WithAttrs(as)
	}
	return out
}
func (m multiHandler) WithGroup(g string) slog.Handler {
	out := make(multiHandler, len(m))
	for i, h := range m {
		out[i] = h.WithGroup(g)
	}
	return out
}
