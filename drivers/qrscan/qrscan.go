// Package qrscan reads QR/barcode scanners that present themselves as serial ports (USB CDC or
// a USB-serial bridge): each scan is the code's text followed by a configurable suffix (CR, LF,
// CRLF) or, with no suffix, ended by a pause. Run owns the reading goroutine's work and the
// Scans channel; oversize input and binary garbage are rejected as counted ScanErrors, never
// passed on. Scanned content is never logged: codes can carry login tokens.
package qrscan

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/kioskfleet/kioskfleet/drivers/transport"
)

var (
	// ErrTooLong: a scan exceeded Config.MaxLength; it is dropped up to the next suffix.
	ErrTooLong = errors.New("qrscan: scan too long")
	// ErrBinary: a scan held control bytes or invalid UTF-8.
	ErrBinary = errors.New("qrscan: binary data in scan")
	// ErrIncomplete: a scan stopped before its suffix and stayed silent for Config.Idle.
	ErrIncomplete = errors.New("qrscan: scan without suffix")
	// ErrConfig: the configuration is invalid.
	ErrConfig = errors.New("qrscan: invalid configuration")
)

// Suffix is what ends a scan.
type Suffix string

// Suffixes, as spelled in firmware profiles.
const (
	SuffixCR   Suffix = "cr"
	SuffixLF   Suffix = "lf"
	SuffixCRLF Suffix = "crlf"
	SuffixNone Suffix = "none" // a scan ends when the line is idle for Config.Idle
)

// Bytes is the suffix's byte sequence (nil for SuffixNone).
func (s Suffix) Bytes() []byte {
	switch s {
	case SuffixCR:
		return []byte{'\r'}
	case SuffixLF:
		return []byte{'\n'}
	case SuffixCRLF:
		return []byte{'\r', '\n'}
	}
	return nil
}

// Config sets up a Scanner. Zero values mean defaults.
type Config struct {
	Suffix    Suffix        // default SuffixCR
	MaxLength int           // longest accepted scan in bytes; default 4096
	Idle      time.Duration // silence that ends a scan (SuffixNone) or abandons a partial one; default 100 ms (none) / 1 s
}

// Scan is one event: a code that was read, or a rejected input (Err set, Data empty).
type Scan struct {
	Data string
	At   time.Time
	Err  error // a *ScanError, or nil
}

// String does not show the data: codes may be login tokens.
func (s Scan) String() string {
	if s.Err != nil {
		return s.Err.Error()
	}
	return fmt.Sprintf("scan of %d bytes at %s", len(s.Data), s.At.Format(time.RFC3339Nano))
}

// ScanError is a rejected input. Reason is ErrTooLong, ErrBinary or ErrIncomplete.
type ScanError struct {
	Reason error
	Len    int // bytes dropped
	Offset int // for ErrBinary: offset of the first bad byte
}

func (e *ScanError) Error() string {
	if errors.Is(e.Reason, ErrBinary) {
		return fmt.Sprintf("%v at byte %d of %d, dropped", e.Reason, e.Offset, e.Len)
	}
	return fmt.Sprintf("%v: %d bytes dropped", e.Reason, e.Len)
}

func (e *ScanError) Unwrap() error { return e.Reason }

// Stats counts what a Scanner saw.
type Stats struct {
	Scans, TooLong, Binary, Incomplete int
}

// Scanner reads scans from a serial port.
type Scanner struct {
	port  transport.Port
	cfg   Config
	log   *slog.Logger
	scans chan Scan

	mu    sync.Mutex
	stats Stats
}

// New validates cfg and returns a Scanner on port. log must not be nil.
func New(port transport.Port, cfg Config, log *slog.Logger) (*Scanner, error) {
	switch cfg.Suffix {
	case "":
		cfg.Suffix = SuffixCR
	case SuffixCR, SuffixLF, SuffixCRLF, SuffixNone:
	default:
		return nil, fmt.Errorf("%w: suffix %q (cr, lf, crlf or none)", ErrConfig, cfg.Suffix)
	}
	if cfg.MaxLength < 0 || cfg.Idle < 0 {
		return nil, fmt.Errorf("%w: negative maxLength or idle", ErrConfig)
	}
	if cfg.MaxLength == 0 {
		cfg.MaxLength = 4096
	}
	if cfg.Idle == 0 {
		cfg.Idle = time.Second
		if cfg.Suffix == SuffixNone {
			cfg.Idle = 100 * time.Millisecond
		}
	}
	return &Scanner{port: port, cfg: cfg, log: log, scans: make(chan Scan, 16)}, nil
}

// Scans is the event channel. Run sends on it and closes it when it returns.
func (s *Scanner) Scans() <-chan Scan { return s.scans }

// Stats returns the counters.
func (s *Scanner) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Run reads until ctx is done (returns nil) or the port fails (returns an error wrapping
// transport.ErrClosed). It must be called once; it closes Scans on return. If the consumer stops
// reading, Run blocks on the channel until ctx is done.
func (s *Scanner) Run(ctx context.Context) error {
	defer close(s.scans)
	tick := min(s.cfg.Idle, 50*time.Millisecond)
	if err := s.port.SetReadTimeout(tick); err != nil {
		return fmt.Errorf("qrscan: %w", err)
	}
	suffix := s.cfg.Suffix.Bytes()
	var (
		buf      []byte
		dropping bool // discarding an oversize scan until its suffix
		dropped  int
		last     time.Time
		chunk    = make([]byte, 512)
	)
	for ctx.Err() == nil {
		n, err := s.port.Read(chunk)
		if err != nil {
			return fmt.Errorf("qrscan: read: %w", err)
		}
		now := time.Now()
		if n == 0 { // read timeout: check for an ended (none) or abandoned (suffix) scan
			if (len(buf) > 0 || dropping) && now.Sub(last) >= s.cfg.Idle {
				if dropping {
					s.reject(ctx, &ScanError{Reason: ErrTooLong, Len: dropped + len(buf)})
				} else if suffix == nil {
					s.emit(ctx, buf, now)
				} else {
					s.reject(ctx, &ScanError{Reason: ErrIncomplete, Len: len(buf)})
				}
				buf, dropping, dropped = buf[:0], false, 0
			}
			continue
		}
		last = now
		buf = append(buf, chunk[:n]...)
		for suffix != nil {
			i := bytes.Index(buf, suffix)
			if i < 0 {
				break
			}
			if dropping || i > s.cfg.MaxLength {
				s.reject(ctx, &ScanError{Reason: ErrTooLong, Len: dropped + i})
			} else {
				s.emit(ctx, buf[:i], now)
			}
			buf, dropping, dropped = append(buf[:0], buf[i+len(suffix):]...), false, 0
		}
		if len(buf) > s.cfg.MaxLength+len(suffix) { // keep a possible partial suffix
			keep := len(suffix)
			dropped += len(buf) - keep
			buf = append(buf[:0], buf[len(buf)-keep:]...)
			dropping = true
		}
	}
	return nil
}

func (s *Scanner) emit(ctx context.Context, b []byte, at time.Time) {
	if len(b) == 0 {
		return // a lone suffix (e.g. the LF of a CRLF scanner set to CR)
	}
	if bad := badByte(b); bad >= 0 {
		s.reject(ctx, &ScanError{Reason: ErrBinary, Len: len(b), Offset: bad})
		return
	}
	s.mu.Lock()
	s.stats.Scans++
	s.mu.Unlock()
	s.send(ctx, Scan{Data: string(b), At: at})
}

// badByte returns the offset of the first control byte (other than TAB) or invalid UTF-8, or -1.
func badByte(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 || (r < 0x20 && r != '\t') || r == 0x7F {
			return i
		}
		i += n
	}
	return -1
}

func (s *Scanner) reject(ctx context.Context, e *ScanError) {
	s.mu.Lock()
	switch e.Reason {
	case ErrTooLong:
		s.stats.TooLong++
	case ErrBinary:
		s.stats.Binary++
	case ErrIncomplete:
		s.stats.Incomplete++
	}
	st := s.stats
	s.mu.Unlock()
	s.log.Warn("qrscan: input rejected", "error", e, "too_long", st.TooLong, "binary", st.Binary, "incomplete", st.Incomplete)
	s.send(ctx, Scan{At: time.Now(), Err: e})
}

func (s *Scanner) send(ctx context.Context, sc Scan) {
	select {
	case s.scans <- sc:
	case <-ctx.Done():
	}
}
