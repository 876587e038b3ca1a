package broker

import (
	"net"
	"testing"
	"time"
)

// taken returns how many of n tokens are taken.
func taken(t *computeTokens, n int) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return n - t.free
}

// TestComputeConn: a handshake holds a compute token from a read that brought bytes until its
// next write or read, or until it is handshaken; other handshakes' reads wait for the token, a
// handshake past its first flight before a new one; once handshaken, reads take none.
func TestComputeConn(t *testing.T) {
	tokens := newComputeTokens(1)
	stop := make(chan struct{})
	pipe := func() (*computeConn, net.Conn) {
		a, b := net.Pipe()
		t.Cleanup(func() { a.Close(); b.Close() })
		return &computeConn{Conn: a, tokens: tokens, stop: stop}, b
	}
	send := func(peer net.Conn) {
		go peer.Write([]byte("x")) //nolint:errcheck // the read below checks it came
	}
	read := func(c *computeConn) <-chan error {
		done := make(chan error, 1)
		go func() {
			_, err := c.Read(make([]byte, 1))
			done <- err
		}()
		return done
	}
	waiting := func(class int) int {
		tokens.mu.Lock()
		defer tokens.mu.Unlock()
		return len(tokens.waiting[class])
	}
	until := func(what string, ok func() bool) {
		t.Helper()
		poll := time.NewTicker(time.Millisecond)
		defer poll.Stop()
		for deadline := time.Now().Add(5 * time.Second); !ok(); <-poll.C {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 5 s", what)
			}
		}
	}

	c1, p1 := pipe()
	c2, p2 := pipe()
	c3, p3 := pipe()
	send(p1)
	if err := <-read(c1); err != nil {
		t.Fatal(err)
	}
	if taken(tokens, 1) != 1 || !c1.held {
		t.Fatalf("after a read that brought bytes: %d tokens taken, held %v; want the one", taken(tokens, 1), c1.held)
	}
	// c3 is past its first flight (a read before); c2 is new. Both wait for c1's token.
	c3.reads = 1
	send(p2)
	r2 := read(c2)
	until("c2 waiting", func() bool { return waiting(1) == 1 })
	send(p3)
	r3 := read(c3)
	until("c3 waiting", func() bool { return waiting(0) == 1 })
	// c1 writes its flight: the token goes to c3, which came later but is further along.
	go func() { p1.Read(make([]byte, 8)) }() //nolint:errcheck
	if _, err := c1.Write([]byte("flight")); err != nil {
		t.Fatal(err)
	}
	if err := <-r3; err != nil {
		t.Fatal(err)
	}
	if c1.held || !c3.held || c2.held || taken(tokens, 1) != 1 {
		t.Fatalf("after c1's write: c1 held %v, c3 held %v, c2 held %v, %d taken", c1.held, c3.held, c2.held, taken(tokens, 1))
	}
	c3.handshaken()
	if err := <-r2; err != nil {
		t.Fatal(err)
	}
	if c3.held || !c2.held || taken(tokens, 1) != 1 {
		t.Fatalf("after c3 handshaken: c3 held %v, c2 held %v, %d taken", c3.held, c2.held, taken(tokens, 1))
	}
	c2.handshaken()
	if taken(tokens, 1) != 0 {
		t.Fatal("handshaken kept its token")
	}
	send(p2)
	if err := <-read(c2); err != nil || taken(tokens, 1) != 0 {
		t.Fatalf("a read after the handshake took a token (%d) or failed: %v", taken(tokens, 1), err)
	}
	// The broker stopping: a read that brings bytes returns without waiting for a token.
	if !tokens.acquire(false, stop) { // all taken by someone else
		t.Fatal("a free token not taken")
	}
	close(stop)
	send(p1)
	if err := <-read(c1); err != nil || c1.held {
		t.Fatalf("read with the broker stopping: held %v, err %v", c1.held, err)
	}
}

// TestComputeTokensAbandonedWait: a wait given up because the broker stops leaves the queue, and
// a token handed to it as it gave up is passed on, not lost.
func TestComputeTokensAbandonedWait(t *testing.T) {
	tokens := newComputeTokens(1)
	if !tokens.acquire(false, nil) {
		t.Fatal("a free token not taken")
	}
	stop := make(chan struct{})
	gaveUp := make(chan bool)
	go func() { gaveUp <- tokens.acquire(true, stop) }()
	waiting := func() int {
		tokens.mu.Lock()
		defer tokens.mu.Unlock()
		return len(tokens.waiting[0])
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(5 * time.Second); waiting() == 0; <-tick.C {
		if time.Now().After(deadline) {
			t.Fatal("the wait never queued")
		}
	}
	// Give up while the token is being handed over: release sends it into the waiter's channel
	// under the lock; close stop first so that the waiter may see either.
	close(stop)
	tokens.release()
	if got := <-gaveUp; got {
		tokens.release() // it took the token before seeing stop: fine, give it back
	}
	if waiting() != 0 || taken(tokens, 1) != 0 {
		t.Fatalf("after the abandoned wait: %d waiting, %d of 1 taken; want none", waiting(), taken(tokens, 1))
	}
}
