package qrscan_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/kioskfleet/kioskfleet/drivers/qrscan"
	"github.com/kioskfleet/kioskfleet/drivers/transport"
)

// chunks is a transport.Port that returns its input in pieces, then times out, then reports
// the port closed.
type chunks struct {
	in    []byte
	step  int
	idles int
}

func (c *chunks) Read(p []byte) (int, error) {
	if len(c.in) == 0 {
		if c.idles++; c.idles > 3 {
			return 0, transport.ErrClosed
		}
		return 0, nil
	}
	n := min(len(p), len(c.in), c.step)
	copy(p, c.in[:n])
	c.in = c.in[n:]
	return n, nil
}
func (c *chunks) Write(p []byte) (int, error)        { return len(p), nil }
func (c *chunks) Close() error                       { return nil }
func (c *chunks) SetReadTimeout(time.Duration) error { return nil }
func (c *chunks) ResetInputBuffer() error            { return nil }

// FuzzFraming: any byte stream, in any chunking, yields only valid scans (no suffix bytes, no
// control bytes, valid UTF-8, within MaxLength) or counted rejections, and Run ends.
func FuzzFraming(f *testing.F) {
	f.Add([]byte("ABC\r\nDEF\r\n"), uint8(3), uint8(2))
	f.Add([]byte("\x00\x01\xff\r"), uint8(1), uint8(0))
	f.Add([]byte("no suffix at all"), uint8(5), uint8(3))
	f.Add(append(make([]byte, 100), '\n'), uint8(7), uint8(1))
	f.Fuzz(func(t *testing.T, in []byte, step, mode uint8) {
		suffix := []qrscan.Suffix{qrscan.SuffixCR, qrscan.SuffixLF, qrscan.SuffixCRLF, qrscan.SuffixNone}[mode%4]
		port := &chunks{in: in, step: int(step%16) + 1}
		sc, err := qrscan.New(port, qrscan.Config{Suffix: suffix, MaxLength: 32, Idle: time.Nanosecond}, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- sc.Run(context.Background()) }()
		total := 0
		for s := range sc.Scans() {
			total++
			if s.Err != nil {
				if s.Data != "" {
					t.Fatalf("rejection carries data")
				}
				continue
			}
			if len(s.Data) == 0 || len(s.Data) > 32 || !utf8.ValidString(s.Data) {
				t.Fatalf("bad scan %q", s.Data)
			}
			for _, r := range s.Data {
				if r < 0x20 && r != '\t' {
					t.Fatalf("control byte in scan %q", s.Data)
				}
			}
		}
		if err := <-done; !errors.Is(err, transport.ErrClosed) {
			t.Fatalf("Run returned %v", err)
		}
		st := sc.Stats()
		if st.Scans+st.TooLong+st.Binary+st.Incomplete != total {
			t.Fatalf("stats %+v do not add up to %d events", st, total)
		}
	})
}
