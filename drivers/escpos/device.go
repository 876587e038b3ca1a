package escpos

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/kioskfleet/kioskfleet/drivers/transport"
)

// Link is the byte path to a printer. Recv blocks until at least one byte arrived or ctx is
// done; it then returns an error wrapping transport.ErrTimeout. A device that went away gives
// errors wrapping transport.ErrClosed.
type Link interface {
	Send(ctx context.Context, p []byte) error
	Recv(ctx context.Context, p []byte) (int, error)
}

// Printer prints a job. It is all a caller needs; the rest are optional capabilities found by
// type assertion.
type Printer interface {
	Print(ctx context.Context, job *Job) error
}

// StatusReader reads the printer's state.
type StatusReader interface {
	Status(ctx context.Context) (Status, error)
}

// Cutter cuts the paper.
type Cutter interface {
	Cut(ctx context.Context, partial bool) error
}

// QRPrinter prints a QR code on its own.
type QRPrinter interface {
	PrintQR(ctx context.Context, data []byte) error
}

// ReadyChecker is an optional Link capability: an out-of-band readiness check such as the USB
// printer class GET_PORT_STATUS. Print uses it for printers that cannot answer DLE EOT.
type ReadyChecker interface {
	CheckReady(ctx context.Context) error
}

var (
	_ Printer      = (*Device)(nil)
	_ StatusReader = (*Device)(nil)
	_ Cutter       = (*Device)(nil)
	_ QRPrinter    = (*Device)(nil)
)

// Options tune a Device. Zero values mean defaults.
type Options struct {
	StatusTimeout    time.Duration // deadline of one status query; default 1 s
	NoRealtimeStatus bool          // profile quirk: the printer ignores DLE EOT, print blind
}

// Device is an ESC/POS printer on a Link. Its methods are safe for concurrent use; they are
// serialised so that replies are never interleaved.
type Device struct {
	link Link
	log  *slog.Logger
	opt  Options

	mu      sync.Mutex
	pending []byte   // bytes of a partial ASB message
	asb     []Status // ASB messages received while waiting for something else
	bad     int      // malformed bytes dropped
}

// New returns a Device on link. log must not be nil.
func New(link Link, log *slog.Logger, opt Options) *Device {
	if opt.StatusTimeout <= 0 {
		opt.StatusTimeout = time.Second
	}
	return &Device{link: link, log: log, opt: opt}
}

// Status queries DLE EOT 1..4 and returns the combined state. Each query has its own deadline
// (Options.StatusTimeout, or ctx's if sooner).
func (d *Device) Status(ctx context.Context) (Status, error) {
	if d.opt.NoRealtimeStatus {
		return Status{}, ErrNoStatus
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.status(ctx)
}

func (d *Device) status(ctx context.Context) (Status, error) {
	var s Status
	for k := StatusPrinter; k <= StatusPaper; k++ {
		qctx, cancel := context.WithTimeout(ctx, d.opt.StatusTimeout)
		b, err := d.query(qctx, k)
		cancel()
		if err != nil {
			return Status{}, fmt.Errorf("escpos: status DLE EOT %d: %w", k, err)
		}
		if err := ApplyRealtime(&s, k, b); err != nil {
			return Status{}, err
		}
	}
	return s, nil
}

// query sends DLE EOT k and returns its one-byte reply, setting aside ASB messages that arrive
// in between.
func (d *Device) query(ctx context.Context, k StatusKind) (byte, error) {
	if err := d.link.Send(ctx, []byte{DLE, EOT, byte(k)}); err != nil {
		return 0, err
	}
	for {
		b, err := d.next(ctx)
		if err != nil {
			return 0, err
		}
		if b != nil {
			return *b, nil
		}
	}
}

// next reads one byte. A real-time status byte is returned; ASB bytes are assembled into d.asb
// and nil is returned; anything else is counted, logged and dropped.
func (d *Device) next(ctx context.Context) (*byte, error) {
	var p [1]byte
	if _, err := d.link.Recv(ctx, p[:]); err != nil {
		return nil, err
	}
	b := p[0]
	switch {
	case len(d.pending) > 0:
		if b&0x90 != 0 { // not an ASB continuation byte: resynchronise
			d.drop(d.pending)
			d.pending = nil
			return d.classify(b), nil
		}
		d.pending = append(d.pending, b)
		if len(d.pending) == 4 {
			s, err := ParseASB(d.pending)
			d.pending = nil
			if err != nil {
				d.drop(nil)
				return nil, nil
			}
			d.asb = append(d.asb, s)
		}
		return nil, nil
	default:
		return d.classify(b), nil
	}
}

func (d *Device) classify(b byte) *byte {
	switch {
	case IsRealtimeByte(b):
		return &b
	case IsASBHeader(b):
		d.pending = append(d.pending[:0], b)
	default:
		d.drop([]byte{b})
	}
	return nil
}

func (d *Device) drop(b []byte) {
	d.bad++
	d.log.Warn("escpos: dropped unexpected bytes from printer", "bytes", fmt.Sprintf("% x", b), "dropped_total", d.bad)
}

// Dropped is how many malformed byte runs were dropped so far.
func (d *Device) Dropped() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.bad
}

// EnableASB turns on Automatic Status Back (GS a n) for drawer, online, error and paper changes.
// The printer then sends a 4-byte message on every change (and one immediately); read them with
// NextASB.
func (d *Device) EnableASB(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.link.Send(ctx, []byte{GS, 'a', 0x0F})
}

// NextASB returns the next Automatic Status Back message, waiting until ctx is done.
func (d *Device) NextASB(ctx context.Context) (Status, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for len(d.asb) == 0 {
		b, err := d.next(ctx)
		if err != nil {
			return Status{}, err
		}
		if b != nil {
			d.drop([]byte{*b}) // a late real-time reply
		}
	}
	s := d.asb[0]
	d.asb = d.asb[1:]
	return s, nil
}

// Print checks the printer's state (DLE EOT, or the link's ReadyChecker when the printer has no
// real-time status) and sends the job if it can print; otherwise it returns a *StatusError (or
// the ReadyChecker's error) and sends nothing. A job that failed to build is refused with its build error.
func (d *Device) Print(ctx context.Context, job *Job) error {
	b, err := job.Bytes()
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.opt.NoRealtimeStatus {
		if rc, ok := d.link.(ReadyChecker); ok {
			if err := rc.CheckReady(ctx); err != nil {
				return err
			}
		}
	} else {
		s, err := d.status(ctx)
		if err != nil {
			return err
		}
		if err := s.Err(); err != nil {
			return err
		}
		if s.PaperNearEnd {
			d.log.Warn("escpos: paper near end")
		}
	}
	if err := d.link.Send(ctx, b); err != nil {
		return fmt.Errorf("escpos: send job: %w", err)
	}
	return nil
}

// Cut feeds and cuts.
func (d *Device) Cut(ctx context.Context, partial bool) error {
	return d.Print(ctx, NewJob().Cut(partial))
}

// PrintQR prints data as a QR code (module 6, level M) followed by a line feed.
func (d *Device) PrintQR(ctx context.Context, data []byte) error {
	return d.Print(ctx, NewJob().QR(data, 6, QRLevelM).Feed(1))
}

// SerialLink adapts a serial port to a Link.
type SerialLink struct {
	Port transport.Port
	wmu  sync.Mutex
}

var _ Link = (*SerialLink)(nil)

// Send writes p. The port's Write has no deadline, so ctx is only checked before writing.
func (l *SerialLink) Send(ctx context.Context, p []byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", transport.ErrTimeout, err)
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	for len(p) > 0 {
		n, err := l.Port.Write(p)
		if err != nil {
			return fmt.Errorf("%w: write: %w", transport.ErrClosed, err)
		}
		p = p[n:]
	}
	return nil
}

// Recv reads at least one byte, polling the port in slices of at most 50 ms until ctx is done.
func (l *SerialLink) Recv(ctx context.Context, p []byte) (int, error) {
	for {
		wait := 50 * time.Millisecond
		if dl, ok := ctx.Deadline(); ok {
			if r := time.Until(dl); r < wait {
				wait = r
			}
		}
		if wait <= 0 || ctx.Err() != nil {
			return 0, fmt.Errorf("%w: no reply from printer", transport.ErrTimeout)
		}
		if err := l.Port.SetReadTimeout(wait); err != nil {
			return 0, fmt.Errorf("%w: %w", transport.ErrClosed, err)
		}
		n, err := l.Port.Read(p)
		if n > 0 {
			return n, nil
		}
		if err != nil {
			return 0, fmt.Errorf("%w: read: %w", transport.ErrClosed, err)
		}
	}
}
