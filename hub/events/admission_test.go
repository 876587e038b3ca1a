package events

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

// TestTakeRefusesLate: under overload (a full group waits) a submission that already waited
// MaxWait is answered 429 (behind) instead of being committed late; under light load, or while
// the queue drains at shutdown, it is committed; and Admit refuses before a batch is read once
// the queue is at its bound.
func TestTakeRefusesLate(t *testing.T) {
	ev, err := New(Config{Secret: bytes.Repeat([]byte{5}, 32), MaxEvents: 10, MaxWait: 200 * time.Millisecond}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	sub := func(n int, waited time.Duration) *pending {
		return &pending{evs: make([]store.Event, n), done: make(chan struct{}), at: time.Now().Add(-waited)}
	}
	queue := func(ps ...*pending) {
		ev.q, ev.queued = ps, 0
		for _, p := range ps {
			ev.queued += len(p.evs)
		}
	}
	refused := func(p *pending) bool {
		select {
		case <-p.done:
			return errors.As(p.err, new(*OverloadError))
		default:
			return false
		}
	}

	late, fresh := sub(6, time.Second), sub(6, 0)
	queue(late, fresh)
	if err := ev.Admit(); err == nil {
		t.Fatal("Admit with 12 events queued (bound 10) = nil, want an overload")
	}
	if g := ev.take(false); len(g) != 1 || g[0] != fresh || !refused(late) || ev.queued != 0 {
		t.Fatalf("overload: group %v, late refused %v, %d queued", g, refused(late), ev.queued)
	}
	if err := ev.Admit(); err != nil {
		t.Fatalf("Admit with an empty queue = %v", err)
	}

	light := sub(3, time.Second)
	queue(light)
	if g := ev.take(false); len(g) != 1 || g[0] != light || refused(light) {
		t.Fatalf("light load: group %v", g)
	}

	draining := sub(12, time.Second)
	queue(draining)
	if g := ev.take(true); len(g) != 1 || g[0] != draining || refused(draining) {
		t.Fatalf("draining: group %v", g)
	}
}
