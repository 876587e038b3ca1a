package proxytest

import (
	"bufio"
	"context"
	"errors"
	"net"
	"reflect"
	"syscall"
	"testing"
	"time"
)

func echoServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b := make([]byte, 1024)
				for {
					n, err := c.Read(b)
					if err != nil {
						return
					}
					c.Write(b[:n])
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(c net.Conn, msg string) (string, error) {
	c.SetDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := c.Write([]byte(msg + "\n")); err != nil {
		return "", err
	}
	return bufio.NewReader(c).ReadString('\n')
}

func TestCutBlackholeRestore(t *testing.T) {
	p := New(t, echoServer(t))
	c, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := roundTrip(c, "a"); err != nil || got != "a\n" {
		t.Fatalf("through proxy: %q %v", got, err)
	}
	p.Blackhole()
	if _, err := roundTrip(c, "b"); err == nil {
		t.Fatal("blackholed connection still answered")
	}
	p.Restore()
	p.Cut()
	if c2, err := net.Dial("tcp", p.Addr); err == nil {
		if _, err := roundTrip(c2, "c"); err == nil {
			t.Fatal("cut proxy still forwarded")
		}
		c2.Close()
	}
	p.Restore()
	c3, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := roundTrip(c3, "d"); err != nil || got != "d\n" {
		t.Fatalf("after restore: %q %v", got, err)
	}
	c3.Close()
	c.Close()
}

func TestLatencyKeepsOrder(t *testing.T) {
	p := New(t, echoServer(t))
	p.SetLatency(40*time.Millisecond, 30*time.Millisecond)
	c, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	for i := range 20 {
		if _, err := c.Write([]byte{byte('a' + i)}); err != nil {
			t.Fatal(err)
		}
	}
	got := make([]byte, 0, 20)
	b := make([]byte, 20)
	for len(got) < 20 {
		n, err := c.Read(b)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, b[:n]...)
	}
	if d := time.Since(start); d < 80*time.Millisecond {
		t.Errorf("round trip %s with 40 ms latency each way", d)
	}
	if string(got) != "abcdefghijklmnopqrst" {
		t.Errorf("order lost: %q", got)
	}
}

func TestBandwidthCap(t *testing.T) {
	p := New(t, echoServer(t))
	p.SetBandwidth(20 << 10)
	c, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	const n = 10 << 10
	start := time.Now()
	go c.Write(make([]byte, n))
	got := 0
	b := make([]byte, 4096)
	for got < n {
		k, err := c.Read(b)
		if err != nil {
			t.Fatal(err)
		}
		got += k
	}
	// 10 KiB at 20 KiB/s each way: at least ~0.5 s.
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Errorf("10 KiB echoed in %s through a 20 KiB/s cap", d)
	}
}

func TestReset(t *testing.T) {
	p := New(t, echoServer(t))
	c, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, err := roundTrip(c, "a"); err != nil || got != "a\n" {
		t.Fatalf("through proxy: %q %v", got, err)
	}
	p.Reset()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	_, err = c.Read(make([]byte, 1))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("read after reset: %v, want connection reset", err)
	}
	c2, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if got, err := roundTrip(c2, "b"); err != nil || got != "b\n" {
		t.Fatalf("new connection after reset: %q %v", got, err)
	}
}

func TestSchedule(t *testing.T) {
	a, b := Schedule(7, 50), Schedule(7, 50)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed, different schedules")
	}
	if reflect.DeepEqual(a, Schedule(8, 50)) {
		t.Fatal("different seeds, same schedule")
	}
	seen := map[Kind]bool{}
	for _, f := range a {
		seen[f.Kind] = true
	}
	if len(seen) != int(numKinds) {
		t.Errorf("50 faults cover %d kinds: %v", len(seen), a)
	}
	p := New(t, echoServer(t))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Play(ctx, a, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Play on a canceled context: %v", err)
	}
	n := 0
	if err := p.Play(context.Background(), []Fault{{Kind: Latency, Latency: time.Millisecond, Hold: time.Millisecond}, {Kind: Reset}},
		func(int, Fault) { n++ }); err != nil || n != 2 {
		t.Errorf("Play: %v, %d callbacks", err, n)
	}
}
