package idcardsim

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/kioskfleet/kioskfleet/drivers/idcard"
)

// ErrUnplugged is returned by Run after Unplug.
var ErrUnplugged = errors.New("idcardsim: unplugged")

// Faults are the injected failures; the zero value is a healthy reader.
type Faults struct {
	NoCard      bool          // find card says 80, select 81, reads 41
	Misread     bool          // the number's check character is corrupted in read replies
	BadChecksum bool          // every reply carries a wrong CHK
	SAMFault    bool          // every command answers 60 (SAM self-test failed)
	Delay       time.Duration // before every reply
}

// Sim is a simulated reader. Configure it with SetCard and SetFaults at any time (also while Run
// serves); the methods are safe for concurrent use.
type Sim struct {
	mu       sync.Mutex
	card     *Card
	faults   Faults
	samID    [16]byte
	conn     io.Closer
	unplug   bool // the current Run was unplugged
	pending  bool // Unplug came while no Run served
	commands map[idcard.Command]int
	slept    time.Duration
}

// New returns a reader holding card (nil: no card on it).
func New(card *Card) *Sim {
	s := &Sim{card: card, commands: map[idcard.Command]int{}}
	copy(s.samID[:], []byte{0x05, 0x00, 0x01, 0x00, 0x31, 0x0c, 0x32, 0x01, 0xe8, 0x03, 0x00, 0x00, 0x78, 0x56, 0x34, 0x12})
	return s
}

// SetCard puts a card on the reader (nil takes it off).
func (s *Sim) SetCard(c *Card) { s.mu.Lock(); s.card = c; s.mu.Unlock() }

// SetFaults replaces the injected faults.
func (s *Sim) SetFaults(f Faults) { s.mu.Lock(); s.faults = f; s.mu.Unlock() }

// Commands returns how many times the command was received.
func (s *Sim) Commands(c idcard.Command) int { s.mu.Lock(); defer s.mu.Unlock(); return s.commands[c] }

// DeviceTime is the time Run has spent in the Delay fault, as measured (timers overshoot), so
// that benchmarks can report the driver's own time.
func (s *Sim) DeviceTime() time.Duration { s.mu.Lock(); defer s.mu.Unlock(); return s.slept }

// Unplug makes the running Run close its stream (on a pty master this hangs up the driver's
// side) and return ErrUnplugged. If no Run is serving yet, the next Run does so at once. A later
// Run is the replug.
func (s *Sim) Unplug() {
	s.mu.Lock()
	c := s.conn
	if c == nil {
		s.pending = true
	}
	s.unplug = true
	s.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// Run serves the reader on rw until ctx ends (returning ctx.Err()), rw fails, or Unplug. To stop
// on ctx, rw must support SetReadDeadline (a pty master from ptypair or transporttest does) or Close.
func (s *Sim) Run(ctx context.Context, rw io.ReadWriter) error {
	s.mu.Lock()
	c, _ := rw.(io.Closer)
	if s.pending {
		s.pending = false
		s.mu.Unlock()
		if c != nil {
			c.Close()
		}
		return ErrUnplugged
	}
	s.unplug = false
	s.conn = c
	s.mu.Unlock()
	defer func() { s.mu.Lock(); s.conn = nil; s.mu.Unlock() }()
	stop := context.AfterFunc(ctx, func() {
		if d, ok := rw.(interface{ SetReadDeadline(time.Time) error }); ok && d.SetReadDeadline(time.Unix(1, 0)) == nil {
			return
		}
		if c, ok := rw.(io.Closer); ok {
			c.Close()
		}
	})
	defer stop()

	var buf []byte
	rd := make([]byte, 512)
	for {
		n, err := rw.Read(rd)
		buf = append(buf, rd[:n]...)
		for {
			start, end, ferr := idcard.Split(buf)
			if end == 0 {
				buf = buf[start:]
				break
			}
			frame := buf[start:end]
			buf = buf[end:]
			var reply []byte
			if ferr != nil {
				// GA 467: a frame the SAM cannot check is answered 10 (checksum) or 11 (length).
				st := idcard.StatusChecksum
				if errors.Is(ferr, idcard.ErrLength) {
					st = idcard.StatusLength
				}
				reply = s.frameLocked(st)
			} else {
				reply = s.Reply(frame[idcard.HeaderLen : len(frame)-1])
			}
			if d := s.delay(); d > 0 {
				began := time.Now()
				t := time.NewTimer(d)
				select {
				case <-ctx.Done():
					t.Stop()
					return ctx.Err()
				case <-t.C:
				}
				s.mu.Lock()
				s.slept += time.Since(began)
				s.mu.Unlock()
			}
			if _, werr := rw.Write(reply); werr != nil {
				return s.exit(ctx, werr)
			}
		}
		if err != nil {
			return s.exit(ctx, err)
		}
	}
}

func (s *Sim) exit(ctx context.Context, err error) error {
	s.mu.Lock()
	unplugged := s.unplug
	s.mu.Unlock()
	switch {
	case unplugged:
		return ErrUnplugged
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return err
}

func (s *Sim) delay() time.Duration { s.mu.Lock(); defer s.mu.Unlock(); return s.faults.Delay }

// Reply answers one command body (CMD PARA DATA) with a complete reply frame.
func (s *Sim) Reply(body []byte) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(body) < 2 {
		return s.frame(idcard.StatusLength, nil)
	}
	c := idcard.Command{Code: body[0], Para: body[1]}
	s.commands[c]++
	if s.faults.SAMFault {
		return s.frame(idcard.StatusSAMSelfTest, nil)
	}
	card := s.card
	if s.faults.NoCard {
		card = nil
	}
	switch c {
	case idcard.CmdResetSAM, idcard.CmdSAMStatus:
		return s.frame(idcard.StatusOK, nil)
	case idcard.CmdSAMID:
		return s.frame(idcard.StatusOK, s.samID[:])
	case idcard.CmdFindCard:
		if card == nil {
			return s.frame(idcard.StatusNoCard, nil)
		}
		return s.frame(idcard.StatusCardFound, make([]byte, 4))
	case idcard.CmdSelectCard:
		if card == nil {
			return s.frame(idcard.StatusSelectFailed, nil)
		}
		return s.frame(idcard.StatusOK, make([]byte, 8))
	case idcard.CmdReadText, idcard.CmdReadFingerprint:
		if card == nil {
			return s.frame(idcard.StatusReadFailed, nil)
		}
		return s.frame(idcard.StatusOK, s.readData(card, c == idcard.CmdReadFingerprint))
	case idcard.CmdReadNewAddress:
		if card == nil {
			return s.frame(idcard.StatusReadFailed, nil)
		}
		if card.AppendedAddress == "" {
			return s.frame(idcard.StatusNoContent, nil)
		}
		return s.frame(idcard.StatusOK, UCS2(card.AppendedAddress))
	}
	return s.frame(idcard.StatusBadCommand, nil)
}

// readData is text length, photo length, [fingerprint length,] text, photo[, fingerprint].
func (s *Sim) readData(c *Card, withFP bool) []byte {
	text := c.TextBlock()
	if s.faults.Misread {
		// Corrupt the number's check character (UCS-2 at 156-157) into a different digit.
		if c.Type == 'I' {
			text[150] = 'O' // a digit of the 15-character number read as a letter
		} else {
			text[156] = '0' + (text[156]-'0'+1)%10 // the check character; 'X' becomes '1'
		}
	}
	photo := make([]byte, 1024)
	copy(photo, c.Photo)
	d := binary.BigEndian.AppendUint16(nil, uint16(len(text)))
	d = binary.BigEndian.AppendUint16(d, uint16(len(photo)))
	var fp []byte
	if withFP {
		fp = c.Fingerprint
		d = binary.BigEndian.AppendUint16(d, uint16(len(fp)))
	}
	d = append(d, text...)
	d = append(d, photo...)
	return append(d, fp...)
}

// frame builds a reply frame: SW1 SW2 SW3 DATA, with CHK spoiled under the BadChecksum fault.
func (s *Sim) frame(st idcard.Status, data []byte) []byte {
	f := idcard.AppendFrame(nil, []byte{0, 0, byte(st)}, data)
	if s.faults.BadChecksum {
		f[len(f)-1] ^= 0x5A
	}
	return f
}

// USBLayout is the layout of the sample USB reader: header on EP 0x02, body on 0x06, replies
// read on 0x81 (header) then 0x85 (body).
var USBLayout = idcard.USBLayout{HeaderOut: 0x02, BodyOut: 0x06, HeaderIn: 0x81, BodyIn: 0x85}

// USB returns the device side of a USB fake (transporttest.NewFakeUSB) with layout l: bulk OUT
// transfers on l's endpoints are gathered into frames, and replies are queued on its IN endpoints,
// after the Delay fault if any.
func (s *Sim) USB(l idcard.USBLayout) func(ep uint8, data []byte, reply func(uint8, []byte)) {
	var mu sync.Mutex
	var buf []byte
	return func(ep uint8, data []byte, reply func(uint8, []byte)) {
		if ep != l.HeaderOut && ep != l.BodyOut {
			return // a real device would stall; nothing to answer
		}
		mu.Lock()
		buf = append(buf, data...)
		var replies [][]byte
		for {
			start, end, err := idcard.Split(buf)
			if end == 0 {
				buf = buf[start:]
				break
			}
			if err != nil {
				replies = append(replies, s.frameLocked(idcard.StatusChecksum))
			} else {
				replies = append(replies, s.Reply(buf[start+idcard.HeaderLen:end-1]))
			}
			buf = buf[end:]
		}
		mu.Unlock()
		send := func() {
			for _, r := range replies {
				if l.BodyIn == 0 {
					reply(l.HeaderIn, r)
					continue
				}
				reply(l.HeaderIn, r[:idcard.HeaderLen])
				reply(l.BodyIn, r[idcard.HeaderLen:])
			}
		}
		if d := s.delay(); d > 0 && len(replies) > 0 {
			time.AfterFunc(d, send)
			return
		}
		send()
	}
}

func (s *Sim) frameLocked(st idcard.Status) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.frame(st, nil)
}
