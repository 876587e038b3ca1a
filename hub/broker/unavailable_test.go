package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	pahopackets "github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/kioskfleet/kioskfleet/hub/ca/catest"
	"github.com/kioskfleet/kioskfleet/pkg/polltest"
)

// TestRefusalForLoadIsRetryable: a CONNECT that gets no authorization verdict in time (the
// store did not answer) is refused with CONNACK 0x03, server unavailable, which tells the kiosk
// to retry soon; a verdict against the device gets 0x05, not authorized.
func TestRefusalForLoadIsRetryable(t *testing.T) {
	e := startConnEnv(t)
	for _, tc := range []struct {
		err    error
		want   error
		reason Reason
	}{
		{fmt.Errorf("device k: store: %w", context.DeadlineExceeded), pahopackets.ErrorRefusedServerUnavailable, ReasonUnavailable},
		{fmt.Errorf("store down: %w", ErrUnavailable), pahopackets.ErrorRefusedServerUnavailable, ReasonUnavailable},
		{errors.New("device k is revoked"), pahopackets.ErrorRefusedNotAuthorised, ReasonConnectRefused},
	} {
		before := e.b.Stats()[tc.reason]
		c := e.dialWith(t, "kiosk-refused", func(serial string) { e.fail[serial] = tc.err })
		if !c.connect.WaitTimeout(10*time.Second) || !errors.Is(c.connect.Error(), tc.want) {
			t.Errorf("authorize %q: connect %v, want %v", tc.err, c.connect.Error(), tc.want)
		}
		if n := e.b.Stats()[tc.reason] - before; n != 1 {
			t.Errorf("authorize %q: %s counted %d times", tc.err, tc.reason, n)
		}
	}
}

// TestNoHandshakeSlot: a connection that finds every handshake slot taken for half the connect
// timeout is closed before any TLS work, and counted as unavailable.
func TestNoHandshakeSlot(t *testing.T) {
	e := startConnEnv(t, func(c *Config) { c.MaxHandshakes, c.ConnectTimeout = 1, 2*time.Second })
	silent, err := net.Dial("tcp", e.b.Addr()) // takes the only slot and sends nothing
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	for deadline := time.Now().Add(5 * time.Second); len(e.b.hs) == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the silent connection never took the handshake slot")
		}
	}
	cert, _ := catest.DeviceCert(t, e.ca, "kiosk-queued", time.Hour)
	start := time.Now()
	c, err := tls.Dial("tcp", e.b.Addr(), catest.ClientConfig(e.ca, cert))
	if err == nil {
		c.Close()
		t.Fatal("handshake done without a slot")
	}
	// The broker closes without reading the ClientHello: the kiosk sees a reset (or an EOF).
	if d := time.Since(start); !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) || d > 1900*time.Millisecond {
		t.Fatalf("after %v: %v; want a reset within half the connect timeout", d, err)
	}
	if n := e.b.Stats()[ReasonUnavailable]; n != 1 {
		t.Fatalf("unavailable counted %d times", n)
	}
}

// TestHoldUntilOpen: with Hold, the broker listens but serves nobody until Open, so that the
// hub's handlers are subscribed before any device can publish.
func TestHoldUntilOpen(t *testing.T) {
	e := startConnEnv(t, func(c *Config) { c.Hold = true })
	cert, _ := catest.DeviceCert(t, e.ca, "kiosk-early", time.Hour)
	cfg := catest.ClientConfig(e.ca, cert)
	d := &net.Dialer{Deadline: time.Now().Add(300 * time.Millisecond)}
	if c, err := tls.DialWithDialer(d, "tcp", e.b.Addr(), cfg); err == nil {
		c.Close()
		t.Fatal("TLS handshake done before Open")
	}
	e.b.Open()
	c := e.dial(t, "kiosk-early", false)
	connected(t, c, "kiosk-early")
}

// TestAcceptWaitsInLine: with every handshake slot taken and as many connections again waiting
// for one, the broker accepts no more (the kiosk waits in the kernel's listen queue, at no cost
// to either side) instead of accepting and refusing it; once a slot is free, it is accepted.
func TestAcceptWaitsInLine(t *testing.T) {
	e := startConnEnv(t, func(c *Config) { c.MaxHandshakes, c.ConnectTimeout = 1, 20*time.Second })
	accepted := func() uint64 {
		e.b.mu.Lock()
		defer e.b.mu.Unlock()
		return e.b.accepted
	}
	waitAccepted := func(n uint64) {
		t.Helper()
		polltest.Until(t, 5*time.Second, fmt.Sprintf("%d connections accepted", n), func() bool { return accepted() == n })
	}
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", e.b.Addr()) // silent: it sends no ClientHello
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	inSlot := dial()
	waitAccepted(1)
	dial() // in line for the slot
	waitAccepted(2)
	third := dial() // the kernel completes the TCP handshake; the broker does not accept it
	if closedSoon(third, 300*time.Millisecond) || accepted() != 2 {
		t.Fatalf("the third connection was accepted (%d in all) or closed while the line was full", accepted())
	}
	inSlot.Close() // its handshake fails at once: the slot goes to the second, the line to the third
	waitAccepted(3)
	if n := e.b.Stats()[ReasonUnavailable] + e.b.Stats()[ReasonPendingLimit]; n != 0 {
		t.Fatalf("%d connections refused for load, want none", n)
	}
}
