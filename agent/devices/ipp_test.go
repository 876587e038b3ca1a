package devices_test

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/agent/devices"
	"github.com/kioskfleet/kioskfleet/agent/devices/devicestest"
	"github.com/kioskfleet/kioskfleet/drivers/ipp"
	"github.com/kioskfleet/kioskfleet/drivers/ipp/ipptest"
	"github.com/kioskfleet/kioskfleet/drivers/profile"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// Against a real ippeveprinter: the test page prints (the PDF lands in the spool); with media
// empty the job is aborted with the reason, and the printer is then reported as a fault.
func TestIPPTestPageAndMediaEmpty(t *testing.T) {
	good := ipptest.Start(t, ipptest.Options{Name: "good", Command: ipptest.Quick})
	empty := ipptest.Start(t, ipptest.Options{Name: "empty", Command: ipptest.FaultMediaEmpty})
	rec := devicestest.NewRecorder()
	m := run(t, devices.Config{
		Devices: &profile.DeviceConfig{Devices: []profile.DeviceEntry{
			{ID: "a4", URI: good.URI},
			{ID: "a4b", URI: empty.URI},
		}},
		Profiles:     loadProfiles(t),
		Reporter:     rec,
		Log:          slog.New(slog.DiscardHandler),
		PollInterval: 200 * time.Millisecond,
	})
	up := func(id string) func(wire.Peripherals) bool {
		return func(p wire.Peripherals) bool {
			d, _ := devicestest.Find(p, id)
			return d.Connected && d.Status == devices.StateOK && d.Profile == "generic-ipp-everywhere-a4"
		}
	}
	rec.WaitPeripherals(t, 10*time.Second, up("a4"))
	rec.WaitPeripherals(t, 10*time.Second, up("a4b"))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := m.PrintTestPage(ctx, "a4", devices.TestPage{Title: "kioskfleet test page", Lines: []string{"kiosk: k-001"}})
	if err != nil || out.State != devices.JobCompleted || out.JobID == 0 {
		t.Fatalf("test page: %+v, %v", out, err)
	}
	if files, _ := good.JobFiles("*.pdf"); len(files) != 1 {
		t.Fatalf("spool has %d files, want 1\n%s", len(files), good.Log())
	}
	var progress []devices.JobProgress
	out, err = m.PrintDocument(ctx, "a4", devices.Document{Name: "materials", Data: testPDF(t)}, func(p devices.JobProgress) { progress = append(progress, p) })
	if err != nil || out.State != devices.JobCompleted || len(progress) == 0 || progress[len(progress)-1].State != "completed" {
		t.Fatalf("document: %+v, %v, progress %+v", out, err, progress)
	}

	out, err = m.PrintTestPage(ctx, "a4b", devices.TestPage{Title: "kioskfleet test page"})
	if err != nil || out.State != devices.JobAborted || !slices.Contains(out.Reasons, "media-empty") {
		t.Fatalf("test page on empty printer: %+v, %v", out, err)
	}
	rec.WaitPeripherals(t, 5*time.Second, func(p wire.Peripherals) bool {
		d, _ := devicestest.Find(p, "a4b")
		return d.Status == devices.StateFault && slices.Contains(d.Reasons, "media-empty") &&
			slices.Contains(d.Consumables, devices.Consumable{Name: "paper", Level: devices.LevelEmpty})
	})
	rec.WaitAlert(t, 5*time.Second, func(a wire.Alert) bool { return a.Code == "peripheral.fault" })
	out, err = m.PrintTestPage(ctx, "a4b", devices.TestPage{Title: "refused"})
	if err != nil || out.State != devices.JobRefused || !slices.Contains(out.Reasons, "media-empty") {
		t.Fatalf("second test page on empty printer: %+v, %v", out, err)
	}
}

func testPDF(t *testing.T) []byte {
	t.Helper()
	pdf, err := ipp.TestPagePDF(ipp.TestPage{KioskID: "k-001", Lines: []string{"materials"}})
	if err != nil {
		t.Fatal(err)
	}
	return pdf
}
