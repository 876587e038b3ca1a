package proxyproto

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
)

// Defaults for zero Config fields.
const (
	// DefaultTimeout: §2 asks a receiver that times out waiting for the header to wait at least
	// 3 s, to cover a TCP retransmit.
	DefaultTimeout    = 5 * time.Second
	DefaultMaxReading = 1024
	// handOn is how many accepted connections may wait for Accept (with balancers).
	handOn = 256
)

// Config configures a Listener.
type Config struct {
	// Trusted are the load balancers (addresses or prefixes) whose connections must start with
	// a version 2 header. Nobody else may send one.
	Trusted []netip.Prefix
	// Timeout bounds the wait for a trusted connection's header (default DefaultTimeout).
	Timeout time.Duration
	// MaxReading bounds the trusted connections whose header is read at once (default
	// DefaultMaxReading); more wait in the listen backlog.
	MaxReading int
	// OnRefuse, if set, is told of each connection refused (and closed): the peer's address and
	// why, an error wrapping ErrUntrusted, ErrMissing or ErrMalformed, or the read's error
	// (os.ErrDeadlineExceeded: no whole header within Timeout). Reason names it for a metric.
	OnRefuse func(peer net.Addr, err error)
}

// Reason names why a connection was refused, for a metric label: untrusted, missing, malformed,
// timeout or read_error.
func Reason(err error) string {
	switch {
	case errors.Is(err, ErrUntrusted):
		return "untrusted"
	case errors.Is(err, ErrMissing):
		return "missing"
	case errors.Is(err, ErrMalformed):
		return "malformed"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	}
	return "read_error"
}

// Reasons are the values Reason returns.
var Reasons = []string{"untrusted", "missing", "malformed", "timeout", "read_error"}

// Listener hands on the connections of an inner listener. A trusted balancer's connection is
// handed on once its header is read (on a goroutine of its own, so that one slow balancer
// connection does not hold up the others), its RemoteAddr the client's address the header
// gives (for LOCAL, a health check, the balancer's own); one without a valid header is refused.
// Anyone else's is handed on at once, as it is; if its first bytes are a PROXY header (version
// 1 or 2), its first Read refuses it. Create with Listen.
//
// With no balancer trusted (the default), Accept accepts on the caller's goroutine, as a plain
// listener does. With balancers, an accept goroutine hands connections on through a queue
// (handOn), so that it takes what the kernel has queued at each of its turns: through an
// unbuffered channel it waited for the server's goroutine at every connection or two, and the
// server's next `go serve(conn)` put it back at the end of the run queue, a turn of the whole
// scheduler per connection on a hub busy with a flood's TLS handshakes.
type Listener struct {
	inner net.Listener
	cfg   Config
	out   chan accepted
	sem   chan struct{} // headers being read
	done  chan struct{} // closed by Close
	once  sync.Once
	wg    sync.WaitGroup

	mu      sync.Mutex
	reading map[net.Conn]struct{} // closed by Close
	closed  bool
}

type accepted struct {
	c   net.Conn
	err error
}

var _ net.Listener = (*Listener)(nil)

// Listen returns a Listener on inner; closing it closes inner.
func Listen(inner net.Listener, cfg Config) *Listener {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxReading <= 0 {
		cfg.MaxReading = DefaultMaxReading
	}
	l := &Listener{inner: inner, cfg: cfg, sem: make(chan struct{}, cfg.MaxReading),
		done: make(chan struct{}), reading: map[net.Conn]struct{}{}}
	if len(cfg.Trusted) > 0 {
		l.out = make(chan accepted, handOn)
		l.wg.Go(l.run)
	}
	return l
}

// Accept returns the next connection, or the inner listener's error.
func (l *Listener) Accept() (net.Conn, error) {
	if l.out == nil { // no balancer: nobody's header is read
		c, err := l.inner.Accept()
		if err != nil {
			return nil, err
		}
		return &sniffed{Conn: c, l: l}, nil
	}
	select {
	case a := <-l.out:
		return a.c, a.err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Addr is the inner listener's address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

// Close closes the inner listener and the connections whose header is being read, and waits
// for the Listener's goroutines.
func (l *Listener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.done)
		err = l.inner.Close()
		l.mu.Lock()
		l.closed = true
		for c := range l.reading {
			c.Close()
		}
		l.mu.Unlock()
		l.wg.Wait()
	drain: // what was handed on and never accepted
		for {
			select {
			case a := <-l.out:
				if a.c != nil {
					a.c.Close()
				}
			default:
				break drain
			}
		}
	})
	return err
}

func (l *Listener) run() {
	for {
		c, err := l.inner.Accept()
		if err != nil {
			// Handed on, for the server to decide (it rides out EMFILE); the loop goes on
			// only when someone is still accepting.
			if !l.hand(accepted{err: err}) || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if !l.trusts(c.RemoteAddr()) {
			if !l.hand(accepted{c: &sniffed{Conn: c, l: l}}) {
				c.Close()
				return
			}
			continue
		}
		select {
		case l.sem <- struct{}{}:
		case <-l.done:
			c.Close()
			return
		}
		if !l.track(c) {
			<-l.sem
			c.Close()
			return
		}
		l.wg.Go(func() {
			defer func() { <-l.sem }()
			l.readHeader(c)
		})
	}
}

// hand gives a to Accept; false if the Listener was closed first.
func (l *Listener) hand(a accepted) bool {
	select {
	case l.out <- a:
		return true
	case <-l.done:
		return false
	}
}

func (l *Listener) trusts(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return false
	}
	ip := ta.AddrPort().Addr().Unmap()
	for _, p := range l.cfg.Trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// track notes c as being read, so that Close closes it; false if the Listener is closed.
func (l *Listener) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.reading[c] = struct{}{}
	return true
}

func (l *Listener) untrack(c net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.reading, c)
}

// readHeader reads a trusted connection's header and hands the connection on, or refuses it.
// §2: the receiver must not process the connection before it has a complete and valid header.
func (l *Listener) readHeader(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(l.cfg.Timeout))
	h, err := Read(c)
	l.untrack(c)
	if err != nil {
		select {
		case <-l.done: // closed by Close
			c.Close()
		default:
			if errors.Is(err, os.ErrDeadlineExceeded) {
				err = fmt.Errorf("no whole PROXY protocol header within %v: %w", l.cfg.Timeout, err)
			}
			l.refuse(c, err)
		}
		return
	}
	c.SetReadDeadline(time.Time{})
	var pc net.Conn = c
	if h.Source.IsValid() {
		pc = &proxied{Conn: c, remote: net.TCPAddrFromAddrPort(h.Source)}
	}
	if !l.hand(accepted{c: pc}) {
		c.Close()
	}
}

func (l *Listener) refuse(c net.Conn, err error) {
	c.Close()
	if l.cfg.OnRefuse != nil {
		l.cfg.OnRefuse(c.RemoteAddr(), err)
	}
}

// proxied is a balancer's connection relayed for a client: RemoteAddr is the client's.
type proxied struct {
	net.Conn
	remote net.Addr
}

func (c *proxied) RemoteAddr() net.Addr { return c.remote }

// NetConn returns the balancer's connection.
func (c *proxied) NetConn() net.Conn { return c.Conn }

// sniffed is the connection of a peer that is not a trusted balancer: its first Read refuses
// it if it starts with a PROXY header (§5), else hands on what it read.
type sniffed struct {
	net.Conn
	l    *Listener
	once sync.Once
	head []byte // read while sniffing, not yet returned
	err  error  // the refusal
}

func (c *sniffed) Read(p []byte) (int, error) {
	c.once.Do(c.sniff)
	if c.err != nil {
		return 0, c.err
	}
	if len(c.head) > 0 {
		n := copy(p, c.head)
		c.head = c.head[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// sniff reads until the bytes read are no longer the start of a PROXY header, or are a whole
// signature: it reads past the first byte only for a peer whose first bytes are one's (a TLS
// client's first byte is 0x16), so it never waits for bytes a peer would not send.
func (c *sniffed) sniff() {
	var buf [12]byte
	n := 0
	for {
		isV2 := bytes.HasPrefix(signature, buf[:n])
		isV1 := bytes.HasPrefix(v1[:5], buf[:min(n, 5)])
		switch {
		case n > 0 && !isV2 && !isV1:
			c.head = buf[:n]
			return
		case n == len(signature) && isV2, n >= 5 && isV1:
			c.err = fmt.Errorf("%w (%s)", ErrUntrusted, c.RemoteAddr())
			c.l.refuse(c.Conn, c.err)
			return
		}
		m, err := c.Conn.Read(buf[n:])
		n += m
		if err != nil {
			if n > 0 {
				c.head = buf[:n] // hand on what came; the error comes again on the next Read
			} else {
				c.err = err
			}
			return
		}
	}
}
