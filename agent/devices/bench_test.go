package devices_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/agent/devices"
	"github.com/kioskfleet/kioskfleet/agent/devices/devicestest"
	"github.com/kioskfleet/kioskfleet/drivers/escpos/escpossim"
	"github.com/kioskfleet/kioskfleet/drivers/idcard/idcardsim"
	"github.com/kioskfleet/kioskfleet/drivers/profile"
	"github.com/kioskfleet/kioskfleet/drivers/transport/transporttest"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

func profileByID(b *testing.B, id string) *profile.Profile {
	ps, err := profile.LoadDir("../../firmware-profiles")
	if err != nil {
		b.Fatal(err)
	}
	for _, p := range ps {
		if p.ID == id {
			return p
		}
	}
	b.Fatalf("no profile %s", id)
	return nil
}

// One status poll of a receipt printer: four DLE EOT round trips over a pty to escpossim.
func BenchmarkESCPOSStatusPoll(b *testing.B) {
	sim, err := escpossim.NewPty()
	if err != nil {
		b.Fatal(err)
	}
	defer sim.Close()
	ctx := context.Background()
	dev, err := devices.DefaultOpeners()[profile.DriverESCPOS](ctx, profile.DeviceEntry{ID: "r", Path: sim.Path},
		profileByID(b, "hengtai-kp80-serial"), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer dev.Close()
	for b.Loop() {
		if s, err := dev.Status(ctx); err != nil || s.State != devices.StateOK {
			b.Fatal(s, err)
		}
	}
}

// One ID card read through the manager (find, select, read text+photo, appended address) over a
// pty to idcardsim, including handing the identity over and wiping it.
func BenchmarkReadCard(b *testing.B) {
	master, path := transporttest.PtyPair(b)
	sim := idcardsim.New(idcardsim.Resident())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); sim.Run(ctx, master) }()
	defer func() { cancel(); <-done }()
	ps, err := profile.LoadDir("../../firmware-profiles")
	if err != nil {
		b.Fatal(err)
	}
	rec := devicestest.NewRecorder()
	m, err := devices.New(devices.Config{
		Devices:  &profile.DeviceConfig{Devices: []profile.DeviceEntry{{ID: "idcard0", Profile: "huaxin-hx-r200-serial", Path: path}}},
		Profiles: ps, Reporter: rec, Log: slog.New(slog.DiscardHandler), PollInterval: time.Hour,
	})
	if err != nil {
		b.Fatal(err)
	}
	mctx, mcancel := context.WithCancel(context.Background())
	mdone := make(chan struct{})
	go func() { defer close(mdone); m.Run(mctx) }()
	defer func() { mcancel(); <-mdone }()
	rec.WaitPeripherals(b, 5*time.Second, func(p wire.Peripherals) bool {
		d, _ := devicestest.Find(p, "idcard0")
		return d.Connected
	})
	for b.Loop() {
		if err := m.ReadCard(ctx, "idcard0", func(devices.Identity) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}
