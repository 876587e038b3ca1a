// Package connlimit bounds the connections a server holds per client address and in all, before
// it knows who is asking: each connection holds a slot of a Counter until it gives it back, and
// one over a limit is refused. The HTTP listener holds a slot for a connection's whole life
// (Listener); the MQTT broker until a connection is admitted to a session.
//
// A client address is an IPv4 address or an IPv6 /64: one subscriber usually has a whole /64.
package connlimit

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
)

var (
	// ErrPerAddr is wrapped by the refusal of a connection whose address holds its limit.
	ErrPerAddr = errors.New("too many connections from this address")
	// ErrTotal is wrapped by the refusal of a connection when all addresses together hold theirs.
	ErrTotal = errors.New("too many connections")
)

// Limits are the slots a Counter hands out. A limit of 0 or less is no limit.
type Limits struct {
	PerAddr int // slots one client address may hold
	Total   int // slots all addresses together may hold
}

// Refusal is why Acquire refused a slot.
type Refusal struct {
	Addr  netip.Prefix // the client address
	Limit int          // the limit it met
	err   error        // ErrPerAddr or ErrTotal
}

func (r *Refusal) Error() string {
	if r.err == ErrTotal {
		return fmt.Sprintf("%v (limit %d in all)", r.err, r.Limit)
	}
	return fmt.Sprintf("%v: %s (limit %d)", r.err, r.Addr, r.Limit)
}

func (r *Refusal) Unwrap() error { return r.err }

// Counter counts the slots held by each client address. It is safe for concurrent use.
type Counter struct {
	lim   Limits
	mu    sync.Mutex
	held  map[netip.Prefix]int
	total int
}

// New returns a Counter handing out slots within l.
func New(l Limits) *Counter { return &Counter{lim: l, held: map[netip.Prefix]int{}} }

// Acquire takes a slot for a connection from addr, or refuses with a *Refusal. release gives
// the slot back; calling it again does nothing.
func (c *Counter) Acquire(addr net.Addr) (release func(), err error) {
	key := Key(addr)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch n := c.held[key]; {
	case c.lim.PerAddr > 0 && n >= c.lim.PerAddr:
		return nil, &Refusal{Addr: key, Limit: c.lim.PerAddr, err: ErrPerAddr}
	case c.lim.Total > 0 && c.total >= c.lim.Total:
		return nil, &Refusal{Addr: key, Limit: c.lim.Total, err: ErrTotal}
	}
	c.held[key]++
	c.total++
	var once sync.Once
	return func() { once.Do(func() { c.release(key) }) }, nil
}

func (c *Counter) release(key netip.Prefix) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held[key]--; c.held[key] <= 0 {
		delete(c.held, key)
	}
	c.total--
}

// Held returns the slots held in all.
func (c *Counter) Held() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}

// Key is the client address addr counts under: its IP, an IPv6 one cut to its /64. Addresses
// that are not IP (a Unix socket) all count under the zero Prefix.
func Key(addr net.Addr) netip.Prefix {
	var ip netip.Addr
	switch a := addr.(type) {
	case *net.TCPAddr:
		ip = a.AddrPort().Addr()
	case *net.UDPAddr:
		ip = a.AddrPort().Addr()
	default:
		ap, err := netip.ParseAddrPort(addr.String())
		if err != nil {
			return netip.Prefix{}
		}
		ip = ap.Addr()
	}
	ip = ip.Unmap().WithZone("")
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}
