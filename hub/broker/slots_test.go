package broker

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// TestSlots: a freed handshake slot goes to the connection that waited longest while the line
// moves, and to the one that waited least once the longest wait passed a quarter of the bound;
// the ones that waited longest give up at the bound, and no slot is lost or made.
func TestSlots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSlots(1, 8*time.Second)
		if !s.acquire(t.Context()) {
			t.Fatal("a free slot was not taken")
		}
		got := make(chan string, 4)
		for _, name := range []string{"first", "second", "third", "fourth"} {
			go func() {
				if s.acquire(t.Context()) {
					got <- name
				} else {
					got <- name + " gave up"
				}
			}()
			synctest.Wait() // waiting in acquire before the next one comes
		}
		s.release()
		synctest.Wait()
		if g := <-got; g != "first" {
			t.Fatalf("the line moves: the freed slot went to %s, want the first waiter", g)
		}
		<-time.After(3 * time.Second) // fake time: the longest wait passes a quarter of the bound
		s.release()
		synctest.Wait()
		if g := <-got; g != "fourth" {
			t.Fatalf("the line stalls: the freed slot went to %s, want the newest waiter", g)
		}
		<-time.After(5 * time.Second) // the bound passes with the slot held
		synctest.Wait()
		if g := map[string]bool{<-got: true, <-got: true}; !g["second gave up"] || !g["third gave up"] {
			t.Fatalf("got %v, want the second and third waiters to give up", g)
		}
		if n := s.inUse(); n != 1 {
			t.Fatalf("%d slots in use, want 1", n)
		}
		s.release()
		if n := s.inUse(); n != 0 {
			t.Fatalf("%d slots in use after the last release, want 0", n)
		}
	})
}

// TestSlotsCancel: a waiter whose context ends gets no slot, and the slot freed after it is not
// lost.
func TestSlotsCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSlots(1, time.Minute)
		s.acquire(t.Context())
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan bool)
		go func() { done <- s.acquire(ctx) }()
		synctest.Wait()
		cancel()
		if <-done {
			t.Fatal("a cancelled waiter got a slot")
		}
		s.release()
		if !s.acquire(t.Context()) || s.inUse() != 1 {
			t.Fatalf("the freed slot was lost: %d in use", s.inUse())
		}
	})
}
