package floodtest

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"math/big"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// sink accepts connections on ln, hands each to serve, and counts them.
func sink(t *testing.T, ln net.Listener, serve func(net.Conn)) *atomic.Int64 {
	var n atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			go func() { defer c.Close(); serve(c) }()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return &n
}

func settle(t *testing.T, f *Flood, want int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.Settled(ctx); err != nil {
		t.Fatalf("not settled: %v (%v)", err, f.Stats())
	}
	if s := f.Stats(); s.Open != want {
		t.Fatalf("stats %v, want %d open", s, want)
	}
}

// TestSlowBodies: every connection sends its request header and the first Send bytes of a body
// announced longer, then holds.
func TestSlowBodies(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var got atomic.Int64
	sink(t, ln, func(c net.Conn) {
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil || req.ContentLength != 5001 {
			t.Errorf("request %v, %v", req, err)
			return
		}
		n, _ := io.CopyN(io.Discard, req.Body, 5000)
		got.Add(n)
		io.Copy(io.Discard, c) // holds until the flood ends
	})
	ctx, cancel := context.WithCancel(context.Background())
	f, err := SlowBodies{Common: Common{Conns: 5, From: Loopback(2, 2)}, URL: "http://" + ln.Addr().String() + "/x", Send: 5000}.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	settle(t, f, 5)
	for deadline := time.Now().Add(5 * time.Second); got.Load() != 5*5000; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("server read %d body bytes, want %d", got.Load(), 5*5000)
		}
	}
	cancel()
	f.Wait()
	if s := f.Stats(); s.Open != 0 || s.Refused != 0 {
		t.Fatalf("after the end: %v", s)
	}
}

// TestHalfConnects: every connection completes the TLS handshake and sends a CONNECT's fixed
// header with the announced length and Send bytes of it; one the server closes is redialed. The
// configuration names no server: the flood verifies the hub's certificate for Addr's host, as a
// kiosk does (without it, every handshake failed before its first byte).
func TestHalfConnects(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	cert, _ := x509.ParseCertificate(der)
	pool.AddCert(cert)
	var first atomic.Bool
	accepted := sink(t, ln, func(c net.Conn) {
		hdr := make([]byte, 4+100)
		if _, err := io.ReadFull(c, hdr); err != nil || hdr[0] != 0x10 || hdr[1] != 0x80|(300%128) || hdr[2] != 300/128 {
			t.Errorf("fixed header %x, %v", hdr[:3], err)
		}
		if first.CompareAndSwap(false, true) {
			return // the first is closed: redialed
		}
		io.Copy(io.Discard, c)
	})
	ctx, cancel := context.WithCancel(context.Background())
	f, err := HalfConnects{Common: Common{Conns: 3, Redial: 10 * time.Millisecond}, Addr: ln.Addr().String(),
		TLS: &tls.Config{RootCAs: pool}, Announce: 300, Send: 101}.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); accepted.Load() != 4 || f.Stats().Open != 3; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d accepted, %v; want 4 accepted (one redial), 3 open", accepted.Load(), f.Stats())
		}
	}
	if s := f.Stats(); s.Refused != 1 || s.Dialed != 4 {
		t.Fatalf("stats %v, want 4 dialed, 1 refused", s)
	}
	cancel()
	f.Wait()
}
