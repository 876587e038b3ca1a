// Package escpossim simulates an ESC/POS receipt printer: it consumes the bytes a driver sends
// (ESC @, FS &, ESC d, GS V, GS ( k, DLE EOT, GS a and text), keeps what was printed, answers
// real-time status requests and emits Automatic Status Back messages on changes. Faults (paper near
// end, paper out, cover open, cutter error, offline, slow, unplug) are injected with SetFault.
// Serve it on a pseudo-terminal with NewPty, or feed it from a USB fake through Write.
package escpossim

import (
	"bytes"
	"sync"
	"time"

	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/kioskfleet/kioskfleet/drivers/escpos"
)

// Fault is an injected printer condition.
type Fault int

// Faults.
const (
	PaperNearEnd Fault = iota
	PaperOut
	CoverOpen
	CutterError // the next cut fails (and the printer goes offline with an error)
	Offline
	Slow // replies are delayed by SlowDelay
)

// SlowDelay is how long replies are held back while the Slow fault is on.
const SlowDelay = 2 * time.Second

// Sim is the printer's brain. It is safe for concurrent use.
type Sim struct {
	out func([]byte) // where replies go

	mu        sync.Mutex
	faults    map[Fault]bool
	buf       []byte // unparsed host bytes
	printed   []byte // text bytes as printed (GB18030 in Chinese mode)
	qrStored  []byte
	qrs       []string
	cuts      int
	asbMask   byte
	lastASB   [4]byte
	unknown   int // unknown commands seen
	discarded int // data bytes dropped because the printer was not ready
}

// New returns a simulator that sends its replies to out. out is called without Sim's lock held.
func New(out func([]byte)) *Sim { return &Sim{out: out, faults: map[Fault]bool{}} }

// SetFault turns a fault on or off. With ASB enabled, a change in status sends an ASB message.
func (s *Sim) SetFault(f Fault, on bool) {
	s.mu.Lock()
	s.faults[f] = on
	if f == CutterError && !on {
		s.faults[cutterFailed] = false
	}
	msg := s.asbChangeLocked()
	s.mu.Unlock()
	s.emit(msg)
}

const cutterFailed Fault = 100 // internal: a cut failed while CutterError was on

func (s *Sim) status() escpos.Status {
	f := s.faults
	st := escpos.Status{
		CoverOpen:    f[CoverOpen],
		PaperOut:     f[PaperOut],
		PaperNearEnd: f[PaperNearEnd] || f[PaperOut],
		PaperEndStop: f[PaperOut],
		CutterError:  f[cutterFailed],
	}
	st.Error = st.CutterError
	st.Offline = f[Offline] || st.CoverOpen || st.PaperOut || st.Error
	return st
}

// Status is the simulated printer's current state.
func (s *Sim) Status() escpos.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status()
}

func (s *Sim) asbChangeLocked() []byte {
	if s.asbMask == 0 {
		return nil
	}
	m := escpos.EncodeASB(s.status())
	if m == s.lastASB {
		return nil
	}
	s.lastASB = m
	return m[:]
}

func (s *Sim) emit(p []byte) {
	if len(p) == 0 {
		return
	}
	s.mu.Lock()
	slow := s.faults[Slow]
	s.mu.Unlock()
	if slow {
		time.Sleep(SlowDelay)
	}
	s.out(p)
}

// Write consumes bytes from the host. It never fails.
func (s *Sim) Write(p []byte) (int, error) {
	s.mu.Lock()
	s.buf = append(s.buf, p...)
	var reply []byte
	for {
		n, r := s.step(s.buf)
		if n == 0 {
			break
		}
		reply = append(reply, r...)
		s.buf = s.buf[n:]
	}
	s.buf = append([]byte(nil), s.buf...)
	s.mu.Unlock()
	s.emit(reply)
	return len(p), nil
}

// step parses one command at the start of b; it returns the bytes used (0 if incomplete) and any
// reply.
func (s *Sim) step(b []byte) (int, []byte) {
	if len(b) == 0 {
		return 0, nil
	}
	need := func(n int) bool { return len(b) >= n }
	switch b[0] {
	case escpos.DLE:
		if !need(3) {
			return 0, nil
		}
		if b[1] == escpos.EOT && b[2] >= 1 && b[2] <= 4 {
			return 3, []byte{escpos.EncodeRealtime(s.status(), escpos.StatusKind(b[2]))}
		}
		s.unknown++
		return 1, nil
	case escpos.ESC:
		if !need(2) {
			return 0, nil
		}
		switch b[1] {
		case '@':
			return 2, nil
		case 'd':
			if !need(3) {
				return 0, nil
			}
			s.print(bytes.Repeat([]byte{'\n'}, int(b[2])))
			return 3, nil
		case '!', 'a', 'E', '-', 'J', 'M', 't':
			if !need(3) {
				return 0, nil
			}
			return 3, nil
		}
		s.unknown++
		return 2, nil
	case escpos.FS:
		if !need(2) {
			return 0, nil
		}
		if b[1] != '&' && b[1] != '.' {
			s.unknown++
		}
		return 2, nil
	case escpos.GS:
		if !need(3) {
			return 0, nil
		}
		switch b[1] {
		case 'a':
			s.asbMask = b[2]
			s.lastASB = [4]byte{}
			return 3, s.asbChangeLocked()
		case '!':
			return 3, nil
		case 'V':
			n := 3
			if b[2] == 65 || b[2] == 66 {
				if !need(4) {
					return 0, nil
				}
				n = 4
			}
			return n, s.cut()
		case '(':
			if !need(5) {
				return 0, nil
			}
			l := int(b[3]) | int(b[4])<<8
			if !need(5 + l) {
				return 0, nil
			}
			if b[2] == 'k' && l >= 3 && b[5] == 49 {
				switch b[6] {
				case 80:
					s.qrStored = append([]byte(nil), b[8:5+l]...)
				case 81:
					if s.ready() {
						s.qrs = append(s.qrs, string(s.qrStored))
					}
				}
			}
			return 5 + l, nil
		}
		s.unknown++
		return 2, nil
	}
	s.print(b[:1])
	return 1, nil
}

func (s *Sim) ready() bool {
	if s.status().Offline {
		s.discarded++
		return false
	}
	return true
}

func (s *Sim) print(p []byte) {
	if s.ready() {
		s.printed = append(s.printed, p...)
	}
}

func (s *Sim) cut() []byte {
	if !s.ready() {
		return nil
	}
	if s.faults[CutterError] {
		s.faults[cutterFailed] = true
		return s.asbChangeLocked()
	}
	s.cuts++
	return nil
}

// Text is everything printed so far, decoded from GB18030.
func (s *Sim) Text() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := simplifiedchinese.GB18030.NewDecoder().Bytes(s.printed)
	if err != nil {
		return string(s.printed)
	}
	return string(t)
}

// QRCodes are the payloads of the QR codes printed so far.
func (s *Sim) QRCodes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.qrs...)
}

// Cuts is how many cuts succeeded.
func (s *Sim) Cuts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cuts
}

// Discarded is how many data bytes arrived while the printer could not print.
func (s *Sim) Discarded() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.discarded
}

// Unknown is how many unknown commands were seen.
func (s *Sim) Unknown() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unknown
}
