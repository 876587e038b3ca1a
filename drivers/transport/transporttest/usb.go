package transporttest

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/kioskfleet/kioskfleet/drivers/transport"
)

// USBHandler is the device side of a FakeUSB. It is called with every bulk OUT transfer, in order,
// and answers through reply, which queues data for the host's next BulkIn on an IN endpoint.
// reply may be called later from another goroutine (a slow device); after Unplug or Close it
// drops the data.
type USBHandler func(ep uint8, data []byte, reply func(inEP uint8, data []byte))

// FakeUSB is a transport.USBDevice whose bulk transfers go to a simulator function instead of a
// bus. Each IN endpoint is a byte stream: a BulkIn returns what is queued (at most len(p)) and
// waits, bounded by its context, when nothing is.
type FakeUSB struct {
	handle USBHandler
	// OnControl, if set, answers control transfers; otherwise they fail as a STALL would.
	OnControl func(requestType, request uint8, value, index uint16, p []byte) (int, error)

	mu     sync.Mutex
	in     map[uint8][]byte
	signal chan struct{} // closed and replaced whenever data is queued or the device goes away
	gone   bool
	outs   int
}

var _ transport.USBDevice = (*FakeUSB)(nil)

// NewFakeUSB returns a fake device served by h.
func NewFakeUSB(h USBHandler) *FakeUSB {
	return &FakeUSB{handle: h, in: map[uint8][]byte{}, signal: make(chan struct{})}
}

// BulkOut hands p to the handler.
func (f *FakeUSB) BulkOut(ctx context.Context, ep uint8, p []byte) (int, error) {
	if ep&0x80 != 0 {
		return 0, fmt.Errorf("transporttest: bulk out on IN endpoint %#02x", ep)
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("transporttest: bulk out %#02x: %w", ep, transport.ErrTimeout)
	}
	f.mu.Lock()
	gone := f.gone
	f.outs++
	f.mu.Unlock()
	if gone {
		return 0, fmt.Errorf("transporttest: bulk out %#02x: %w", ep, transport.ErrClosed)
	}
	f.handle(ep, append([]byte(nil), p...), f.queue)
	return len(p), nil
}

func (f *FakeUSB) queue(ep uint8, data []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gone {
		return
	}
	f.in[ep] = append(f.in[ep], data...)
	close(f.signal)
	f.signal = make(chan struct{})
}

// BulkIn returns queued data for ep, waiting until some arrives, the context ends
// (transport.ErrTimeout) or the device is unplugged (transport.ErrClosed).
func (f *FakeUSB) BulkIn(ctx context.Context, ep uint8, p []byte) (int, error) {
	if ep&0x80 == 0 {
		return 0, fmt.Errorf("transporttest: bulk in on OUT endpoint %#02x", ep)
	}
	for {
		f.mu.Lock()
		if f.gone {
			f.mu.Unlock()
			return 0, fmt.Errorf("transporttest: bulk in %#02x: %w", ep, transport.ErrClosed)
		}
		if q := f.in[ep]; len(q) > 0 {
			n := copy(p, q)
			f.in[ep] = q[n:]
			f.mu.Unlock()
			return n, nil
		}
		sig := f.signal
		f.mu.Unlock()
		select {
		case <-sig:
		case <-ctx.Done():
			return 0, fmt.Errorf("transporttest: bulk in %#02x: %w (%w)", ep, transport.ErrTimeout, ctx.Err())
		}
	}
}

// Control forwards to OnControl.
func (f *FakeUSB) Control(ctx context.Context, requestType, request uint8, value, index uint16, p []byte) (int, error) {
	f.mu.Lock()
	gone := f.gone
	f.mu.Unlock()
	switch {
	case gone:
		return 0, fmt.Errorf("transporttest: control %#02x: %w", request, transport.ErrClosed)
	case ctx.Err() != nil:
		return 0, fmt.Errorf("transporttest: control %#02x: %w", request, transport.ErrTimeout)
	case f.OnControl == nil:
		return 0, errors.New("transporttest: control transfer stalled (no handler)")
	}
	return f.OnControl(requestType, request, value, index, p)
}

// Unplug makes every pending and later transfer fail with transport.ErrClosed and drops queued data.
func (f *FakeUSB) Unplug() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.gone {
		f.gone = true
		f.in = map[uint8][]byte{}
		close(f.signal)
	}
}

// Close is Unplug.
func (f *FakeUSB) Close() error { f.Unplug(); return nil }

// BulkOuts counts the bulk OUT transfers so far.
func (f *FakeUSB) BulkOuts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.outs
}
