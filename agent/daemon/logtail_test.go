package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kioskfleet/kioskfleet/agent/logring"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// pubRecorder decodes what the tail publishes as the hub would, and keeps it.
type pubRecorder struct {
	mu      sync.Mutex
	batches []wire.LogBatch
	down    bool // the link is down: publishing fails
}

func (p *pubRecorder) PublishLog(b []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return errors.New("link: not connected")
	}
	m, err := wire.DecodeLogBatch(b)
	if err != nil {
		return fmt.Errorf("the hub would refuse it: %w", err)
	}
	p.batches = append(p.batches, m)
	return nil
}

func (p *pubRecorder) get() []wire.LogBatch {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]wire.LogBatch(nil), p.batches...)
}

func texts(bs []wire.LogBatch) (out []string, dropped int) {
	for _, b := range bs {
		for _, l := range b.Lines {
			out = append(out, l.Text)
		}
		dropped += b.Dropped
	}
	return out, dropped
}

// runTail runs a tail over a fresh ring in a synctest bubble; the returned stop ends it.
func runTail(t *testing.T) (*logTail, *slog.Logger, *pubRecorder, func()) {
	ring := logring.New(1000, slog.LevelInfo)
	log := slog.New(ring.Handler(slog.DiscardHandler))
	pub := &pubRecorder{}
	tail := newLogTail(ring, log)
	tail.pub = pub
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); tail.run(ctx) }()
	return tail, log, pub, func() { cancel(); <-done }
}

func TestLogTailStreamsUntilItsDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tail, log, pub, stop := runTail(t)
		defer stop()
		log.Info("before the tail")
		tail.start("c-1", 3*time.Second)
		synctest.Wait()
		log.Info("card read", "number", "11010519491231002X")
		<-time.After(time.Second)
		if got, _ := texts(pub.get()); len(got) != 2 || got[0] != "before the tail" || got[1] != "card read number=[id]" {
			t.Fatalf("lines after 1s: %q", got)
		}
		<-time.After(3 * time.Second)
		synctest.Wait()
		bs := pub.get()
		last := bs[len(bs)-1]
		if !last.End || last.LeftMs != 0 || last.Tail != "c-1" {
			t.Fatalf("last batch %+v: not the end", last)
		}
		for _, b := range bs[:len(bs)-1] {
			if b.End || b.LeftMs <= 0 || b.LeftMs > 3000 {
				t.Fatalf("batch before the end: %+v", b)
			}
		}
		// Ended: lines logged from now on are not streamed.
		log.Info("after the tail")
		<-time.After(2 * time.Second)
		synctest.Wait()
		if n := len(pub.get()); n != len(bs) {
			t.Fatalf("%d batches after the end", n-len(bs))
		}
	})
}

func TestLogTailStopsAndRestarts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tail, log, pub, stop := runTail(t)
		defer stop()
		tail.start("c-1", 10*time.Minute)
		synctest.Wait()
		tail.start("c-2", 0) // stop
		synctest.Wait()
		bs := pub.get()
		if last := bs[len(bs)-1]; !last.End || last.Tail != "c-2" {
			t.Fatalf("after stop: %+v", last)
		}
		tail.start("c-3", time.Minute)
		synctest.Wait()
		log.Info("again")
		<-time.After(time.Second)
		bs = pub.get()
		if last := bs[len(bs)-1]; last.End || last.Tail != "c-3" || last.Lines[len(last.Lines)-1].Text != "again" {
			t.Fatalf("after restart: %+v", last)
		}
	})
}

// Over the rate, lines are skipped and counted; while the link is down they wait in the ring.
func TestLogTailBounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tail, log, pub, stop := runTail(t)
		defer stop()
		tail.start("c-1", time.Minute)
		synctest.Wait()
		for i := range 500 {
			log.Info("burst", "i", i, "pad", strings.Repeat("x", 900))
		}
		<-time.After(5 * time.Second)
		got, dropped := texts(pub.get())
		if len(got)+dropped != 500 || dropped == 0 || len(got) < 100 {
			t.Fatalf("500 lines: %d sent, %d dropped", len(got), dropped)
		}
		for _, b := range pub.get() {
			if len(b.Lines) > wire.MaxLogLines || len(wire.Encode(b)) > wire.MaxLogBatchBytes {
				t.Fatalf("a batch of %d lines, %d bytes", len(b.Lines), len(wire.Encode(b)))
			}
		}
		pub.mu.Lock()
		pub.down = true
		pub.mu.Unlock()
		log.Info("while down")
		<-time.After(3 * time.Second)
		pub.mu.Lock()
		pub.down = false
		pub.mu.Unlock()
		<-time.After(time.Second)
		if got, _ := texts(pub.get()); got[len(got)-1] != "while down" {
			t.Fatalf("a line logged while the link was down was not sent after: %q", got[len(got)-1])
		}
	})
}
