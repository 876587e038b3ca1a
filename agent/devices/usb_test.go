package devices_test

import (
	"context"
	"fmt"
	"log/slog"
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
	"github.com/kioskfleet/kioskfleet/drivers/transport"
	"github.com/kioskfleet/kioskfleet/drivers/transport/transporttest"
	"github.com/kioskfleet/kioskfleet/drivers/usbprinter/usbprintertest"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// fakeBus is a USB bus with pluggable fake devices (there is no USB bus on the build machines).
type fakeBus struct {
	mu      sync.Mutex
	devices map[[2]uint16]func() transport.USBDevice // nil entry: unplugged
}

func (b *fakeBus) List(context.Context) ([]transport.USBID, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []transport.USBID
	for k, f := range b.devices {
		if f != nil {
			out = append(out, transport.USBID{Vendor: k[0], Product: k[1]})
		}
	}
	return out, nil
}

func (b *fakeBus) Open(_ context.Context, id transport.USBID, _ int) (transport.USBDevice, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := [2]uint16{id.Vendor, id.Product}
	f := b.devices[k]
	if f == nil {
		return nil, fmt.Errorf("usb %04x:%04x: %w", id.Vendor, id.Product, transport.ErrClosed)
	}
	return f(), nil
}

// The profile's USB settings reach the drivers: the split-endpoint GA 467 reader reads the canary
// card, the USB printer-class receipt printer reports paper out, and unplugging is noticed.
func TestUSBDevices(t *testing.T) {
	card := idcardsim.New(idcardsim.Resident())
	printer := usbprintertest.New("MFG:Xinye;MDL:XP-T80;CMD:ESC/POS;")
	bus := &fakeBus{devices: map[[2]uint16]func() transport.USBDevice{
		{0x0400, 0xc35a}: func() transport.USBDevice { return transporttest.NewFakeUSB(card.USB(idcardsim.USBLayout)) },
		{0x0fe6, 0x811e}: func() transport.USBDevice { return printer },
	}}
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

	bus.mu.Lock()
	bus.devices[[2]uint16{0x0fe6, 0x811e}] = nil
	bus.mu.Unlock()
	printer.Unplug()
	rec.WaitPeripherals(t, 5*time.Second, state("receipt0", false, devices.StateFault, devices.ReasonDisconnected))
}
