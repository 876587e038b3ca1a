package connlimit

import (
	"net"
	"sync"
	"sync/atomic"
)

// DefaultRefusing is how many refused connections a Listener hands on at once by default.
const DefaultRefusing = 64

// Listener accepts connections through a Counter: one within the limits holds its slot until it
// is closed. One over a limit is refused: it is still handed on, marked (RefusalOf), so that the
// server can tell the client why in its own protocol (an HTTP 503), while fewer than Refusing
// refused connections are open; beyond that it is closed at once. Either way OnRefuse, if set,
// is told.
type Listener struct {
	net.Listener
	Counter  *Counter
	Refusing int // refused connections handed on at once; 0: DefaultRefusing, < 0: none
	OnRefuse func(addr net.Addr, err error)

	refusing atomic.Int64
}

// Accept returns the next connection, within the limits or marked refused.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		release, err := l.Counter.Acquire(c.RemoteAddr())
		if err == nil {
			return &conn{Conn: c, release: release}, nil
		}
		if l.OnRefuse != nil {
			l.OnRefuse(c.RemoteAddr(), err)
		}
		max := l.Refusing
		if max == 0 {
			max = DefaultRefusing
		}
		if l.refusing.Add(1) <= int64(max) {
			return &conn{Conn: c, refused: err, release: func() { l.refusing.Add(-1) }}, nil
		}
		l.refusing.Add(-1)
		c.Close()
	}
}

// conn is a connection accepted by a Listener; closing it gives its slot back.
type conn struct {
	net.Conn
	refused error
	release func()
	once    sync.Once
}

func (c *conn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// RefusalOf returns why a Listener refused c (or the connection c wraps, such as a TLS
// connection's), or nil if it did not.
func RefusalOf(c net.Conn) error {
	for c != nil {
		switch x := c.(type) {
		case *conn:
			return x.refused
		case interface{ NetConn() net.Conn }:
			c = x.NetConn()
		default:
			return nil
		}
	}
	return nil
}
