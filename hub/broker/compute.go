package broker

import (
	"net"
	"slices"
	"sync"
	"sync/atomic"
)

// computeConn is a kiosk's TCP connection under its TLS handshake: it holds one of the broker's
// compute tokens (Config.HandshakeCompute) while the handshake computes, from each read that
// brings the kiosk's bytes until the handshake next writes or reads (then it waits on the
// kiosk, or on the network, and needs no core). After the handshake it is a plain connection.
// Read and Write are called by the handshake's goroutine only until handshaken; after it, by the
// connection's reader and writer as usual, without tokens.
type computeConn struct {
	net.Conn
	tokens *computeTokens
	stop   <-chan struct{} // the broker stopping: no token is waited for then
	reads  int             // reads that brought bytes (the handshake's goroutine only)
	held   bool            // a token held (the handshake's goroutine only)
	done   atomic.Bool     // handshaken
}

func (c *computeConn) Read(p []byte) (int, error) {
	if c.done.Load() {
		return c.Conn.Read(p)
	}
	c.release()
	n, err := c.Conn.Read(p)
	if err == nil {
		c.reads++
		// Past the ClientHello, the kiosk has done its part of the handshake's work and waits
		// for the rest of it: it goes first, so that handshakes end rather than all advancing
		// together until the kiosks' connect timeouts pass.
		c.held = c.tokens.acquire(c.reads > 1, c.stop)
	}
	return n, err
}

func (c *computeConn) Write(p []byte) (int, error) {
	if !c.done.Load() {
		c.release()
	}
	return c.Conn.Write(p)
}

// handshaken gives back the token, if held, and ends the handshake's use of tokens.
func (c *computeConn) handshaken() {
	c.release()
	c.done.Store(true)
}

func (c *computeConn) release() {
	if c.held {
		c.held = false
		c.tokens.release()
	}
}

// computeTokens is a counting semaphore whose waiters are served in two classes, each first come
// first served: handshakes past their first flight (urgent) before new ones.
type computeTokens struct {
	mu      sync.Mutex
	free    int
	waiting [2][]chan struct{} // urgent, new
}

func newComputeTokens(n int) *computeTokens { return &computeTokens{free: n} }

// acquire takes a token, waiting for one; false if stop closed first (a token handed to the
// abandoned wait meanwhile is passed on).
func (t *computeTokens) acquire(urgent bool, stop <-chan struct{}) bool {
	class := 1
	if urgent {
		class = 0
	}
	t.mu.Lock()
	if t.free > 0 && len(t.waiting[0]) == 0 && (urgent || len(t.waiting[1]) == 0) {
		t.free--
		t.mu.Unlock()
		return true
	}
	ch := make(chan struct{}, 1)
	t.waiting[class] = append(t.waiting[class], ch)
	t.mu.Unlock()
	select {
	case <-ch:
		return true
	case <-stop:
	}
	t.mu.Lock()
	if i := slices.Index(t.waiting[class], ch); i >= 0 {
		t.waiting[class] = slices.Delete(t.waiting[class], i, i+1)
		t.mu.Unlock()
		return false
	}
	t.mu.Unlock()
	<-ch // release handed it a token (under mu, before dropping it from the queue): pass it on
	t.release()
	return false
}

// release gives a token back: to the first urgent waiter, else the first new one, else free.
func (t *computeTokens) release() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, q := range t.waiting {
		if len(q) > 0 {
			q[0] <- struct{}{}
			q[0] = nil
			t.waiting[i] = q[1:]
			return
		}
	}
	t.free++
}
