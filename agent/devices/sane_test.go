package devices_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/agent/devices"
	"github.com/kioskfleet/kioskfleet/agent/devices/devicestest"
	"github.com/kioskfleet/kioskfleet/drivers/docscan"
	"github.com/kioskfleet/kioskfleet/drivers/docscan/docscantest"
	"github.com/kioskfleet/kioskfleet/drivers/profile"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// The SANE test backend is found and scans; a SANE device that is not there is reported
// disconnected.
func TestSANEScanner(t *testing.T) {
	cfgDir := docscantest.SANEConfig(t)
	env := map[string]string{"SANE_CONFIG_DIR": cfgDir}
	rec := devicestest.NewRecorder()
	m := run(t, devices.Config{
		Devices: &profile.DeviceConfig{Devices: []profile.DeviceEntry{
			{ID: "scan0", SANE: "test:0", Env: env},
			{ID: "scan1", SANE: "test:9", Env: env}, // matches the profile, but no such device
		}},
		Profiles:     loadProfiles(t),
		Reporter:     rec,
		Log:          slog.New(slog.DiscardHandler),
		PollInterval: 100 * time.Millisecond,
	})
	rec.WaitPeripherals(t, 5*time.Second, func(p wire.Peripherals) bool {
		a, _ := devicestest.Find(p, "scan0")
		b, _ := devicestest.Find(p, "scan1")
		return a.Connected && a.Status == devices.StateOK && profile.Class(a.Class) == profile.ClassDocumentScanner &&
			!b.Connected && b.Status == devices.StateFault && b.Reasons[0] == devices.ReasonDisconnected
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pages, err := m.ScanDocument(ctx, "scan0", docscan.Options{Resolution: 50})
	if err != nil || len(pages) != 1 || pages[0].Format != "image/png" || pages[0].Width == 0 {
		t.Fatalf("scan: %d pages, %v", len(pages), err)
	}
	if _, err := m.ScanDocument(ctx, "scan1", docscan.Options{}); err == nil {
		t.Fatal("scan on a missing scanner succeeded")
	}
}
