package idcard

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kioskfleet/kioskfleet/drivers/transport"
)

// Config tunes a Reader. Zero values take the defaults.
type Config struct {
	// Timeout bounds each exchange except card reads (default 1 s).
	Timeout time.Duration
	// ReadTimeout bounds a text/photo/fingerprint read (default 5 s).
	ReadTimeout time.Duration
	// Logger receives diagnostics (never card contents). Default: discard.
	Logger *slog.Logger
}

// USBLayout is how a USB reader's vendor bulk interface carries frames (a profile setting: it
// differs per model). With BodyOut zero the whole frame goes to HeaderOut; otherwise the 7-byte
// header goes to HeaderOut and the rest to BodyOut. Likewise for replies on HeaderIn / BodyIn.
type USBLayout struct {
	HeaderOut, BodyOut uint8
	HeaderIn, BodyIn   uint8
}

func (l USBLayout) validate() error {
	out := func(ep uint8) bool { return ep != 0 && ep&0x80 == 0 }
	in := func(ep uint8) bool { return ep&0x80 != 0 && ep != 0x80 }
	switch {
	case !out(l.HeaderOut) || (l.BodyOut != 0 && !out(l.BodyOut)):
		return fmt.Errorf("idcard: usb layout: OUT endpoints %#02x/%#02x must be 0x01..0x0f", l.HeaderOut, l.BodyOut)
	case !in(l.HeaderIn) || (l.BodyIn != 0 && !in(l.BodyIn)):
		return fmt.Errorf("idcard: usb layout: IN endpoints %#02x/%#02x must be 0x81..0x8f", l.HeaderIn, l.BodyIn)
	}
	return nil
}

// link moves frames over one transport.
type link interface {
	send(ctx context.Context, frame []byte) error
	// recv reads up to len(p) bytes of the reply's header (body false) or body. It may return
	// 0, nil when nothing arrived yet; the caller checks ctx.
	recv(ctx context.Context, p []byte, body bool) (int, error)
	// wipe zeroes any reply bytes the link still buffers.
	wipe()
}

// Stats counts what a Reader saw. Card contents are never counted or kept.
type Stats struct {
	Exchanges    uint64 // commands sent
	Timeouts     uint64 // exchanges without a complete reply in time
	BadFrames    uint64 // replies rejected (checksum, length, malformed read data)
	GarbageBytes uint64 // bytes skipped before a preamble
	Misreads     uint64 // card text that failed its checks (MisreadError)
}

// Reader talks to an ID-card reader's SAM. Its methods are safe for concurrent use; exchanges are
// serialised. Every exchange has a deadline (Config) and honours ctx.
type Reader struct {
	link link
	cfg  Config
	mu   sync.Mutex
	buf  []byte // reply buffer, zeroed after a card read

	exchanges, timeouts, badFrames, garbage, misreads atomic.Uint64
}

// NewSerialReader returns a Reader over a serial port (opened 8N1 at the reader's baud rate). The
// caller closes p.
func NewSerialReader(p transport.Port, cfg Config) *Reader {
	return newReader(&serialLink{p: p}, cfg)
}

// NewUSBReader returns a Reader over a USB vendor bulk interface. The caller closes d.
func NewUSBReader(d transport.USBDevice, l USBLayout, cfg Config) (*Reader, error) {
	if err := l.validate(); err != nil {
		return nil, err
	}
	return newReader(&usbLink{d: d, l: l, stage: make([]byte, usbStage)}, cfg), nil
}

func newReader(l link, cfg Config) *Reader {
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Second
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Reader{link: l, cfg: cfg, buf: make([]byte, 0, HeaderLen+MaxLen)}
}

// Stats returns the counters.
func (r *Reader) Stats() Stats {
	return Stats{r.exchanges.Load(), r.timeouts.Load(), r.badFrames.Load(), r.garbage.Load(), r.misreads.Load()}
}

// ResetSAM resets the security module (10 FF).
func (r *Reader) ResetSAM(ctx context.Context) error { return r.simple(ctx, CmdResetSAM) }

// SAMStatus checks the security module (11 FF); a broken SAM gives StatusSAMSelfTest.
func (r *Reader) SAMStatus(ctx context.Context) error { return r.simple(ctx, CmdSAMStatus) }

// FindCard looks for a card (20 01): nil if one is there, StatusNoCard if not.
func (r *Reader) FindCard(ctx context.Context) error { return r.simple(ctx, CmdFindCard) }

// SelectCard selects the card found (20 02).
func (r *Reader) SelectCard(ctx context.Context) error { return r.simple(ctx, CmdSelectCard) }

func (r *Reader) simple(ctx context.Context, c Command) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.do(ctx, c, r.cfg.Timeout, nil)
}

// SAMID is the security module's 16-byte identity (not personal data).
type SAMID [16]byte

func (s SAMID) String() string { return fmt.Sprintf("%X", s[:]) }

// SAMID reads the security module's ID (12 FF).
func (r *Reader) SAMID(ctx context.Context) (SAMID, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var id SAMID
	err := r.do(ctx, CmdSAMID, r.cfg.Timeout, func(d []byte) error {
		if len(d) < len(id) {
			return fmt.Errorf("%w: SAM ID has %d bytes, want %d", ErrTruncated, len(d), len(id))
		}
		copy(id[:], d)
		return nil
	})
	return id, err
}

// ReadOptions selects what ReadCard reads besides text and photo.
type ReadOptions struct {
	Fingerprint     bool // 30 10 instead of 30 01
	AppendedAddress bool // then 30 03; "no content" leaves the field empty
}

// ReadCard finds, selects and reads the card. It returns StatusNoCard if there is none, a
// *MisreadError if the text fails its checks, or another Status the reader reports.
func (r *Reader) ReadCard(ctx context.Context, opt ReadOptions) (*Identity, error) {
	// One lock for the whole sequence: a find card from Watch between select and read would
	// reset the card.
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.do(ctx, CmdFindCard, r.cfg.Timeout, nil); err != nil {
		return nil, err
	}
	if err := r.do(ctx, CmdSelectCard, r.cfg.Timeout, nil); err != nil {
		return nil, err
	}
	cmd := CmdReadText
	if opt.Fingerprint {
		cmd = CmdReadFingerprint
	}
	var id *Identity
	err := r.do(ctx, cmd, r.cfg.ReadTimeout, func(d []byte) (err error) {
		id, err = ParseRead(d, opt.Fingerprint)
		return err
	})
	if err != nil {
		return nil, err
	}
	if opt.AppendedAddress {
		err := r.do(ctx, CmdReadNewAddress, r.cfg.ReadTimeout, func(d []byte) error {
			id.appended = append([]byte(nil), d...)
			return nil
		})
		if err != nil && !errors.Is(err, StatusNoContent) {
			id.Wipe()
			return nil, err
		}
	}
	r.cfg.Logger.DebugContext(ctx, "idcard: card read", "identity", id)
	return id, nil
}

// ParseRead splits the data of a 30 01 / 30 10 reply: text length, photo length, [fingerprint
// length,] text, photo[, fingerprint] (GA 467; lengths big-endian).
func ParseRead(d []byte, fingerprint bool) (*Identity, error) {
	hdr := 4
	if fingerprint {
		hdr = 6
	}
	if len(d) < hdr {
		return nil, fmt.Errorf("%w: read reply of %d bytes has no length fields", ErrTruncated, len(d))
	}
	tl, pl := int(binary.BigEndian.Uint16(d)), int(binary.BigEndian.Uint16(d[2:]))
	fl := 0
	if fingerprint {
		fl = int(binary.BigEndian.Uint16(d[4:]))
	}
	if tl != TextLen {
		return nil, fmt.Errorf("%w: text length field %d, want %d", ErrTextBlock, tl, TextLen)
	}
	if got, want := len(d)-hdr, tl+pl+fl; got != want {
		return nil, fmt.Errorf("%w: read reply carries %d bytes after its length fields, they announce %d", ErrTruncated, got, want)
	}
	id, err := DecodeText(d[hdr : hdr+tl])
	if err != nil {
		return nil, err
	}
	id.photo = append([]byte(nil), d[hdr+tl:hdr+tl+pl]...)
	if fl > 0 {
		id.fingerprint = append([]byte(nil), d[hdr+tl+pl:]...)
	}
	return id, nil
}

// do runs one exchange: send c, read one reply within timeout, check its status against the
// command's success status and hand its data to use (which must copy what it keeps). r.mu is held.
func (r *Reader) do(ctx context.Context, c Command, timeout time.Duration, use func([]byte) error) error {
	r.exchanges.Add(1)
	start := time.Now()
	xctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	defer func() { clear(r.buf[:cap(r.buf)]); r.link.wipe() }() // replies may carry card data

	var frame [10]byte
	if err := r.link.send(xctx, AppendCommand(frame[:0], c, nil)); err != nil {
		return r.fail(ctx, c, timeout, err)
	}
	body, err := r.recv(xctx)
	if err != nil {
		return r.fail(ctx, c, timeout, err)
	}
	rep, err := ParseReply(body)
	if err != nil {
		r.badFrames.Add(1)
		return fmt.Errorf("idcard: %s: %w", c, err)
	}
	r.cfg.Logger.DebugContext(ctx, "idcard: exchange", "command", c.String(), "status", fmt.Sprintf("%02X", byte(rep.Status)), "took", time.Since(start))
	if rep.Status != c.success() {
		return fmt.Errorf("idcard: %s: %w", c, rep.Status)
	}
	if use != nil {
		if err := use(rep.Data); err != nil {
			if errors.Is(err, ErrMisread) {
				r.misreads.Add(1)
			} else {
				r.badFrames.Add(1)
			}
			return fmt.Errorf("idcard: %s: %w", c, err)
		}
	}
	return nil
}

func (r *Reader) fail(ctx context.Context, c Command, timeout time.Duration, err error) error {
	switch {
	case errors.Is(err, ErrChecksum), errors.Is(err, ErrLength):
		r.badFrames.Add(1)
	case ctx.Err() != nil:
		return fmt.Errorf("idcard: %s: %w", c, ctx.Err())
	case errors.Is(err, transport.ErrTimeout) || errors.Is(err, context.DeadlineExceeded):
		r.timeouts.Add(1)
		r.cfg.Logger.Warn("idcard: no reply", "command", c.String(), "timeout", timeout)
		return fmt.Errorf("idcard: %s: no complete reply within %v: %w", c, timeout, transport.ErrTimeout)
	}
	r.cfg.Logger.Warn("idcard: exchange failed", "command", c.String(), "err", err)
	return fmt.Errorf("idcard: %s: %w", c, err)
}

// recv reads one frame, skipping garbage before the preamble, and returns its body.
func (r *Reader) recv(ctx context.Context) ([]byte, error) {
	b := r.buf[:0]
	for {
		start, end, err := Split(b)
		r.garbage.Add(uint64(start))
		if err != nil {
			return nil, err
		}
		if end > 0 {
			r.buf = b
			return b[start+HeaderLen : end-1], nil
		}
		b = append(b[:0], b[start:]...)
		need, body := HeaderLen-len(b), false
		if need <= 0 {
			need, body = HeaderLen+int(binary.BigEndian.Uint16(b[5:]))-len(b), true
		}
		if cap(b)-len(b) < need {
			b = append(b, make([]byte, need)...)[:len(b)]
		}
		n, err := r.link.recv(ctx, b[len(b):len(b)+need], body)
		b = b[:len(b)+n]
		r.buf = b
		if err != nil {
			return nil, err
		}
		if n == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
}

// serialLink is a byte stream: header and body arrive the same way.
type serialLink struct {
	p transport.Port
}

// pollSlice bounds one blocking Read so that a cancelled context is noticed promptly.
const pollSlice = 50 * time.Millisecond

func (s *serialLink) send(ctx context.Context, frame []byte) error {
	// Drop whatever a previous, timed-out exchange left behind.
	if err := s.p.ResetInputBuffer(); err != nil {
		return err
	}
	_, err := s.p.Write(frame)
	return err
}

func (s *serialLink) wipe() {}

func (s *serialLink) recv(ctx context.Context, p []byte, _ bool) (int, error) {
	wait := pollSlice
	if dl, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(dl))
	}
	if wait <= 0 || ctx.Err() != nil {
		return 0, nil
	}
	if err := s.p.SetReadTimeout(wait); err != nil {
		return 0, err
	}
	return s.p.Read(p)
}

// usbStage is the bulk IN request size: a multiple of every max packet size, larger than any
// frame, so that a device sending a whole frame in one transfer never overflows it.
const usbStage = 4608

// usbLink splits frames over bulk endpoints as the layout says.
type usbLink struct {
	d     transport.USBDevice
	l     USBLayout
	stage []byte // last bulk IN transfer
	rest  []byte // its unread part
}

func (u *usbLink) wipe() {
	clear(u.stage)
	u.rest = nil
}

func (u *usbLink) send(ctx context.Context, frame []byte) error {
	if u.l.BodyOut == 0 {
		_, err := u.d.BulkOut(ctx, u.l.HeaderOut, frame)
		return err
	}
	if _, err := u.d.BulkOut(ctx, u.l.HeaderOut, frame[:HeaderLen]); err != nil {
		return err
	}
	_, err := u.d.BulkOut(ctx, u.l.BodyOut, frame[HeaderLen:])
	return err
}

func (u *usbLink) recv(ctx context.Context, p []byte, body bool) (int, error) {
	ep := u.l.HeaderIn
	if body && u.l.BodyIn != 0 {
		ep = u.l.BodyIn
	}
	if len(u.rest) == 0 {
		n, err := u.d.BulkIn(ctx, ep, u.stage)
		if err != nil {
			return 0, err
		}
		u.rest = u.stage[:n]
	}
	n := copy(p, u.rest)
	u.rest = u.rest[n:]
	return n, nil
}
