package escpos_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/drivers/escpos"
	"github.com/kioskfleet/kioskfleet/drivers/transport"
)

// FuzzParseASB: any 4 bytes parse or are rejected with ErrBadFrame; what parses re-encodes to
// a message that parses to the same status.
func FuzzParseASB(f *testing.F) {
	f.Add([]byte{0x10, 0, 0, 0})
	f.Add([]byte{0x18, 0x08, 0x0C, 0x00})
	f.Add([]byte{0x3C, 0x68, 0x0F, 0x00})
	f.Add([]byte{0x12, 0, 0})
	f.Add([]byte{0xFF, 0xFF, 0xFF, 0xFF, 0xFF})
	f.Fuzz(func(t *testing.T, m []byte) {
		s, err := escpos.ParseASB(m)
		if err != nil {
			if !errors.Is(err, escpos.ErrBadFrame) {
				t.Fatalf("error %v does not wrap ErrBadFrame", err)
			}
			return
		}
		e := escpos.EncodeASB(s)
		s2, err := escpos.ParseASB(e[:])
		if err != nil || s2 != s {
			t.Fatalf("re-encode of %v: %v, %v", s, s2, err)
		}
	})
}

// FuzzStatusStream feeds arbitrary printer bytes to the status reader: it must return a status,
// a frame error or a timeout, never panic or hang.
func FuzzStatusStream(f *testing.F) {
	f.Add([]byte{0x12, 0x12, 0x12, 0x12})
	f.Add([]byte{0x10, 0x00, 0x0C, 0x00, 0x1A, 0x12, 0x12, 0x72})
	f.Add([]byte{0x10, 0x10, 0x12, 0x12, 0x12, 0x12})
	f.Add([]byte{0xFF, 0x00, 0x12})
	f.Fuzz(func(t *testing.T, in []byte) {
		d := escpos.New(&scripted{in: in}, quiet(), escpos.Options{StatusTimeout: time.Millisecond})
		_, err := d.Status(context.Background())
		if err != nil && !errors.Is(err, escpos.ErrBadFrame) && !errors.Is(err, transport.ErrTimeout) {
			t.Fatalf("unexpected error %v", err)
		}
	})
}

// scripted is a Link that replays fixed bytes and then times out.
type scripted struct{ in []byte }

func (s *scripted) Send(context.Context, []byte) error { return nil }

func (s *scripted) Recv(ctx context.Context, p []byte) (int, error) {
	if len(s.in) == 0 {
		return 0, transport.ErrTimeout
	}
	n := copy(p, s.in)
	s.in = s.in[n:]
	return n, nil
}
