package escpos

import (
	"fmt"
	"strings"
)

// Status is a receipt printer's state, assembled from real-time status bytes (DLE EOT n) or from
// an Automatic Status Back message (GS a n).
type Status struct {
	DrawerOpen      bool // drawer kick-out connector pin 3 is high
	Offline         bool
	WaitingOnline   bool // waiting for online recovery
	FeedButton      bool // paper is being fed by the feed button
	CoverOpen       bool
	PaperEndStop    bool // printing stopped at paper end
	Error           bool // an error occurred (see the cause bits)
	Recoverable     bool // a recoverable error occurred
	CutterError     bool // autocutter error
	Unrecoverable   bool // unrecoverable error
	AutoRecoverable bool // auto-recoverable error (e.g. head overheated)
	PaperNearEnd    bool
	PaperOut        bool
}

// Ready reports whether a job may be sent.
func (s Status) Ready() bool { return s.Err() == nil }

// Err returns the reason the printer cannot print now as a *StatusError wrapping one of ErrCoverOpen,
// ErrPaperOut, ErrCutter, ErrUnrecoverable, ErrOffline; nil when it can print. Paper near end is
// a warning, not a refusal.
func (s Status) Err() error {
	var reason error
	switch {
	case s.CoverOpen:
		reason = ErrCoverOpen
	case s.PaperOut || s.PaperEndStop:
		reason = ErrPaperOut
	case s.CutterError:
		reason = ErrCutter
	case s.Unrecoverable:
		reason = ErrUnrecoverable
	case s.Offline || s.AutoRecoverable:
		reason = ErrOffline
	default:
		return nil
	}
	return &StatusError{Status: s, Reason: reason}
}

// String lists the flags that are set, or "ready".
func (s Status) String() string {
	var f []string
	add := func(b bool, n string) {
		if b {
			f = append(f, n)
		}
	}
	add(s.Offline, "offline")
	add(s.WaitingOnline, "waiting-online")
	add(s.CoverOpen, "cover-open")
	add(s.PaperOut, "paper-out")
	add(s.PaperEndStop, "paper-end-stop")
	add(s.PaperNearEnd, "paper-near-end")
	add(s.CutterError, "cutter-error")
	add(s.Unrecoverable, "unrecoverable-error")
	add(s.AutoRecoverable, "auto-recoverable-error")
	add(s.Recoverable, "recoverable-error")
	add(s.Error, "error")
	add(s.FeedButton, "feed-button")
	add(s.DrawerOpen, "drawer-high")
	if len(f) == 0 {
		return "ready"
	}
	return strings.Join(f, ",")
}

// StatusError is a refusal caused by the printer's state. Reason is one of the package's
// sentinel errors, so errors.Is(err, ErrPaperOut) works.
type StatusError struct {
	Status Status
	Reason error
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%v (status %s)", e.Reason, e.Status)
}

func (e *StatusError) Unwrap() error { return e.Reason }

// StatusKind selects a real-time status byte: DLE EOT n, n = 1..4.
type StatusKind byte

// Real-time status kinds (DLE EOT n).
const (
	StatusPrinter StatusKind = 1 // printer status
	StatusOffline StatusKind = 2 // offline cause
	StatusCause   StatusKind = 3 // error cause
	StatusPaper   StatusKind = 4 // continuous paper sensor
)

// IsRealtimeByte reports whether b has the fixed bits of a DLE EOT reply (ESC/POS Application
// Programming Guide, DLE EOT n: "bits 1 and 4 fixed to 1, bits 0 and 7 fixed to 0"): bits 1 and 4 set,
// bits 0 and 7 clear.
func IsRealtimeByte(b byte) bool { return b&0x93 == 0x12 }

// IsASBHeader reports whether b can start an Automatic Status Back message: bit 4 set, bits
// 0, 1 and 7 clear. It never matches a real-time status byte, which has bit 1 set.
func IsASBHeader(b byte) bool { return b&0x93 == 0x10 }

// ApplyRealtime merges the reply b to DLE EOT kind into s. A byte whose fixed bits are wrong is
// rejected with a *FrameError.
func ApplyRealtime(s *Status, kind StatusKind, b byte) error {
	if !IsRealtimeByte(b) {
		return &FrameError{What: fmt.Sprintf("DLE EOT %d reply", kind), Bytes: []byte{b}}
	}
	bit := func(n uint) bool { return b&(1<<n) != 0 }
	switch kind {
	case StatusPrinter:
		s.DrawerOpen = bit(2)
		s.Offline = bit(3)
		s.WaitingOnline = bit(5)
		s.FeedButton = bit(6)
	case StatusOffline:
		s.CoverOpen = bit(2)
		s.FeedButton = s.FeedButton || bit(3)
		s.PaperEndStop = bit(5)
		s.Error = bit(6)
	case StatusCause:
		s.Recoverable = bit(2)
		s.CutterError = bit(3)
		s.Unrecoverable = bit(5)
		s.AutoRecoverable = bit(6)
	case StatusPaper:
		s.PaperNearEnd = b&0x0C != 0
		s.PaperOut = b&0x60 != 0
	default:
		return fmt.Errorf("%w: DLE EOT %d", ErrBadCommand, kind)
	}
	return nil
}

// ParseASB decodes a 4-byte Automatic Status Back message. Fixed bits are checked: byte 1 must
// satisfy IsASBHeader and bytes 2-4 must have bits 4 and 7 clear.
func ParseASB(m []byte) (Status, error) {
	if len(m) != 4 {
		return Status{}, &FrameError{What: fmt.Sprintf("ASB message of %d bytes, want 4", len(m)), Bytes: m}
	}
	if !IsASBHeader(m[0]) || m[1]&0x90 != 0 || m[2]&0x90 != 0 || m[3]&0x90 != 0 {
		return Status{}, &FrameError{What: "ASB message with bad fixed bits", Bytes: m}
	}
	s := Status{
		DrawerOpen:      m[0]&0x04 != 0,
		Offline:         m[0]&0x08 != 0,
		CoverOpen:       m[0]&0x20 != 0,
		FeedButton:      m[0]&0x40 != 0,
		Recoverable:     m[1]&0x04 != 0,
		CutterError:     m[1]&0x08 != 0,
		Unrecoverable:   m[1]&0x20 != 0,
		AutoRecoverable: m[1]&0x40 != 0,
		PaperNearEnd:    m[2]&0x03 != 0,
		PaperOut:        m[2]&0x0C != 0,
	}
	s.Error = s.CutterError || s.Unrecoverable || s.AutoRecoverable || s.Recoverable
	return s, nil
}

// EncodeASB is the inverse of ParseASB (for simulators).
func EncodeASB(s Status) [4]byte {
	m := [4]byte{0x10, 0, 0, 0}
	set := func(i int, b bool, v byte) {
		if b {
			m[i] |= v
		}
	}
	set(0, s.DrawerOpen, 0x04)
	set(0, s.Offline, 0x08)
	set(0, s.CoverOpen, 0x20)
	set(0, s.FeedButton, 0x40)
	set(1, s.Recoverable, 0x04)
	set(1, s.CutterError, 0x08)
	set(1, s.Unrecoverable, 0x20)
	set(1, s.AutoRecoverable, 0x40)
	set(2, s.PaperNearEnd, 0x03)
	set(2, s.PaperOut, 0x0C)
	return m
}

// EncodeRealtime is the reply a printer in state s gives to DLE EOT kind (for simulators).
func EncodeRealtime(s Status, kind StatusKind) byte {
	b := byte(0x12)
	set := func(c bool, v byte) {
		if c {
			b |= v
		}
	}
	switch kind {
	case StatusPrinter:
		set(s.DrawerOpen, 1<<2)
		set(s.Offline, 1<<3)
		set(s.WaitingOnline, 1<<5)
		set(s.FeedButton, 1<<6)
	case StatusOffline:
		set(s.CoverOpen, 1<<2)
		set(s.PaperEndStop, 1<<5)
		set(s.Error, 1<<6)
	case StatusCause:
		set(s.Recoverable, 1<<2)
		set(s.CutterError, 1<<3)
		set(s.Unrecoverable, 1<<5)
		set(s.AutoRecoverable, 1<<6)
	case StatusPaper:
		set(s.PaperNearEnd, 0x0C)
		set(s.PaperOut, 0x60)
	}
	return b
}
