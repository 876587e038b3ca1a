package transporttest

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/kioskfleet/kioskfleet/drivers/transport"
)

// FakeBus is a transport.USBBus whose devices the test plugs in and pulls out: there is no USB
// bus on the build machines. Each device is a function called at every Open that returns the
// opened device (a FakeUSB, a usbprintertest printer, ...).
type FakeBus struct {
	mu   sync.Mutex
	next int // last address handed out on bus 1
	devs map[transport.USBID]func() transport.USBDevice
}

var _ transport.USBBus = (*FakeBus)(nil)

// NewFakeBus returns an empty bus.
func NewFakeBus() *FakeBus {
	return &FakeBus{devs: map[transport.USBID]func() transport.USBDevice{}}
}

// Plug attaches a vendor:product device at the next address of bus 1, as a real bus numbers a
// device each time it is plugged in, and returns where it is.
func (b *FakeBus) Plug(vendor, product uint16, open func() transport.USBDevice) transport.USBID {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.next++
	id := transport.USBID{Vendor: vendor, Product: product, Bus: 1, Address: b.next}
	b.devs[id] = open
	return id
}

// Unplug detaches the device at id; devices already opened are the test's to unplug.
func (b *FakeBus) Unplug(id transport.USBID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.devs, id)
}

// List returns the attached devices by bus and address.
func (b *FakeBus) List(ctx context.Context) ([]transport.USBID, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []transport.USBID
	for id := range b.devs {
		out = append(out, id)
	}
	slices.SortFunc(out, func(x, y transport.USBID) int {
		return cmp.Or(cmp.Compare(x.Bus, y.Bus), cmp.Compare(x.Address, y.Address))
	})
	return out, nil
}

// Open opens the first device (by address) with id's vendor and product and, where they are not
// zero, its bus and address, as transport.GoUSB does. Without one it fails with
// transport.ErrClosed.
func (b *FakeBus) Open(ctx context.Context, id transport.USBID, iface int) (transport.USBDevice, error) {
	ids, _ := b.List(ctx)
	for _, d := range ids {
		if d.Vendor == id.Vendor && d.Product == id.Product && (id.Bus == 0 || d.Bus == id.Bus) && (id.Address == 0 || d.Address == id.Address) {
			b.mu.Lock()
			open := b.devs[d]
			b.mu.Unlock()
			if open != nil {
				return open(), nil
			}
		}
	}
	return nil, fmt.Errorf("transporttest: open usb %04x:%04x: no such device: %w", id.Vendor, id.Product, transport.ErrClosed)
}

// Close does nothing: it is there to stand in for transport.GoUSB.
func (b *FakeBus) Close() error { return nil }
