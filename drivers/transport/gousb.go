//go:build cgo

package transport

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/gousb"
)

// GoUSB is a USBBus over libusb (github.com/google/gousb, cgo). Close it after every device it
// opened is closed.
type GoUSB struct {
	ctx *gousb.Context
}

var (
	_ USBBus    = (*GoUSB)(nil)
	_ USBDevice = (*goUSBDevice)(nil)
)

// NewGoUSB initialises libusb. gousb panics when libusb cannot initialise (no usbfs in a
// container, for one); that becomes an error here.
func NewGoUSB() (g *GoUSB, err error) {
	defer func() {
		if p := recover(); p != nil {
			g, err = nil, fmt.Errorf("transport: libusb init: %v", p)
		}
	}()
	return &GoUSB{ctx: gousb.NewContext()}, nil
}

// Close releases libusb.
func (g *GoUSB) Close() error { return g.ctx.Close() }

// List returns the devices on every bus without opening them (Serial stays empty: reading it
// needs an open device).
func (g *GoUSB) List(ctx context.Context) ([]USBID, error) {
	var ids []USBID
	_, err := g.ctx.OpenDevices(func(d *gousb.DeviceDesc) bool {
		ids = append(ids, USBID{Vendor: uint16(d.Vendor), Product: uint16(d.Product), Bus: d.Bus, Address: d.Address})
		return false
	})
	if err != nil {
		return ids, fmt.Errorf("transport: list usb devices: %w", err)
	}
	return ids, nil
}

// Open opens the device id (matched on vendor, product and, where non-zero, bus and address),
// detaches any kernel driver and claims interface iface (alternate setting 0) of the active
// configuration.
func (g *GoUSB) Open(ctx context.Context, id USBID, iface int) (USBDevice, error) {
	devs, err := g.ctx.OpenDevices(func(d *gousb.DeviceDesc) bool {
		return uint16(d.Vendor) == id.Vendor && uint16(d.Product) == id.Product &&
			(id.Bus == 0 || d.Bus == id.Bus) && (id.Address == 0 || d.Address == id.Address)
	})
	if len(devs) == 0 {
		if err == nil {
			err = ErrClosed
		}
		return nil, fmt.Errorf("transport: open usb %04x:%04x: no such device: %w", id.Vendor, id.Product, err)
	}
	for _, d := range devs[1:] {
		d.Close()
	}
	dev := devs[0]
	fail := func(step string, err error) (USBDevice, error) {
		dev.Close()
		return nil, fmt.Errorf("transport: open usb %s: %s: %w", dev, step, err)
	}
	if err := dev.SetAutoDetach(true); err != nil {
		return fail("auto-detach", err)
	}
	num, err := dev.ActiveConfigNum()
	if err != nil {
		return fail("active config", err)
	}
	cfg, err := dev.Config(num)
	if err != nil {
		return fail("claim config", err)
	}
	intf, err := cfg.Interface(iface, 0)
	if err != nil {
		cfg.Close()
		return fail("claim interface", err)
	}
	return &goUSBDevice{dev: dev, cfg: cfg, intf: intf, in: map[uint8]*gousb.InEndpoint{}, out: map[uint8]*gousb.OutEndpoint{}}, nil
}

type goUSBDevice struct {
	dev  *gousb.Device
	cfg  *gousb.Config
	intf *gousb.Interface

	mu  sync.Mutex // guards the endpoint caches and dev.ControlTimeout
	in  map[uint8]*gousb.InEndpoint
	out map[uint8]*gousb.OutEndpoint
}

func (d *goUSBDevice) BulkOut(ctx context.Context, ep uint8, p []byte) (int, error) {
	d.mu.Lock()
	e, ok := d.out[ep]
	if !ok {
		var err error
		if e, err = d.intf.OutEndpoint(int(ep & 0x0f)); err != nil {
			d.mu.Unlock()
			return 0, fmt.Errorf("transport: usb endpoint %#02x: %w", ep, err)
		}
		d.out[ep] = e
	}
	d.mu.Unlock()
	n, err := e.WriteContext(ctx, p)
	return n, usbErr(ctx, "bulk out", ep, err)
}

func (d *goUSBDevice) BulkIn(ctx context.Context, ep uint8, p []byte) (int, error) {
	d.mu.Lock()
	e, ok := d.in[ep]
	if !ok {
		var err error
		if e, err = d.intf.InEndpoint(int(ep & 0x0f)); err != nil {
			d.mu.Unlock()
			return 0, fmt.Errorf("transport: usb endpoint %#02x: %w", ep, err)
		}
		d.in[ep] = e
	}
	d.mu.Unlock()
	n, err := e.ReadContext(ctx, p)
	return n, usbErr(ctx, "bulk in", ep, err)
}

// Control performs a control transfer; libusb's control call is synchronous, so the context's
// deadline becomes its timeout (default one second).
func (d *goUSBDevice) Control(ctx context.Context, requestType, request uint8, value, index uint16, p []byte) (int, error) {
	timeout := time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	if timeout <= 0 || ctx.Err() != nil {
		return 0, fmt.Errorf("transport: usb control %#02x: %w", request, ErrTimeout)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dev.ControlTimeout = timeout
	n, err := d.dev.Control(requestType, request, value, index, p)
	return n, usbErr(ctx, "control", request, err)
}

func (d *goUSBDevice) Close() error {
	d.intf.Close()
	return errors.Join(d.cfg.Close(), d.dev.Close())
}

func usbErr(ctx context.Context, op string, ep uint8, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, gousb.ErrorTimeout), errors.Is(err, gousb.TransferTimedOut),
		errors.Is(err, gousb.TransferCancelled) && ctx.Err() != nil:
		return fmt.Errorf("transport: usb %s %#02x: %w", op, ep, ErrTimeout)
	case errors.Is(err, gousb.ErrorNoDevice), errors.Is(err, gousb.TransferNoDevice):
		return fmt.Errorf("transport: usb %s %#02x: %w", op, ep, ErrClosed)
	}
	return fmt.Errorf("transport: usb %s %#02x: %w", op, ep, err)
}
