package broker

import (
	"container/list"
	"context"
	"sync"
	"time"
)

// slots bounds the TLS handshakes in progress (Config.MaxHandshakes). A freed slot goes to the
// connection that has waited longest while the line moves (first come, first served), and to the
// one that has waited least once it does not (the longest wait over a quarter of the bound):
// adaptive LIFO, as servers shed load under overload.
//
// In a reconnect storm more kiosks connect than the hub can take at once, and each gives up after
// its own connect timeout, counted from its dial. First come, first served then hands every slot
// to the connection that has waited longest, whose kiosk has the least time left: under a long
// line each handshake starts just before its kiosk gives up, and the CPU spent on it is lost
// with the next retry. Served newest first, a connection that gets a slot gets it while its kiosk
// still waits, and the ones that waited longest are the ones turned away (after the wait bound),
// as cheaply as before (no TLS work done), to come back after a short busy backoff. While the
// line is short, the oldest first: nobody waits long, and nobody is turned away for being early.
type slots struct {
	n       int
	maxWait time.Duration // the wait bound
	now     func() time.Time
	mu      sync.Mutex
	free    int
	wait    list.List // of *slotWaiter, oldest first
}

type slotWaiter struct {
	since   time.Time
	granted chan struct{} // closed when a slot is handed to the waiter
	done    bool          // handed a slot (under slots.mu)
}

func newSlots(n int, maxWait time.Duration) *slots {
	return &slots{n: n, maxWait: maxWait, free: n, now: time.Now}
}

// acquire takes a slot, waiting at most the bound; it reports whether it got one. The caller
// gives a slot back with release.
func (s *slots) acquire(ctx context.Context) bool {
	s.mu.Lock()
	if s.free > 0 {
		s.free--
		s.mu.Unlock()
		return true
	}
	w := &slotWaiter{since: s.now(), granted: make(chan struct{})}
	e := s.wait.PushBack(w)
	s.mu.Unlock()
	t := time.NewTimer(s.maxWait)
	defer t.Stop()
	select {
	case <-w.granted:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !w.done {
		s.wait.Remove(e)
		return false
	}
	s.releaseLocked() // handed one as it gave up: pass it on
	return false
}

// release gives a slot back: to a waiter, if any.
func (s *slots) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseLocked()
}

func (s *slots) releaseLocked() {
	e := s.wait.Front()
	if e != nil && s.now().Sub(e.Value.(*slotWaiter).since) > s.maxWait/4 {
		e = s.wait.Back() // the line does not move: the newest, which has the most time left
	}
	if e != nil {
		w := s.wait.Remove(e).(*slotWaiter)
		w.done = true
		close(w.granted)
		return
	}
	s.free++
}

// inUse returns how many slots are taken.
func (s *slots) inUse() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n - s.free
}
