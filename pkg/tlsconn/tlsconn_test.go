package tlsconn_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"math/big"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/tlsconn"
)

// countingConn counts the bytes read through it.
type countingConn struct {
	net.Conn
	n atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// pair returns the two ends of a TLS 1.3 connection over loopback TCP, the client's reads
// counted below TLS.
func pair(t *testing.T) (server *tls.Conn, client *tls.Conn, clientRaw *countingConn) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	roots := x509.NewCertPool()
	roots.AddCert(leaf)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sraw := <-accepted
	if sraw == nil {
		t.Fatal("accept failed")
	}
	clientRaw = &countingConn{Conn: raw}
	server = tls.Server(sraw, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	client = tls.Client(clientRaw, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	t.Cleanup(func() { server.NetConn().Close(); raw.Close() })
	errc := make(chan error, 1)
	go func() { errc <- server.Handshake() }()
	if err := client.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return server, client, clientRaw
}

// roundTrip writes msg on w and reads it on r.
func roundTrip(t *testing.T, w io.Writer, r io.Reader, msg string) {
	t.Helper()
	if _, err := w.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(r, got); err != nil || string(got) != msg {
		t.Fatalf("read %q, %v; want %q", got, err, msg)
	}
}

// failWrite makes the next write on s fail before it writes a byte: its deadline has passed, as
// when mochi's keep-alive deadline expired while the connection's reader was busy.
func failWrite(t *testing.T, w io.Writer, s *tls.Conn) {
	t.Helper()
	s.SetWriteDeadline(time.Now().Add(-time.Second))
	if _, err := w.Write([]byte("never sent")); !isTimeout(err) {
		t.Fatalf("write past the deadline: %v, want a timeout", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// readEnd reads what the client gets after the last message: the error that ends the stream and
// how many bytes came below TLS.
func readEnd(t *testing.T, c *tls.Conn, raw *countingConn) (int64, error) {
	t.Helper()
	before := raw.n.Load()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Read(make([]byte, 16))
	if isTimeout(err) {
		t.Fatal("the connection did not end")
	}
	return raw.n.Load() - before, err
}

func TestCloseAfterFailedWrite(t *testing.T) {
	s, c, raw := pair(t)
	w := tlsconn.New(s)
	roundTrip(t, w, c, "ack-1")
	failWrite(t, w, s)
	w.Close()
	n, err := readEnd(t, c, raw)
	if err != io.EOF || n != 0 {
		t.Fatalf("after a failed write and Close the peer read %v with %d more bytes; want io.EOF and none", err, n)
	}
	if _, err := w.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after Close: %v", err)
	}
	if err := w.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
}

// TestCloseSendsCloseNotify: without a failed write, Close ends the stream with close_notify.
func TestCloseSendsCloseNotify(t *testing.T) {
	s, c, raw := pair(t)
	w := tlsconn.New(s)
	roundTrip(t, w, c, "ack-1")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	n, err := readEnd(t, c, raw)
	if err != io.EOF || n == 0 {
		t.Fatalf("peer read %v after %d bytes; want io.EOF after a close_notify record", err, n)
	}
}

// TestTLSConnCorruptsAfterFailedWrite is why this package exists: crypto/tls alone sends a
// close_notify its peer cannot authenticate after a failed write. When it stops doing so, Conn
// can go.
func TestTLSConnCorruptsAfterFailedWrite(t *testing.T) {
	s, c, raw := pair(t)
	roundTrip(t, s, c, "ack-1")
	failWrite(t, s, s)
	s.Close()
	_, err := readEnd(t, c, raw)
	if err == nil || err.Error() != "local error: tls: bad record MAC" {
		t.Fatalf("crypto/tls: after a failed write and Close the peer read %v; this package may no longer be needed", err)
	}
}

// TestCloseDuringWrite: a Close while a write is blocked (the peer does not read) returns at once,
// the write fails, and the peer never reads bytes it cannot authenticate.
func TestCloseDuringWrite(t *testing.T) {
	s, c, _ := pair(t)
	w := tlsconn.New(s)
	roundTrip(t, w, c, "ack-1")
	wrote := make(chan error, 1)
	go func() {
		_, err := w.Write(make([]byte, 64<<20)) // more than the socket buffers hold
		wrote <- err
	}()
	// The first record arrived: the write is under way, and stays so, as the client stops reading.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	w.Close()
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v while a write was blocked", d)
	}
	if err := <-wrote; err == nil {
		t.Fatal("the blocked write succeeded after Close")
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, c)
	if err != nil && err.Error() == "local error: tls: bad record MAC" {
		t.Fatalf("peer read %v", err)
	}
}
