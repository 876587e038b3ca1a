// Package usbprintertest provides a fake USB printer-class device (a transport.USBDevice) backed
// by the ESC/POS simulator: bulk OUT feeds the simulator, bulk IN returns its replies, and the
// class requests answer from its state. There is no USB bus on the build machines, so this is how
// drivers/usbprinter and drivers/escpos-over-USB are tested.
package usbprintertest

import (
	"context"
	"fmt"
	"sync"

	"github.com/kioskfleet/kioskfleet/drivers/escpos/escpossim"
	"github.com/kioskfleet/kioskfleet/drivers/transport"
	"github.com/kioskfleet/kioskfleet/drivers/usbprinter"
)

// Endpoints of the fake.
const (
	EPOut = 0x01
	EPIn  = 0x82
)

// Fake is a bidirectional USB ESC/POS printer.
type Fake struct {
	*escpossim.Sim
	DeviceID string // the GET_DEVICE_ID body

	mu       sync.Mutex
	in       []byte
	signal   chan struct{}
	unplug   bool
	resets   int
	controls []Control
}

// Control is one recorded control request.
type Control struct {
	RequestType, Request uint8
	Value, Index         uint16
}

var _ transport.USBDevice = (*Fake)(nil)

// New returns a fake printer reporting the given device ID string.
func New(deviceID string) *Fake {
	f := &Fake{DeviceID: deviceID, signal: make(chan struct{}, 1)}
	f.Sim = escpossim.New(func(b []byte) {
		f.mu.Lock()
		f.in = append(f.in, b...)
		f.mu.Unlock()
		select {
		case f.signal <- struct{}{}:
		default:
		}
	})
	return f
}

// Unplug makes every later call fail with transport.ErrClosed.
func (f *Fake) Unplug() {
	f.mu.Lock()
	f.unplug = true
	f.mu.Unlock()
	select {
	case f.signal <- struct{}{}:
	default:
	}
}

// Resets is how many SOFT_RESET requests arrived.
func (f *Fake) Resets() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.resets
}

// Controls are the control requests received so far.
func (f *Fake) Controls() []Control {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Control(nil), f.controls...)
}

func (f *Fake) closed() error {
	if f.unplug {
		return fmt.Errorf("usbprintertest: %w: device unplugged", transport.ErrClosed)
	}
	return nil
}

// BulkOut feeds the simulator.
func (f *Fake) BulkOut(ctx context.Context, ep uint8, p []byte) (int, error) {
	f.mu.Lock()
	err := f.closed()
	f.mu.Unlock()
	if err != nil {
		return 0, err
	}
	if ep != EPOut {
		return 0, fmt.Errorf("usbprintertest: bulk out on endpoint %#x, want %#x", ep, EPOut)
	}
	return f.Sim.Write(p)
}

// BulkIn returns the simulator's replies, waiting until ctx is done.
func (f *Fake) BulkIn(ctx context.Context, ep uint8, p []byte) (int, error) {
	if ep != EPIn {
		return 0, fmt.Errorf("usbprintertest: bulk in on endpoint %#x, want %#x", ep, EPIn)
	}
	for {
		f.mu.Lock()
		if err := f.closed(); err != nil {
			f.mu.Unlock()
			return 0, err
		}
		if len(f.in) > 0 {
			n := copy(p, f.in)
			f.in = f.in[n:]
			f.mu.Unlock()
			return n, nil
		}
		f.mu.Unlock()
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("%w: bulk in: %w", transport.ErrTimeout, ctx.Err())
		case <-f.signal:
		}
	}
}

// Control answers the printer class requests.
func (f *Fake) Control(ctx context.Context, rt, req uint8, value, index uint16, p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.closed(); err != nil {
		return 0, err
	}
	f.controls = append(f.controls, Control{rt, req, value, index})
	switch {
	case rt == 0xA1 && req == usbprinter.ReqGetDeviceID:
		return copy(p, usbprinter.EncodeDeviceID(f.DeviceID)), nil
	case rt == 0xA1 && req == usbprinter.ReqGetPortStatus:
		st := f.Sim.Status()
		ps := usbprinter.PortStatus(0)
		if !st.Error && !st.CoverOpen {
			ps |= usbprinter.PortNoError
		}
		if !st.Offline {
			ps |= usbprinter.PortSelected
		}
		if st.PaperOut {
			ps |= usbprinter.PortPaperEmpty
		}
		if len(p) < 1 {
			return 0, fmt.Errorf("usbprintertest: GET_PORT_STATUS buffer empty")
		}
		p[0] = byte(ps)
		return 1, nil
	case rt == 0x21 && req == usbprinter.ReqSoftReset:
		f.resets++
		f.in = nil
		return 0, nil
	}
	return 0, fmt.Errorf("usbprintertest: stall: request type %#x request %d", rt, req)
}

// Close does nothing; the fake has no resources.
func (f *Fake) Close() error { return nil }
