package idcard_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/drivers/idcard"
	"github.com/kioskfleet/kioskfleet/drivers/idcard/idcardsim"
	"github.com/kioskfleet/kioskfleet/drivers/transport"
	"github.com/kioskfleet/kioskfleet/drivers/transport/transporttest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// rig is a Reader on the slave side of a pty with the simulator serving the master side.
type rig struct {
	sim    *idcardsim.Sim
	reader *idcard.Reader
	port   transport.Port
	runErr chan error
	logs   *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

var testCfg = idcard.Config{Timeout: 500 * time.Millisecond, ReadTimeout: time.Second}

func newRig(t testing.TB, sim *idcardsim.Sim, cfg idcard.Config) *rig {
	t.Helper()
	master, path := transporttest.PtyPair(t)
	port, err := transport.Serial{}.OpenSerial(path, transport.SerialMode{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { port.Close() })
	r := &rig{sim: sim, port: port, runErr: make(chan error, 1), logs: &syncBuffer{}}
	cfg.Logger = slog.New(slog.NewJSONHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r.reader = idcard.NewSerialReader(port, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { r.runErr <- sim.Run(ctx, master) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.runErr:
		case <-time.After(5 * time.Second):
			t.Error("simulator did not stop")
		}
	})
	return r
}

// eventually retries f until it succeeds, for at most 5 s.
func eventually(t *testing.T, f func() error) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestReaderHappyPathAllCards(t *testing.T) {
	for _, g := range goldens() {
		t.Run(g.name, func(t *testing.T) {
			r := newRig(t, idcardsim.New(g.card), testCfg)
			ctx := ctxT(t)
			id, err := r.reader.ReadCard(ctx, idcard.ReadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer id.Wipe()
			if id.Type() != g.typ {
				t.Fatalf("type %v", id.Type())
			}
			for f, v := range g.fields {
				if got := id.Field(f); got != v {
					t.Errorf("%s = %q, want %q", f, got, v)
				}
			}
			if !bytes.Equal(id.Photo(), g.card.Photo) {
				t.Fatal("photo differs")
			}
			assertNoSecrets(t, "reader log", r.logs.String(), g.card)
			if !strings.Contains(r.logs.String(), idcard.MaskNumber(g.card.Number)) {
				t.Fatalf("the debug log should show the masked identity: %s", r.logs.String())
			}
		})
	}
}

func TestReaderSAMAndOptions(t *testing.T) {
	card := idcardsim.Resident()
	r := newRig(t, idcardsim.New(card), testCfg)
	ctx := ctxT(t)
	if err := r.reader.ResetSAM(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.reader.SAMStatus(ctx); err != nil {
		t.Fatal(err)
	}
	sam, err := r.reader.SAMID(ctx)
	if err != nil || sam.String() != "05000100310C3201E803000078563412" {
		t.Fatalf("SAM ID %v, %v", sam, err)
	}
	id, err := r.reader.ReadCard(ctx, idcard.ReadOptions{Fingerprint: true, AppendedAddress: true})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(id.Fingerprint(), card.Fingerprint) || id.Field(idcard.FieldAppendedAddress) != card.AppendedAddress {
		t.Fatalf("fingerprint %d bytes, appended address %q", len(id.Fingerprint()), id.Field(idcard.FieldAppendedAddress))
	}
	if r.sim.Commands(idcard.CmdReadFingerprint) != 1 || r.sim.Commands(idcard.CmdReadNewAddress) != 1 {
		t.Fatal("commands not seen by the simulator")
	}
	assertNoSecrets(t, "log", r.logs.String(), card)
	if strings.Contains(r.logs.String(), card.AppendedAddress) {
		t.Fatal("log leaks the appended address")
	}
	// A card without an appended address: "no content" is not an error.
	noAddr := *card
	noAddr.AppendedAddress = ""
	r.sim.SetCard(&noAddr)
	if id, err = r.reader.ReadCard(ctx, idcard.ReadOptions{AppendedAddress: true}); err != nil || id.Field(idcard.FieldAppendedAddress) != "" {
		t.Fatalf("no appended address: %v", err)
	}
	if st := r.reader.Stats(); st.Exchanges != 11 || st.BadFrames != 0 || st.Timeouts != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// Every fault gives its typed error, within the configured deadline.
func TestReaderFaults(t *testing.T) {
	for _, tc := range []struct {
		name   string
		faults idcardsim.Faults
		want   error
	}{
		{"no card", idcardsim.Faults{NoCard: true}, idcard.StatusNoCard},
		{"misread", idcardsim.Faults{Misread: true}, idcard.ErrMisread},
		{"reply checksum", idcardsim.Faults{BadChecksum: true}, idcard.ErrChecksum},
		{"SAM fault", idcardsim.Faults{SAMFault: true}, idcard.StatusSAMSelfTest},
		{"slow device", idcardsim.Faults{Delay: 1500 * time.Millisecond}, transport.ErrTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim := idcardsim.New(idcardsim.Resident())
			sim.SetFaults(tc.faults)
			r := newRig(t, sim, testCfg)
			start := time.Now()
			id, err := r.reader.ReadCard(ctxT(t), idcard.ReadOptions{})
			if !errors.Is(err, tc.want) || id != nil {
				t.Fatalf("ReadCard = %v, %v; want %v", id, err, tc.want)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("took %v", d)
			}
			stats := r.reader.Stats()
			if tc.want == idcard.ErrMisread && stats.Misreads != 1 || tc.want == idcard.ErrChecksum && stats.BadFrames != 1 ||
				tc.want == transport.ErrTimeout && stats.Timeouts != 1 {
				t.Fatalf("stats %+v", stats)
			}
			var st idcard.Status
			if errors.As(err, &st) != (tc.want == idcard.StatusNoCard || tc.want == idcard.StatusSAMSelfTest) {
				t.Fatalf("errors.As(Status) wrong for %v", err)
			}
			assertNoSecrets(t, "error", err.Error(), idcardsim.Resident())
			assertNoSecrets(t, "log", r.logs.String(), idcardsim.Resident())
			// The fault cleared, the same reader works again (a slow device first finishes what
			// it was doing: its late replies are flushed or rejected).
			sim.SetFaults(idcardsim.Faults{})
			eventually(t, func() error {
				id, err := r.reader.ReadCard(ctxT(t), idcard.ReadOptions{})
				if err == nil && id.Number() != idcardsim.CanaryResident {
					t.Fatal("wrong card data")
				}
				return err
			})
		})
	}
}

// A slow device that answers within the timeout is fine.
func TestReaderSlowButInTime(t *testing.T) {
	sim := idcardsim.New(idcardsim.Resident())
	sim.SetFaults(idcardsim.Faults{Delay: 50 * time.Millisecond})
	r := newRig(t, sim, testCfg)
	if _, err := r.reader.ReadCard(ctxT(t), idcard.ReadOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestReaderCancel(t *testing.T) {
	sim := idcardsim.New(idcardsim.Resident())
	sim.SetFaults(idcardsim.Faults{Delay: time.Hour})
	r := newRig(t, sim, idcard.Config{Timeout: time.Hour, ReadTimeout: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	if err := r.reader.FindCard(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("FindCard = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("cancel took %v", d)
	}
}

// Unplug: the driver's side of the pty hangs up, the next exchange fails with ErrClosed and does
// not hang. Replug: a new pty, a new port, the same simulator.
func TestReaderUnplugReplug(t *testing.T) {
	sim := idcardsim.New(idcardsim.Resident())
	r := newRig(t, sim, testCfg)
	ctx := ctxT(t)
	if err := r.reader.FindCard(ctx); err != nil {
		t.Fatal(err)
	}
	sim.Unplug()
	if err := <-r.runErr; !errors.Is(err, idcardsim.ErrUnplugged) {
		t.Fatalf("Run = %v, want ErrUnplugged", err)
	}
	r.runErr <- nil // for the cleanup
	start := time.Now()
	if _, err := r.reader.ReadCard(ctx, idcard.ReadOptions{}); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("ReadCard after unplug = %v, want ErrClosed", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("took %v", d)
	}
	r2 := newRig(t, sim, testCfg)
	if id, err := r2.reader.ReadCard(ctx, idcard.ReadOptions{}); err != nil || id.Number() != idcardsim.CanaryResident {
		t.Fatalf("after replug: %v", err)
	}
}

// Line noise before a reply (including a partial preamble) is skipped and counted.
func TestReaderResyncsOnGarbage(t *testing.T) {
	master, path := transporttest.PtyPair(t)
	port, err := transport.Serial{}.OpenSerial(path, transport.SerialMode{})
	if err != nil {
		t.Fatal(err)
	}
	defer port.Close()
	r := idcard.NewSerialReader(port, testCfg)
	done := make(chan error, 1)
	go func() {
		cmd := make([]byte, 10)
		master.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := master.Read(cmd); err != nil {
			done <- err
			return
		}
		_, err := master.Write(unhex(t, "00 13 AA AA 96 AA AA AA 96 69 00 08 00 00 9F 00 00 00 00 97"))
		done <- err
	}()
	if err := r.FindCard(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := r.Stats(); st.GarbageBytes != 5 {
		t.Fatalf("garbage %d, want 5", st.GarbageBytes)
	}
}

func TestReaderWatch(t *testing.T) {
	sim := idcardsim.New(nil)
	r := newRig(t, sim, testCfg)
	ctx, cancel := context.WithCancel(ctxT(t))
	events := make(chan idcard.Event, 16)
	done := make(chan error, 1)
	go func() { done <- r.reader.Watch(ctx, 10*time.Millisecond, func(e idcard.Event) { events <- e }) }()
	next := func(want idcard.EventKind) idcard.Event {
		t.Helper()
		select {
		case e := <-events:
			if e.Kind != want {
				t.Fatalf("event %v (%v), want %v", e.Kind, e.Err, want)
			}
			return e
		case <-time.After(3 * time.Second):
			t.Fatalf("no %v event", want)
		}
		return idcard.Event{}
	}
	sim.SetCard(idcardsim.Resident())
	next(idcard.CardInserted)
	sim.SetCard(nil)
	next(idcard.CardRemoved)
	sim.SetFaults(idcardsim.Faults{SAMFault: true})
	if e := next(idcard.ReaderFault); !errors.Is(e.Err, idcard.StatusSAMSelfTest) {
		t.Fatalf("fault %v", e.Err)
	}
	sim.SetFaults(idcardsim.Faults{})
	next(idcard.ReaderRecovered)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Watch = %v", err)
	}
}

func TestReaderWatchEndsOnUnplug(t *testing.T) {
	sim := idcardsim.New(idcardsim.Resident())
	r := newRig(t, sim, testCfg)
	done := make(chan error, 1)
	go func() { done <- r.reader.Watch(ctxT(t), 10*time.Millisecond, func(idcard.Event) {}) }()
	sim.Unplug()
	select {
	case err := <-done:
		if !errors.Is(err, transport.ErrClosed) {
			t.Fatalf("Watch = %v, want ErrClosed", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Watch did not end on unplug")
	}
}
