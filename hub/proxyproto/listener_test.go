package proxyproto_test

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kioskfleet/kioskfleet/hub/proxyproto"
	"github.com/kioskfleet/kioskfleet/pkg/polltest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The balancer connects from 127.0.0.2 (trusted); anyone else from 127.0.0.1. The whole of
// 127.0.0.0/8 is the loopback on Linux.
var (
	balancer = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}
	stranger = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}
)

type refusals struct {
	mu   sync.Mutex
	errs []error
	from []net.Addr
}

func (r *refusals) note(a net.Addr, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs, r.from = append(r.errs, err), append(r.from, a)
}

func (r *refusals) wait(t *testing.T, n int) []error {
	t.Helper()
	var errs []error
	if !polltest.Poll(5*time.Second, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		errs = append([]error(nil), r.errs...)
		return len(errs) >= n
	}) {
		t.Fatalf("%d refusals, want %d: %v", len(errs), n, errs)
	}
	return errs
}

func listen(t *testing.T, timeout time.Duration) (*proxyproto.Listener, *refusals) {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &refusals{}
	l := proxyproto.Listen(inner, proxyproto.Config{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")},
		Timeout: timeout, OnRefuse: r.note})
	t.Cleanup(func() { l.Close() })
	return l, r
}

// dial connects from `from` and writes what.
func dial(t *testing.T, l net.Listener, from *net.TCPAddr, what []byte) net.Conn {
	t.Helper()
	c, err := (&net.Dialer{LocalAddr: from}).Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if len(what) > 0 {
		if _, err := c.Write(what); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func accept(t *testing.T, l net.Listener) net.Conn {
	t.Helper()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() { c, err := l.Accept(); ch <- res{c, err} }()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatal(r.err)
		}
		t.Cleanup(func() { r.c.Close() })
		return r.c
	case <-time.After(5 * time.Second):
		t.Fatal("nothing accepted")
		return nil
	}
}

func readAll(t *testing.T, c net.Conn, n int) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A balancer's connection is handed on with the client's address, and with the client's bytes
// after the header intact; a LOCAL one (a health check) with the balancer's own.
func TestTrustedBalancer(t *testing.T) {
	l, r := listen(t, time.Second)
	dial(t, l, balancer, append(header(0x21, 0x11, tcp4(client4, hub4)), "hello"...))
	c := accept(t, l)
	if got := c.RemoteAddr().String(); got != client4.String() {
		t.Errorf("RemoteAddr %s, want the client's %s", got, client4)
	}
	if got := readAll(t, c, 5); got != "hello" {
		t.Errorf("read %q after the header, want hello", got)
	}

	check := dial(t, l, balancer, append(header(0x20, 0x00, nil), "ping"...))
	c = accept(t, l)
	if got, want := c.RemoteAddr().String(), check.LocalAddr().String(); got != want {
		t.Errorf("LOCAL: RemoteAddr %s, want the balancer's own %s", got, want)
	}
	if got := readAll(t, c, 4); got != "ping" {
		t.Errorf("read %q, want ping", got)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.errs) > 0 {
		t.Errorf("refused %v", r.errs)
	}
}

// From a balancer, no header, a malformed one, or none within the timeout: refused, closed,
// told with the reason; the next good connection is still handed on.
func TestTrustedBalancerRefused(t *testing.T) {
	l, r := listen(t, 300*time.Millisecond)
	bad := []net.Conn{
		dial(t, l, balancer, []byte("\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03 a TLS client hello")),
		dial(t, l, balancer, header(0x21, 0x41, tcp4(client4, hub4))),
		dial(t, l, balancer, header(0x21, 0x11, tcp4(client4, hub4))[:20]), // then silence
	}
	errs := r.wait(t, 3)
	reasons := map[string]bool{}
	for _, err := range errs {
		reasons[proxyproto.Reason(err)] = true
	}
	for _, want := range []string{"missing", "malformed", "timeout"} {
		if !reasons[want] {
			t.Errorf("reasons %v (%v), want %s among them", reasons, errs, want)
		}
	}
	for _, c := range bad {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("a refused connection still open: %v", err)
		}
	}
	dial(t, l, balancer, header(0x21, 0x11, tcp4(client4, hub4)))
	if c := accept(t, l); c.RemoteAddr().String() != client4.String() {
		t.Errorf("after the refusals: RemoteAddr %s", c.RemoteAddr())
	}
}

// Anyone else's connection is handed on as it is; one that starts with a PROXY header (v2 or
// v1) is refused at its first read, and told, so that no client can claim another's address.
func TestStranger(t *testing.T) {
	l, r := listen(t, time.Second)
	const hello = "\x16\x03\x01 not a header"
	plain := dial(t, l, stranger, []byte(hello))
	c := accept(t, l)
	if got, want := c.RemoteAddr().String(), plain.LocalAddr().String(); got != want {
		t.Errorf("RemoteAddr %s, want %s", got, want)
	}
	if got := readAll(t, c, len(hello)); got != hello {
		t.Errorf("read %q", got)
	}
	// A partial signature, then other bytes: not a header, handed on whole.
	dial(t, l, stranger, []byte("\r\n\r\nhello"))
	if got := readAll(t, accept(t, l), 9); got != "\r\n\r\nhello" {
		t.Errorf("read %q", got)
	}
	for i, h := range [][]byte{header(0x21, 0x11, tcp4(client4, hub4)), []byte("PROXY TCP4 203.0.113.7 10.0.0.5 51234 8883\r\n")} {
		dial(t, l, stranger, h)
		c := accept(t, l)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 64)); !errors.Is(err, proxyproto.ErrUntrusted) {
			t.Errorf("header %d from a stranger: read %v, want ErrUntrusted", i, err)
		}
	}
	errs := r.wait(t, 2)
	for _, err := range errs {
		if proxyproto.Reason(err) != "untrusted" {
			t.Errorf("refusal %v, want reason untrusted", err)
		}
	}
}

// Close ends a header being read and the accept loop, leaking nothing (TestMain checks).
func TestCloseWhileReading(t *testing.T) {
	l, _ := listen(t, time.Minute)
	dial(t, l, balancer, sig[:5])
	polltest.Until(t, 5*time.Second, "the header's reader waiting for more", func() bool { return proxyproto.Reading(l) == 1 })
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
}

// countingListener counts the connections its listener accepted.
type countingListener struct {
	net.Listener
	n atomic.Int32
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// The accept goroutine takes the connections the kernel queued without waiting for Accept at
// each (a server whose goroutine is slow to come back still has them all at its next turn);
// Close closes those never accepted.
func TestAcceptsAhead(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: inner}
	l := proxyproto.Listen(cl, proxyproto.Config{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}})
	var cs []net.Conn
	for range 10 {
		cs = append(cs, dial(t, l, stranger, nil))
	}
	polltest.Until(t, 5*time.Second, "10 connections accepted with nobody calling Accept", func() bool { return cl.n.Load() == 10 })
	if _, err := l.Accept(); err != nil {
		t.Fatal(err)
	}
	l.Close()
	for i, c := range cs[1:] {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("connection %d, queued at Close: read %v, want it closed", i+1, err)
		}
	}
}

// With no balancer trusted there is no accept goroutine (TestMain checks that none is left):
// connections are handed on as they are, a PROXY header refused at the first Read.
func TestNoBalancer(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &refusals{}
	l := proxyproto.Listen(inner, proxyproto.Config{OnRefuse: r.note})
	defer l.Close()
	dial(t, l, stranger, []byte("hello"))
	if got := readAll(t, accept(t, l), 5); got != "hello" {
		t.Errorf("read %q", got)
	}
	dial(t, l, balancer, header(0x21, 0x11, tcp4(client4, hub4)))
	c := accept(t, l)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 64)); !errors.Is(err, proxyproto.ErrUntrusted) {
		t.Errorf("header with no balancer trusted: read %v, want ErrUntrusted", err)
	}
	r.wait(t, 1)
	l.Close()
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
}
