package ratelimit

import (
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestLimiter(t *testing.T) {
	c := &clock{t: time.Unix(1764100000, 0)}
	l := New(PerMinute(6, 3), c.now) // a token every 10 s, 3 at once
	a := netip.MustParseAddr("192.0.2.7")
	for i := range 3 {
		if ok, _ := l.Allow(a); !ok {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	ok, retry := l.Allow(a)
	if ok || retry != 10*time.Second {
		t.Fatalf("past the burst: ok=%v retry=%s, want refused and 10s", ok, retry)
	}
	if ok, _ := l.Allow(netip.MustParseAddr("192.0.2.8")); !ok {
		t.Fatal("another address is limited too")
	}
	c.t = c.t.Add(4 * time.Second)
	if ok, retry := l.Allow(a); ok || retry != 6*time.Second {
		t.Fatalf("after 4 s: ok=%v retry=%s, want 6s", ok, retry)
	}
	c.t = c.t.Add(6 * time.Second)
	if ok, _ := l.Allow(a); !ok {
		t.Fatal("a token did not come back after 10 s")
	}
	// IPv6: one /64 is one client; a v4-mapped address is the v4 address.
	v6 := New(PerMinute(1, 1), c.now)
	if ok, _ := v6.Allow(netip.MustParseAddr("2001:db8:1:2::1")); !ok {
		t.Fatal("first v6 request refused")
	}
	if ok, _ := v6.Allow(netip.MustParseAddr("2001:db8:1:2:ffff::9")); ok {
		t.Error("another address of the same /64 is not counted with it")
	}
	if ok, _ := v6.Allow(netip.MustParseAddr("2001:db8:1:3::1")); !ok {
		t.Error("another /64 is counted with the first")
	}
	if ok, _ := l.Allow(netip.MustParseAddr("::ffff:192.0.2.7")); ok {
		t.Error("a v4-mapped address escapes its v4 bucket")
	}
}

func TestLimiterBounded(t *testing.T) {
	c := &clock{t: time.Unix(1764100000, 0)}
	l := New(PerMinute(60, 1), c.now)
	for i := range MaxAddrs {
		l.Allow(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}))
	}
	// Full of addresses limited now: a new one goes unlimited, the old ones stay limited.
	if ok, _ := l.Allow(netip.MustParseAddr("192.0.2.1")); !ok {
		t.Fatal("new address refused with a full table")
	}
	if ok, _ := l.Allow(netip.MustParseAddr("10.0.0.0")); ok {
		t.Fatal("a limited address was pushed out of a full table")
	}
	if n, untracked := l.Stats(); n != MaxAddrs || untracked != 1 {
		t.Fatalf("stats %d %d", n, untracked)
	}
	// Once they are idle, the table makes room.
	c.t = c.t.Add(2 * time.Second)
	l.Allow(netip.MustParseAddr("192.0.2.1"))
	if n, _ := l.Stats(); n != 1 {
		t.Fatalf("%d addresses after the sweep, want 1", n)
	}
}

func TestClientAddr(t *testing.T) {
	trusted, bad := ParsePrefixes([]string{"10.0.0.0/8", " 192.0.2.1 ", "", "nonsense", "2001:db8::/129"})
	if len(trusted) != 2 || len(bad) != 2 {
		t.Fatalf("ParsePrefixes: %v, bad %v", trusted, bad)
	}
	for _, c := range []struct {
		remote, xff string
		trusted     []netip.Prefix
		want        string
	}{
		{"198.51.100.9:4000", "203.0.113.5", nil, "198.51.100.9"},                    // no proxies named: the header is ignored
		{"198.51.100.9:4000", "203.0.113.5", trusted, "198.51.100.9"},                // not from a trusted proxy
		{"10.1.2.3:4000", "203.0.113.5", trusted, "203.0.113.5"},                     // one proxy
		{"10.1.2.3:4000", "6.6.6.6, 203.0.113.5, 192.0.2.1", trusted, "203.0.113.5"}, // two proxies; the client's own claim ignored
		{"10.1.2.3:4000", "garbage, 10.9.9.9", trusted, "10.9.9.9"},                  // nothing but proxies and garbage
		{"[2001:db8::1]:443", "", nil, "2001:db8::1"},
		{"[::ffff:198.51.100.9]:1", "", nil, "198.51.100.9"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.remote
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		if got := ClientAddr(r, c.trusted); got.String() != c.want {
			t.Errorf("%s via %q: %s, want %s", c.remote, c.xff, got, c.want)
		}
	}
}

// FuzzClientAddr: whatever the headers say, the client is the peer or an address in them.
func FuzzClientAddr(f *testing.F) {
	f.Add("10.0.0.1:5", "203.0.113.5, 10.0.0.2")
	f.Add("[::1]:1", "[2001:db8::1]:80,,garbage")
	f.Add("nonsense", "")
	trusted, _ := ParsePrefixes([]string{"10.0.0.0/8", "::1"})
	f.Fuzz(func(t *testing.T, remote, xff string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = remote
		r.Header.Set("X-Forwarded-For", xff)
		got := ClientAddr(r, trusted)
		if got == parseHost(remote) {
			return
		}
		for _, hop := range strings.Split(xff, ",") {
			if parseHost(strings.TrimSpace(hop)) == got {
				return
			}
		}
		t.Fatalf("ClientAddr(%q, %q) = %s: neither the peer nor in the header", remote, xff, got)
	})
}
