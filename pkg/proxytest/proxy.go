// Package proxytest is a TCP proxy for tests that puts network faults between a client and a
// server on loopback: cut every connection (and refuse new ones), blackhole traffic (connections
// stay open but nothing passes, as in a partition), and restore.
package proxytest

import (
	"io"
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
	p := &Proxy{Addr: ln.Addr().String(), upstream: upstream, ln: ln, conns: map[net.Conn]struct{}{}}
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

// Restore ends Cut and Blackhole. Connections that were blackholed are closed (their streams lost
// bytes, so they cannot go on).
func (p *Proxy) Restore() {
	p.mu.Lock()
	if p.blackhole {
		for c := range p.conns {
			c.Close()
		}
	}
	p.down, p.blackhole = false, false
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
		p.wg.Add(2)
		go p.pipe(c, u)
		go p.pipe(u, c)
	}
}

func (p *Proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	defer func() {
		dst.Close()
		src.Close()
		p.mu.Lock()
		delete(p.conns, dst)
		delete(p.conns, src)
		p.mu.Unlock()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			bh := p.blackhole
			p.mu.Unlock()
			if !bh {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
		}
		if err != nil {
			if err != io.EOF {
				return
			}
			return
		}
	}
}
