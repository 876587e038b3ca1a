// Package floodtest floods a hub the way the attack run of issue 16 did, without logging in, to
// prove that what the hub holds for it stays bounded: slow request bodies to an HTTP endpoint
// (SlowBodies) and half-sent MQTT CONNECTs over TLS with one device certificate (HalfConnects),
// each on its own connection, at a chosen count, until the context ends. Regression tests run
// them at small counts, make soak at full counts. RSS reads a process's resident memory.
//
// A flood keeps each connection open as long as the hub does; with Redial, a connection the hub
// closes is opened again after that pause, so that the pressure lasts.
package floodtest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Flood is a running flood.
type Flood struct {
	wg      sync.WaitGroup
	settled sync.WaitGroup // each connection's first attempt done: open and sent, or refused

	dialed  atomic.Int64
	open    atomic.Int64
	sent    atomic.Int64
	refused atomic.Int64
	failed  atomic.Int64
}

// Stats is what a flood has done so far.
type Stats struct {
	Dialed  int64 // connections attempted
	Open    int64 // connections open now, their payload sent as far as it goes
	Sent    int64 // bytes sent in all
	Refused int64 // connections the hub closed (or answered and closed)
	Failed  int64 // connections that could not be opened or set up (dial, TLS handshake)
}

func (s Stats) String() string {
	return fmt.Sprintf("dialed=%d open=%d sent=%dKiB refused=%d failed=%d", s.Dialed, s.Open, s.Sent>>10, s.Refused, s.Failed)
}

// Stats returns a snapshot of the flood's counters.
func (f *Flood) Stats() Stats {
	return Stats{Dialed: f.dialed.Load(), Open: f.open.Load(), Sent: f.sent.Load(), Refused: f.refused.Load(), Failed: f.failed.Load()}
}

// Settled waits until every connection's first attempt is done: its payload sent and the
// connection open, or refused. It returns early when ctx ends.
func (f *Flood) Settled(ctx context.Context) error {
	done := make(chan struct{})
	go func() { f.settled.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Wait waits until every connection has ended (after the flood's context ended).
func (f *Flood) Wait() { f.wg.Wait() }

// Common are the settings of every flood.
type Common struct {
	Conns int // connections at once
	// From are the local addresses to dial from, in turn (on loopback, 127.0.0.0/8 is all
	// local: Loopback gives a few, so that the flood comes from other addresses than the test's
	// own client); empty: the system's choice.
	From []string
	// Redial, if positive, opens a connection again this long after the hub closed it.
	Redial time.Duration
}

// Loopback returns n loopback addresses from 127.0.0.first on: sources for Common.From.
func Loopback(first, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("127.0.%d.%d", (first+i)/250, (first+i)%250)
	}
	return out
}

// run runs conns workers of attempt until ctx ends.
func (f *Flood) run(ctx context.Context, c Common, attempt func(ctx context.Context, d *net.Dialer) (net.Conn, error)) {
	f.settled.Add(c.Conns)
	for i := range c.Conns {
		d := &net.Dialer{Timeout: 10 * time.Second}
		if len(c.From) > 0 {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(c.From[i%len(c.From)])}
		}
		f.wg.Go(func() {
			first := true
			settle := func() {
				if first {
					first = false
					f.settled.Done()
				}
			}
			defer settle()
			for ctx.Err() == nil {
				f.dialed.Add(1)
				conn, err := attempt(ctx, d)
				if err != nil {
					f.failed.Add(1)
				} else {
					f.open.Add(1)
					settle()
					hold(ctx, conn)
					f.open.Add(-1)
					if ctx.Err() == nil {
						f.refused.Add(1)
					}
				}
				settle()
				if c.Redial <= 0 {
					<-ctx.Done()
					return
				}
				select {
				case <-ctx.Done():
				case <-time.After(c.Redial):
				}
			}
		})
	}
}

// hold keeps conn open until the peer closes it or ctx ends, reading and dropping what arrives.
func hold(ctx context.Context, conn net.Conn) {
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	defer conn.Close()
	buf := make([]byte, 512)
	for {
		if _, err := conn.Read(buf); err != nil {
			return
		}
	}
}

// write sends p on conn within d, counting what went.
func (f *Flood) write(conn net.Conn, p []byte, d time.Duration) error {
	conn.SetWriteDeadline(time.Now().Add(d))
	n, err := conn.Write(p)
	f.sent.Add(int64(n))
	conn.SetWriteDeadline(time.Time{})
	return err
}

// SlowBodies is a flood of HTTP requests whose bodies never finish: each connection sends a
// request header announcing a body of Announce bytes, the first Send bytes of it at once, and
// then nothing. The body is the start of a JSON object with one long string, so that a JSON
// decoder keeps all of it while it waits for the rest; a form parser keeps it too.
type SlowBodies struct {
	Common
	URL      string // e.g. https://127.0.0.1:8080/api/v1/enroll (an attacker verifies no certificate)
	Announce int    // Content-Length; default Send + 1
	Send     int    // default 1 MiB - 1 KiB: about what a hub without a small limit takes
}

// Start starts the flood; it runs until ctx ends.
func (s SlowBodies) Start(ctx context.Context) (*Flood, error) {
	u, err := url.Parse(s.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("floodtest: %q: want an http:// or https:// URL", s.URL)
	}
	if s.Send <= 0 {
		s.Send = 1<<20 - 1<<10
	}
	if s.Announce <= s.Send {
		s.Announce = s.Send + 1
	}
	body := append([]byte(`{"token":"`), bytes.Repeat([]byte("a"), max(s.Send-10, 0))...)[:s.Send]
	head := fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
		u.RequestURI(), u.Host, s.Announce)
	f := &Flood{}
	f.run(ctx, s.Common, func(ctx context.Context, d *net.Dialer) (net.Conn, error) {
		conn, err := d.DialContext(ctx, "tcp", u.Host)
		if err != nil {
			return nil, err
		}
		if u.Scheme == "https" { // as an attacker, verifying no certificate
			tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true, ServerName: u.Hostname()})
			hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := tc.HandshakeContext(hctx); err != nil {
				conn.Close()
				return nil, err
			}
			conn = tc
		}
		if err := f.write(conn, head, 10*time.Second); err != nil {
			return conn, nil // refused: hold sees it closed
		}
		_ = f.write(conn, body, 30*time.Second)
		return conn, nil
	})
	return f, nil
}

// HalfConnects is a flood of MQTT connections over TLS that never finish their CONNECT: each
// completes the TLS handshake with TLS (a device certificate), announces a CONNECT of Announce
// bytes and sends the first Send bytes of it.
type HalfConnects struct {
	Common
	Addr     string      // the hub's MQTT address
	TLS      *tls.Config // with a device certificate; a session cache makes redials cheap; ServerName defaults to Addr's host
	Announce int         // remaining length announced; default 256 KiB + 1 KiB - 4: the hub's packet limit, fixed header included
	Send     int         // default Announce - 1
}

// Start starts the flood; it runs until ctx ends.
func (h HalfConnects) Start(ctx context.Context) (*Flood, error) {
	if h.TLS == nil {
		return nil, fmt.Errorf("floodtest: a TLS configuration with a device certificate is required")
	}
	if h.Announce <= 0 {
		h.Announce = 256<<10 + 1<<10 - 4
	}
	if h.Send <= 0 || h.Send > h.Announce {
		h.Send = h.Announce - 1
	}
	if h.TLS.ServerName == "" && !h.TLS.InsecureSkipVerify {
		// As tls.Dial does: without it every handshake fails in the client, before a byte is sent.
		host, _, err := net.SplitHostPort(h.Addr)
		if err != nil {
			return nil, fmt.Errorf("floodtest: %q: %w", h.Addr, err)
		}
		h.TLS = h.TLS.Clone()
		h.TLS.ServerName = host
	}
	pkt := []byte{0x10} // CONNECT, then its remaining length (§2.2.3)
	for n := h.Announce; ; {
		b := byte(n % 128)
		if n /= 128; n > 0 {
			b |= 0x80
		}
		if pkt = append(pkt, b); n == 0 {
			break
		}
	}
	// MQTT 3.1.1, clean session, keep alive 30 s, then zeros.
	body := append([]byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 30}, make([]byte, max(h.Send-10, 0))...)
	pkt = append(pkt, body[:h.Send]...)
	f := &Flood{}
	f.run(ctx, h.Common, func(ctx context.Context, d *net.Dialer) (net.Conn, error) {
		raw, err := d.DialContext(ctx, "tcp", h.Addr)
		if err != nil {
			return nil, err
		}
		conn := tls.Client(raw, h.TLS)
		hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := conn.HandshakeContext(hctx); err != nil {
			raw.Close()
			return nil, err
		}
		_ = f.write(conn, pkt, 30*time.Second)
		return conn, nil
	})
	return f, nil
}

// RSS returns the resident memory of process pid, in bytes (VmRSS in /proc/PID/status).
func RSS(pid int) (int64, error) {
	fh, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("floodtest: no VmRSS for process %d", pid)
}

// DialFrom opens a TCP connection to addr from the local address src (a client at an address of
// its own, e.g. one of Loopback), closed when the test ends.
func DialFrom(t testing.TB, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
