package devices_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/agent/devices"
	"github.com/kioskfleet/kioskfleet/agent/devices/devicestest"
	"github.com/kioskfleet/kioskfleet/drivers/escpos/escpossim"
	"github.com/kioskfleet/kioskfleet/drivers/idcard"
	"github.com/kioskfleet/kioskfleet/drivers/idcard/idcardsim"
	"github.com/kioskfleet/kioskfleet/drivers/profile"
	"github.com/kioskfleet/kioskfleet/drivers/qrscan"
	"github.com/kioskfleet/kioskfleet/drivers/qrscan/qrscansim"
	"github.com/kioskfleet/kioskfleet/drivers/transport"
	"github.com/kioskfleet/kioskfleet/drivers/transport/transporttest"
	"github.com/kioskfleet/kioskfleet/drivers/usbprinter/usbprintertest"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// The profile's USB settings reach the drivers: the split-endpoint GA 467 reader reads the canary
// card, the USB printer-class receipt printer reports paper out, and unplugging is noticed.
func TestUSBDevices(t *testing.T) {
	card := idcardsim.New(idcardsim.Resident())
	printer := usbprintertest.New("MFG:Yunhe;MDL:YT-80;CMD:ESC/POS;")
	bus := transporttest.NewFakeBus()
	bus.Plug(0x0400, 0xc35a, func() transport.USBDevice { return transporttest.NewFakeUSB(card.USB(idcardsim.USBLayout)) })
	printerAt := bus.Plug(0x0fe6, 0x811e, func() transport.USBDevice { return printer })
	rec := devicestest.NewRecorder()
	m := run(t, devices.Config{
		Devices: &profile.DeviceConfig{Devices: []profile.DeviceEntry{
			{ID: "idcard0", USB: &profile.USBMatch{VID: "0400", PID: "c35a"}},
			{ID: "receipt0", USB: &profile.USBMatch{VID: "0x0FE6", PID: "811E"}},
		}},
		Profiles:     loadProfiles(t),
		USB:          bus,
		Reporter:     rec,
		Log:          slog.New(slog.DiscardHandler),
		PollInterval: 50 * time.Millisecond,
		MinBackoff:   10 * time.Millisecond,
	})
	state := func(id string, connected bool, st devices.State, reasons ...string) func(wire.Peripherals) bool {
		return func(p wire.Peripherals) bool {
			d, _ := devicestest.Find(p, id)
			return d.Connected == connected && d.Status == st && slices.Equal(d.Reasons, reasons)
		}
	}
	p := rec.WaitPeripherals(t, 5*time.Second, func(p wire.Peripherals) bool {
		return state("idcard0", true, devices.StateOK)(p) && state("receipt0", true, devices.StateOK)(p)
	})
	if d, _ := devicestest.Find(p, "idcard0"); d.Profile != "jinghe-jh-u5-usb" {
		t.Fatalf("idcard0 profile %q", d.Profile)
	}
	var number string
	if err := m.ReadCard(context.Background(), "idcard0", func(id devices.Identity) error {
		number = id.(*idcard.Identity).Number()
		return nil
	}); err != nil || number != idcardsim.CanaryResident {
		t.Fatalf("read over USB: %v", err)
	}

	printer.SetFault(escpossim.PaperOut, true)
	rec.WaitPeripherals(t, 5*time.Second, state("receipt0", true, devices.StateFault, "paper-out"))

	bus.Unplug(printerAt)
	printer.Unplug()
	rec.WaitPeripherals(t, 5*time.Second, state("receipt0", false, devices.StateFault, devices.ReasonDisconnected))
}

// With discovery on, devices attached after start are found by the rescan and opened: a GA 467
// reader on the (fake) USB bus, read over USB, and a QR scanner whose /dev/serial/by-id link
// appears. The configured printer is not added a second time; a found device that goes stays in
// the inventory, disconnected, and comes back under the same ID.
func TestHotPlug(t *testing.T) {
	dev := t.TempDir()
	byID := filepath.Join(dev, "serial", "by-id")
	if err := os.MkdirAll(byID, 0o755); err != nil {
		t.Fatal(err)
	}
	bus := transporttest.NewFakeBus()
	printer := usbprintertest.New("MFG:Yunhe;MDL:YT-80;CMD:ESC/POS;")
	bus.Plug(0x0fe6, 0x811e, func() transport.USBDevice { return printer })
	rec := devicestest.NewRecorder()
	m := run(t, devices.Config{
		Devices:        &profile.DeviceConfig{Devices: []profile.DeviceEntry{{ID: "receipt0", USB: &profile.USBMatch{VID: "0fe6", PID: "811e"}}}},
		Profiles:       loadProfiles(t),
		USB:            bus,
		Discovery:      &devices.Discovery{DevDir: dev, SysDir: t.TempDir()}, // the bus: Config.USB
		RescanInterval: 50 * time.Millisecond,
		Reporter:       rec,
		Log:            slog.New(slog.DiscardHandler),
		PollInterval:   50 * time.Millisecond,
		MinBackoff:     10 * time.Millisecond,
		MaxBackoff:     100 * time.Millisecond,
	})
	inventory := func(ids ...string) func(wire.Peripherals) bool {
		return func(p wire.Peripherals) bool {
			var got []string
			for _, d := range p.Devices {
				got = append(got, d.ID)
			}
			return slices.Equal(got, ids)
		}
	}
	is := func(id string, connected bool, st devices.State) func(wire.Peripherals) bool {
		return func(p wire.Peripherals) bool {
			d, _ := devicestest.Find(p, id)
			return d.Connected == connected && d.Status == st
		}
	}
	and := func(fs ...func(wire.Peripherals) bool) func(wire.Peripherals) bool {
		return func(p wire.Peripherals) bool {
			for _, f := range fs {
				if !f(p) {
					return false
				}
			}
			return true
		}
	}
	rec.WaitPeripherals(t, 5*time.Second, and(inventory("receipt0"), is("receipt0", true, devices.StateOK)))

	card := idcardsim.New(idcardsim.Resident())
	var mu sync.Mutex
	var reader *transporttest.FakeUSB // the reader as last opened
	plugReader := func() transport.USBID {
		return bus.Plug(0x0400, 0xc35a, func() transport.USBDevice {
			mu.Lock()
			defer mu.Unlock()
			reader = transporttest.NewFakeUSB(card.USB(idcardsim.USBLayout))
			return reader
		})
	}
	readerAt := plugReader()
	p := rec.WaitPeripherals(t, 5*time.Second, and(inventory("receipt0", "idcard0"), is("idcard0", true, devices.StateOK)))
	if d, _ := devicestest.Find(p, "idcard0"); d.Profile != "jinghe-jh-u5-usb" {
		t.Fatalf("found reader: %+v", d)
	}
	var number string
	if err := m.ReadCard(context.Background(), "idcard0", func(id devices.Identity) error {
		number = id.(*idcard.Identity).Number()
		return nil
	}); err != nil || number != idcardsim.CanaryResident {
		t.Fatalf("read on the found reader: %v", err)
	}

	sim, err := qrscansim.New(qrscan.SuffixCR)
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	if err := os.Symlink(sim.Path, filepath.Join(byID, "usb-Saoma_QR-20_0001-if00")); err != nil {
		t.Fatal(err)
	}
	p = rec.WaitPeripherals(t, 5*time.Second, and(inventory("receipt0", "idcard0", "qr0"), is("qr0", true, devices.StateOK)))
	if d, _ := devicestest.Find(p, "qr0"); d.Profile != "saoma-qr20-serial" {
		t.Fatalf("found scanner: %+v", d)
	}

	bus.Unplug(readerAt)
	mu.Lock()
	reader.Unplug()
	mu.Unlock()
	rec.WaitPeripherals(t, 5*time.Second, and(inventory("receipt0", "idcard0", "qr0"), is("idcard0", false, devices.StateFault)))
	plugReader()
	rec.WaitPeripherals(t, 5*time.Second, and(inventory("receipt0", "idcard0", "qr0"), is("idcard0", true, devices.StateOK)))
}
