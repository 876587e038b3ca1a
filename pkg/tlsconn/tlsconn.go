// Package tlsconn wraps a *tls.Conn so that it never ends a connection with bytes the peer
// cannot authenticate.
//
// crypto/tls (Go 1.26) seals a record, spending its sequence number, before it writes it, and
// tls.Conn.Close sends a close_notify alert even after a write failed. When a write times out
// (nothing written, or part of a record), that alert goes out under a sequence number the peer
// has not reached, or inside the truncated record: the peer fails with "local error: tls: bad
// record MAC" instead of seeing the connection end. A Conn closes only the TCP connection, with
// no close_notify, once a write has failed, as tls.Conn.Close already does while a write is
// under way. RFC 8446 §6.1 asks for close_notify before closing the write side; after a failed
// write that side is already broken, no alert the peer could read can follow, and the peer sees
// an end of stream it can tell from an orderly close.
package tlsconn

import (
	"crypto/tls"
	"net"
	"sync/atomic"
)

// State bits: closing, a write failed, and the count of writes under way above them.
const (
	closing     = 1
	writeFailed = 2
	writer      = 4
)

// Conn is a *tls.Conn whose Close sends close_notify only when every write so far succeeded.
// Write and Close are safe to call concurrently, as with tls.Conn; a Write after Close returns
// net.ErrClosed.
type Conn struct {
	*tls.Conn
	state atomic.Uint32
}

// New wraps c.
func New(c *tls.Conn) *Conn { return &Conn{Conn: c} }

// Write writes p as TLS records. A failed write marks the connection: Close then sends nothing.
func (c *Conn) Write(p []byte) (int, error) {
	for {
		x := c.state.Load()
		if x&closing != 0 {
			return 0, net.ErrClosed
		}
		if c.state.CompareAndSwap(x, x+writer) {
			break
		}
	}
	n, err := c.Conn.Write(p)
	if err != nil {
		c.state.Or(writeFailed)
	}
	c.state.Add(^uint32(writer - 1)) // minus one writer
	return n, err
}

// Close closes the connection: with close_notify if no write failed or is under way, else
// the TCP connection alone.
func (c *Conn) Close() error {
	x := c.state.Or(closing)
	switch {
	case x&closing != 0:
		return net.ErrClosed
	case x != 0:
		return c.NetConn().Close()
	}
	return c.Conn.Close()
}
