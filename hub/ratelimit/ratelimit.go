// Package ratelimit limits requests per client address, for the endpoints where an attacker
// guesses (password login, token, device authorization and user codes): a token bucket per
// address, an IPv6 client counted by its /64 (one subscriber's prefix), in a table of bounded
// size. The client address is the connection's, or, behind proxies the operator names as
// trusted, the one they add to X-Forwarded-For.
package ratelimit

import (
	"math"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Rate is a sustained rate with a burst: Burst requests at once, then one every Every.
type Rate struct {
	Every time.Duration
	Burst int
}

// PerMinute is a rate of n requests a minute, with a burst of burst.
func PerMinute(n, burst int) Rate { return Rate{Every: time.Minute / time.Duration(n), Burst: burst} }

// Unlimited is no limit: New returns nil for it, and a nil Limiter allows everything.
var Unlimited = Rate{Burst: -1}

// MaxAddrs bounds the table: past it, idle addresses are dropped, and when none is idle a new
// address goes unlimited (and is counted in Stats) rather than push out one being limited.
const MaxAddrs = 100_000

// Limiter is a token bucket per client address. It is safe for concurrent use.
type Limiter struct {
	rate Rate
	now  func() time.Time

	mu        sync.Mutex
	buckets   map[netip.Prefix]bucket
	untracked uint64
}

type bucket struct {
	tokens float64
	at     time.Time
}

// New returns a limiter of rate (nil for Unlimited); now may be nil (time.Now).
func New(rate Rate, now func() time.Time) *Limiter {
	if rate.Burst < 0 || rate.Every <= 0 {
		return nil
	}
	if now == nil {
		now = time.Now
	}
	return &Limiter{rate: rate, now: now, buckets: map[netip.Prefix]bucket{}}
}

// key is the unit an address is counted by: the address, or the /64 of an IPv6 address.
func key(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := a.BitLen()
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

// Allow takes one request of addr from its bucket. When there is none, it reports how long
// until there is (for Retry-After).
func (l *Limiter) Allow(addr netip.Addr) (ok bool, retryAfter time.Duration) {
	if l == nil {
		return true, 0
	}
	k := key(addr)
	now := l.now()
	per := float64(l.rate.Every)
	burst := float64(l.rate.Burst)
	l.mu.Lock()
	defer l.mu.Unlock()
	b, found := l.buckets[k]
	if !found {
		if len(l.buckets) >= MaxAddrs && !l.sweepLocked(now) {
			l.untracked++
			return true, 0
		}
		b = bucket{tokens: burst, at: now}
	}
	b.tokens = math.Min(burst, b.tokens+float64(now.Sub(b.at))/per)
	b.at = now
	if b.tokens < 1 {
		l.buckets[k] = b
		return false, time.Duration(math.Ceil((1 - b.tokens) * per))
	}
	b.tokens--
	l.buckets[k] = b
	return true, 0
}

// sweepLocked drops the buckets that have filled up again (idle addresses) and reports whether
// there is room now.
func (l *Limiter) sweepLocked(now time.Time) bool {
	full := time.Duration(float64(l.rate.Every) * float64(l.rate.Burst))
	for k, b := range l.buckets {
		if now.Sub(b.at) >= full {
			delete(l.buckets, k)
		}
	}
	return len(l.buckets) < MaxAddrs
}

// Stats says how many addresses the table holds and how many requests went unlimited because
// it was full.
func (l *Limiter) Stats() (addrs int, untracked uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets), l.untracked
}

// ClientAddr returns the address of the client that made r: the connection's peer, or, when
// that peer is one of the trusted proxies, the rightmost address in X-Forwarded-For that is not
// a trusted proxy (the proxies append what they saw; anything to its left the client may have
// made up). Without trusted proxies X-Forwarded-For is ignored.
func ClientAddr(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer := parseHost(r.RemoteAddr)
	if len(trusted) == 0 || !in(peer, trusted) {
		return peer
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a := parseHost(strings.TrimSpace(hops[i]))
		if !a.IsValid() {
			break // a malformed hop: trust nothing further left
		}
		if !in(a, trusted) {
			return a
		}
		peer = a
	}
	return peer
}

func parseHost(s string) netip.Addr {
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	a, err := netip.ParseAddr(strings.Trim(s, "[]"))
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap().WithZone("")
}

func in(a netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if a.IsValid() && p.Contains(a) {
			return true
		}
	}
	return false
}

// ParsePrefixes parses a list of addresses and CIDR prefixes (an address alone is its /32 or
// /128), reporting every bad entry at once.
func ParsePrefixes(list []string) ([]netip.Prefix, []string) {
	var out []netip.Prefix
	var bad []string
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
		} else if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		} else {
			bad = append(bad, s)
		}
	}
	return out, bad
}
