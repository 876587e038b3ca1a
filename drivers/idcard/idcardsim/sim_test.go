package idcardsim_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/drivers/idcard"
	"github.com/kioskfleet/kioskfleet/drivers/idcard/idcardsim"
	"github.com/kioskfleet/kioskfleet/drivers/transport/transporttest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func reply(t *testing.T, s *idcardsim.Sim, cmd, para byte) idcard.Reply {
	t.Helper()
	body, err := idcard.DecodeFrame(s.Reply([]byte{cmd, para}))
	if err != nil {
		t.Fatal(err)
	}
	r, err := idcard.ParseReply(body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestMisreadEveryCardType(t *testing.T) {
	for _, c := range []*idcardsim.Card{idcardsim.Resident(), idcardsim.HKMOTW(), idcardsim.Foreigner2017(), idcardsim.Foreigner2023()} {
		s := idcardsim.New(c)
		s.SetFaults(idcardsim.Faults{Misread: true})
		if _, err := idcard.ParseRead(reply(t, s, 0x30, 0x01).Data, false); !errors.Is(err, idcard.ErrMisread) {
			t.Errorf("card %q: %v, want ErrMisread", c.Type, err)
		}
	}
}

func TestUnknownCommandAndBadFrames(t *testing.T) {
	s := idcardsim.New(idcardsim.Resident())
	if st := reply(t, s, 0x99, 0x01).Status; st != idcard.StatusBadCommand {
		t.Fatalf("unknown command: %v", st)
	}
	// Over a stream: a frame with a bad checksum is answered 10, noise is skipped.
	in := append([]byte{0x01, 0x02}, 0xAA, 0xAA, 0xAA, 0x96, 0x69, 0x00, 0x03, 0x20, 0x01, 0x23)
	rw := &pipeRW{in: bytes.NewReader(in)}
	if err := s.Run(context.Background(), rw); !errors.Is(err, io.EOF) {
		t.Fatalf("Run = %v, want EOF", err)
	}
	body, err := idcard.DecodeFrame(rw.out.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := idcard.ParseReply(body); r.Status != idcard.StatusChecksum {
		t.Fatalf("status %v, want checksum error", r.Status)
	}
}

type pipeRW struct {
	in  *bytes.Reader
	out bytes.Buffer
}

func (p *pipeRW) Read(b []byte) (int, error)  { return p.in.Read(b) }
func (p *pipeRW) Write(b []byte) (int, error) { return p.out.Write(b) }

func TestRunStopsOnContextAndUnplug(t *testing.T) {
	s := idcardsim.New(nil)
	master, _ := transporttest.PtyPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, master) }()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Run ignored ctx")
	}
	// Unplug before Run serves: the next Run ends at once, the one after serves (replug).
	s.Unplug()
	if err := s.Run(context.Background(), master); !errors.Is(err, idcardsim.ErrUnplugged) {
		t.Fatalf("Run after Unplug = %v", err)
	}
	master2, _ := transporttest.PtyPair(t)
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := s.Run(ctx, master2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("replugged Run = %v, want it to serve until its context ends", err)
	}
}
