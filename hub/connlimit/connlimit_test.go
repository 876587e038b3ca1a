package connlimit

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/floodtest"
)

func tcp(s string) net.Addr { return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s)) }

func TestCounter(t *testing.T) {
	c := New(Limits{PerAddr: 2, Total: 3})
	a1, _ := c.Acquire(tcp("10.0.0.1:1000"))
	a2, _ := c.Acquire(tcp("10.0.0.1:1001"))
	if _, err := c.Acquire(tcp("10.0.0.1:1002")); !errors.Is(err, ErrPerAddr) {
		t.Fatalf("third from one address: %v, want ErrPerAddr", err)
	}
	if _, err := c.Acquire(tcp("10.0.0.2:1000")); err != nil {
		t.Fatalf("another address: %v", err)
	}
	_, err := c.Acquire(tcp("10.0.0.3:1000"))
	var r *Refusal
	if !errors.Is(err, ErrTotal) || !errors.As(err, &r) || r.Limit != 3 {
		t.Fatalf("fourth in all: %v, want ErrTotal with limit 3", err)
	}
	a1()
	a1() // a second release gives nothing back
	if c.Held() != 2 {
		t.Fatalf("held %d after one release, want 2", c.Held())
	}
	if _, err := c.Acquire(tcp("10.0.0.1:1003")); err != nil {
		t.Fatalf("after a release: %v", err)
	}
	if _, err := c.Acquire(tcp("10.0.0.1:1004")); !errors.Is(err, ErrPerAddr) {
		t.Fatalf("the double release freed a slot: %v", err)
	}
	a2()
}

func TestCounterNoLimits(t *testing.T) {
	c := New(Limits{})
	for i := range 1000 {
		if _, err := c.Acquire(tcp("10.0.0.1:1000")); err != nil {
			t.Fatalf("slot %d: %v", i, err)
		}
	}
}

func TestKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7:80":               "192.0.2.7/32",
		"[::ffff:192.0.2.7]:80":      "192.0.2.7/32",
		"[2001:db8:1:2:aaaa::1]:443": "2001:db8:1:2::/64",
		"[2001:db8:1:2:bbbb::9]:443": "2001:db8:1:2::/64",
		"[fe80::1%eth0]:443":         "fe80::/64",
	} {
		if got := Key(net.TCPAddrFromAddrPort(netip.MustParseAddrPort(in))).String(); got != want {
			t.Errorf("Key(%s) = %s, want %s", in, got, want)
		}
	}
	if got := Key(&net.UnixAddr{Name: "/run/x.sock", Net: "unix"}); got.IsValid() {
		t.Errorf("unix address keyed %v", got)
	}
}

func TestListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusals := make(chan error, 16)
	l := &Listener{Listener: ln, Counter: New(Limits{PerAddr: 2}), Refusing: 1,
		OnRefuse: func(_ net.Addr, err error) { refusals <- err }}
	defer l.Close()
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	next := func() net.Conn {
		t.Helper()
		select {
		case c := <-accepted:
			return c
		case <-time.After(5 * time.Second):
			t.Fatal("nothing accepted")
			return nil
		}
	}
	addr := ln.Addr().String()
	floodtest.DialFrom(t, "127.0.0.2", addr)
	floodtest.DialFrom(t, "127.0.0.2", addr)
	a, b := next(), next()
	if RefusalOf(a) != nil || RefusalOf(b) != nil {
		t.Fatal("connections within the limit marked refused")
	}
	// The third from 127.0.0.2 is handed on, refused; the fourth, with one refused already
	// open, is closed at once.
	floodtest.DialFrom(t, "127.0.0.2", addr)
	r := next()
	if err := RefusalOf(r); !errors.Is(err, ErrPerAddr) {
		t.Fatalf("third connection: refusal %v, want ErrPerAddr", err)
	}
	fourth := floodtest.DialFrom(t, "127.0.0.2", addr)
	fourth.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := fourth.Read(make([]byte, 1)); err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("fourth connection: read %v, want it closed", err)
	}
	if len(refusals) != 2 {
		t.Fatalf("%d refusals reported, want 2", len(refusals))
	}
	// Another address is not affected; a closed connection gives its slot back.
	floodtest.DialFrom(t, "127.0.0.3", addr)
	if RefusalOf(next()) != nil {
		t.Fatal("another address refused")
	}
	a.Close()
	r.Close()
	floodtest.DialFrom(t, "127.0.0.2", addr)
	if RefusalOf(next()) != nil {
		t.Fatal("refused after a slot was given back")
	}
	if n := l.Counter.Held(); n != 3 {
		t.Fatalf("held %d, want 3", n)
	}
}
