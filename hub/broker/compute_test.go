package broker

import (
	"net"
	"testing"
	"time"
)

// TestComputeConn: a handshake holds a compute token from a read that brought bytes until its
// next write or read, or until it is handshaken; a second handshake's read waits for the token;
// once handshaken, reads and writes take none.
func TestComputeConn(t *testing.T) {
	tokens := make(chan struct{}, 1)
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

	c1, p1 := pipe()
	c2, p2 := pipe()
	send(p1)
	if err := <-read(c1); err != nil {
		t.Fatal(err)
	}
	if len(tokens) != 1 || !c1.held {
		t.Fatalf("after a read that brought bytes: %d tokens taken, held %v; want the one", len(tokens), c1.held)
	}
	// c2's bytes come, but its read waits for c1's token.
	send(p2)
	r2 := read(c2)
	select {
	case err := <-r2:
		t.Fatalf("second handshake's read returned (%v) while the only token was held", err)
	case <-time.After(50 * time.Millisecond):
	}
	// c1 writes its flight: the token goes to c2.
	go func() { p1.Read(make([]byte, 8)) }() //nolint:errcheck
	if _, err := c1.Write([]byte("flight")); err != nil {
		t.Fatal(err)
	}
	if err := <-r2; err != nil {
		t.Fatal(err)
	}
	if c1.held || !c2.held || len(tokens) != 1 {
		t.Fatalf("after c1's write: c1 held %v, c2 held %v, %d taken", c1.held, c2.held, len(tokens))
	}
	c2.handshaken()
	if len(tokens) != 0 || c2.held {
		t.Fatal("handshaken kept its token")
	}
	send(p2)
	if err := <-read(c2); err != nil || len(tokens) != 0 {
		t.Fatalf("a read after the handshake took a token (%d) or failed: %v", len(tokens), err)
	}
	// The broker stopping: a read that brings bytes returns without waiting for a token.
	tokens <- struct{}{} // all taken by someone else
	close(stop)
	send(p1)
	if err := <-read(c1); err != nil || c1.held {
		t.Fatalf("read with the broker stopping: held %v, err %v", c1.held, err)
	}
}
