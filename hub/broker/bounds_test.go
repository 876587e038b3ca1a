package broker

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/ca/catest"
	"github.com/kioskfleet/kioskfleet/hub/connlimit"
	"github.com/kioskfleet/kioskfleet/pkg/floodtest"
)

// closedSoon reports whether the broker closes c within d (it reads and drops what arrives).
func closedSoon(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !errors.As(err, &ne) || !ne.Timeout()
}

func (e *connEnv) waitStat(t *testing.T, r Reason, n uint64) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); e.b.Stats()[r] != n; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s counted %d times, want %d", r, e.b.Stats()[r], n)
		}
	}
}

// TestPendingLimits: connections not yet admitted to a session hold a slot per client address
// and in all; one over a limit is closed at once and counted, others are not disturbed, and a
// closed or admitted connection gives its slot back.
func TestPendingLimits(t *testing.T) {
	e := startConnEnv(t, func(c *Config) { c.Pending = connlimit.Limits{PerAddr: 2, Total: 3} })
	addr := e.b.Addr()
	a1 := floodtest.DialFrom(t, "127.0.0.2", addr) // silent: they wait in the TLS handshake
	floodtest.DialFrom(t, "127.0.0.2", addr)
	over := floodtest.DialFrom(t, "127.0.0.2", addr)
	if !closedSoon(over, 2*time.Second) {
		t.Fatal("a third connection from one address was not closed")
	}
	e.waitStat(t, ReasonAddrLimit, 1)
	b1 := floodtest.DialFrom(t, "127.0.0.3", addr)
	if closedSoon(b1, 200*time.Millisecond) {
		t.Fatal("another address's connection was closed")
	}
	if !closedSoon(floodtest.DialFrom(t, "127.0.0.4", addr), 2*time.Second) {
		t.Fatal("a fourth connection in all was not closed")
	}
	e.waitStat(t, ReasonPendingLimit, 1)
	if closedSoon(a1, 100*time.Millisecond) {
		t.Fatal("a connection within the limits was closed")
	}

	// A closed connection gives its slot back; an admitted one too, once it has its session.
	a1.Close()
	for deadline := time.Now().Add(5 * time.Second); e.b.pending.Held() != 2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d slots held after a close, want 2", e.b.pending.Held())
		}
	}
	c := e.dial(t, "kiosk-admitted", false)
	connected(t, c, "kiosk-admitted")
	if n := e.b.pending.Held(); n != 2 {
		t.Fatalf("%d slots held with the kiosk admitted, want 2", n)
	}
}

// TestOneWaitingConnectionPerDevice: one device certificate holds at most its live session and
// one connection past the TLS handshake that has not sent CONNECT: every newer one closes the
// older, and the live session is not disturbed until a CONNECT takes it over.
func TestOneWaitingConnectionPerDevice(t *testing.T) {
	e := startConnEnv(t)
	const id = "kiosk-one"
	live := e.dial(t, id, false)
	connected(t, live, id)
	cert, _ := catest.DeviceCert(t, e.ca, id, time.Hour)
	cfg := catest.ClientConfig(e.ca, cert)
	var half []*tls.Conn
	for i := range 5 {
		c, err := tls.Dial("tcp", e.b.Addr(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.Write([]byte{0x10, 0x40}) // a CONNECT's fixed header, and nothing more
		half = append(half, c)
		e.waitStat(t, ReasonReplaced, uint64(i))
	}
	for i, c := range half[:4] {
		if !closedSoon(c, 2*time.Second) {
			t.Fatalf("half-sent CONNECT %d still open after a newer one", i)
		}
	}
	if closedSoon(half[4], 100*time.Millisecond) {
		t.Fatal("the newest half-sent CONNECT was closed")
	}
	if !live.IsConnectionOpen() || !e.hears(t, live, id, "ack-1") {
		t.Fatal("the live session was disturbed by connections that never sent CONNECT")
	}
	// The kiosk's next connection replaces the waiting one and takes the session over.
	next := e.dial(t, id, false)
	connected(t, next, id)
	if !closedSoon(half[4], 2*time.Second) {
		t.Fatal("the waiting connection was not replaced")
	}
	cut(t, live, "the live session, taken over")
}

// TestConnectSizeLimit: a CONNECT announced over MaxConnectSize is refused before it is read;
// the kiosk's own CONNECT fits.
func TestConnectSizeLimit(t *testing.T) {
	e := startConnEnv(t, func(c *Config) { c.MaxConnectSize = 100 })
	cert, _ := catest.DeviceCert(t, e.ca, "kiosk-big", time.Hour)
	c, err := tls.Dial("tcp", e.b.Addr(), catest.ClientConfig(e.ca, cert))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte{0x10, 0xe5, 0x01}) // CONNECT of 3 + 229 bytes announced
	if !closedSoon(c, 2*time.Second) {
		t.Fatal("an oversize CONNECT was not refused")
	}
	e.waitStat(t, ReasonOversize, 1)
	ok := e.dial(t, "kiosk-ok", false)
	connected(t, ok, "kiosk-ok")
}
