// Package proxytest is a TCP proxy for tests that puts network faults between a client and a
// server on loopback: cut every connection (and refuse new ones), blackhole traffic (connections
// stay open but nothing passes, as in a partition), reset connections (RST), add latency with
// jitter, cap bandwidth, and restore. Play applies a seeded schedule of such faults (see Schedule).
package proxytest

import (
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"
)

// Proxy forwards TCP connections from Addr to an upstream address.
type Proxy struct {
	Addr     string
	upstream string
	ln       net.Listener

	mu        sync.Mutex
	down      bool // cut: refuse and close
	blackhole bool
	latency   time.Duration // added to every chunk, each direction
	jitter    time.Duration // up to this much more, random per chunk (order kept)
	bps       int           // bandwidth cap per direction in bytes/s; 0 = none
	rnd       *rand.Rand
	conns     map[net.Conn]struct{}
	wg        sync.WaitGroup
}

// New starts a proxy on 127.0.0.1:0 to upstream and stops it when the test ends.
func New(t testing.TB, upstream string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Addr: ln.Addr().String(), upstream: upstream, ln: ln, conns: map[net.Conn]struct{}{},
		rnd: rand.New(rand.NewPCG(1, 2))}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// SetUpstream changes where new connections go (e.g. a restarted server on a new port).
func (p *Proxy) SetUpstream(addr string) {
	p.mu.Lock()
	p.upstream = addr
	p.mu.Unlock()
}

// Cut closes every connection and refuses new ones until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
}

// Blackhole stops forwarding bytes without closing connections, until Restore.
func (p *Proxy) Blackhole() {
	p.mu.Lock()
	p.blackhole = true
	p.mu.Unlock()
}

// Reset aborts every open connection with a TCP RST (SO_LINGER 0) on both sides; new
// connections are accepted as usual.
func (p *Proxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	// Every side first, then close: a pump that sees its peer reset closes the other side at
	// once, and that close must send RST too, not FIN.
	for c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
	}
	for c := range p.conns {
		c.Close()
	}
}

// SetLatency delays every chunk of bytes, in each direction, by fixed plus a random share of
// jitter. Bytes keep their order, as on a TCP stream.
func (p *Proxy) SetLatency(fixed, jitter time.Duration) {
	p.mu.Lock()
	p.latency, p.jitter = fixed, jitter
	p.mu.Unlock()
}

// SetBandwidth caps each direction of each connection at bytesPerSec (0 removes the cap).
func (p *Proxy) SetBandwidth(bytesPerSec int) {
	p.mu.Lock()
	p.bps = bytesPerSec
	p.mu.Unlock()
}

// Restore ends Cut, Blackhole, latency and the bandwidth cap. Connections that were blackholed
// are closed (their streams lost bytes, so they cannot go on).
func (p *Proxy) Restore() {
	p.mu.Lock()
	if p.blackhole {
		for c := range p.conns {
			c.Close()
		}
	}
	p.down, p.blackhole = false, false
	p.latency, p.jitter, p.bps = 0, 0, 0
	p.mu.Unlock()
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() {
	p.ln.Close()
	p.Cut()
	p.wg.Wait()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down, up := p.down, p.upstream
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		u, err := net.DialTimeout("tcp", up, 5*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[u] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(4)
		go p.pipe(c, u)
		go p.pipe(u, c)
	}
}

type chunk struct {
	b   []byte
	due time.Time
}

// pipe copies src to dst: a reader stamps each chunk with its due time (latency, jitter) or drops
// it (blackhole); a writer sends it when due, paced by the bandwidth cap. The queue between them
// is bounded, so a slow direction pushes back on its sender as a real link would.
func (p *Proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	q := make(chan chunk, 64)
	go p.write(dst, src, q)
	defer close(q)
	var last time.Time
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			bh, due := p.blackhole, time.Now().Add(p.latency)
			if p.jitter > 0 {
				due = due.Add(time.Duration(p.rnd.Int64N(int64(p.jitter))))
			}
			p.mu.Unlock()
			if due.Before(last) {
				due = last // TCP keeps order: jitter never lets a chunk overtake
			}
			last = due
			if !bh {
				q <- chunk{append([]byte(nil), buf[:n]...), due}
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *Proxy) write(dst, src net.Conn, q <-chan chunk) {
	defer p.wg.Done()
	defer func() {
		dst.Close()
		src.Close()
		p.mu.Lock()
		delete(p.conns, dst)
		delete(p.conns, src)
		p.mu.Unlock()
		for range q { // let the reader finish
		}
	}()
	for c := range q {
		if d := time.Until(c.due); d > 0 {
			time.Sleep(d)
		}
		for b := c.b; len(b) > 0; {
			p.mu.Lock()
			bps := p.bps
			p.mu.Unlock()
			n := len(b)
			if bps > 0 {
				n = min(n, max(bps/20, 1)) // 50 ms worth at a time
			}
			if _, err := dst.Write(b[:n]); err != nil {
				return
			}
			if bps > 0 {
				time.Sleep(time.Duration(n) * time.Second / time.Duration(bps))
			}
			b = b[n:]
		}
	}
	// The reader ended: the source closed or failed; close both ends as before.
}
