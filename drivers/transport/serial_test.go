package transport_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/drivers/transport"
	"github.com/kioskfleet/kioskfleet/drivers/transport/transporttest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func openPty(t *testing.T) (transport.Port, interface {
	io.ReadWriteCloser
	SetReadDeadline(time.Time) error
}) {
	t.Helper()
	master, path := transporttest.PtyPair(t)
	p, err := transport.Serial{}.OpenSerial(path, transport.SerialMode{Baud: 9600})
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { p.Close() })
	return p, master
}

// readN reads n bytes from p, failing after a deadline instead of hanging.
func readN(t *testing.T, p transport.Port, n int) []byte {
	t.Helper()
	if err := p.SetReadTimeout(50 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	var got []byte
	buf := make([]byte, 512)
	for deadline := time.Now().Add(2 * time.Second); len(got) < n; {
		if time.Now().After(deadline) {
			t.Fatalf("read %d of %d bytes before the deadline", len(got), n)
		}
		k, err := p.Read(buf[:min(len(buf), n-len(got))])
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:k]...)
	}
	return got
}

// Every byte value crosses the pty unchanged in both directions: no CR/NL translation, no
// XON/XOFF, no echo.
func TestSerialRawBothWays(t *testing.T) {
	p, master := openPty(t)
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	if _, err := master.Write(all); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, p, len(all)); !bytes.Equal(got, all) {
		t.Fatalf("device->host bytes changed:\n got %x\nwant %x", got, all)
	}
	if _, err := p.Write(all); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(all))
	master.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadFull(master, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, all) {
		t.Fatalf("host->device bytes changed:\n got %x\nwant %x", got, all)
	}
}

func TestSerialReadTimeoutReturnsZero(t *testing.T) {
	p, _ := openPty(t)
	if err := p.SetReadTimeout(20 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	n, err := p.Read(make([]byte, 8))
	if n != 0 || err != nil {
		t.Fatalf("Read = %d, %v; want 0, nil on timeout", n, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("timeout took %v", d)
	}
}

func TestSerialResetInputBuffer(t *testing.T) {
	p, master := openPty(t)
	master.Write([]byte("stale"))
	// Wait until the bytes are in the slave's input queue, then drop them.
	deadline := time.Now().Add(2 * time.Second)
	for {
		if err := p.ResetInputBuffer(); err != nil {
			t.Fatal(err)
		}
		p.SetReadTimeout(10 * time.Millisecond)
		n, err := p.Read(make([]byte, 8))
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("input never became empty")
		}
	}
	master.Write([]byte("fresh"))
	if got := readN(t, p, 5); string(got) != "fresh" {
		t.Fatalf("got %q", got)
	}
}

// Closing the master is the pty's unplug: reads fail with ErrClosed, they do not hang.
func TestSerialUnplugIsErrClosed(t *testing.T) {
	p, master := openPty(t)
	p.SetReadTimeout(time.Second)
	master.Close()
	_, err := p.Read(make([]byte, 8))
	if !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Read after unplug = %v, want ErrClosed", err)
	}
}

// A port opened by a stable link (as /dev/serial/by-id) is present while the link names the node
// that was opened; a removed link or one that names another device means it is gone, even while
// the other end stays open (here: the master is never closed, as when a child process inherited
// it) and nothing shows on the wire.
func TestSerialPresent(t *testing.T) {
	_, pty1 := transporttest.PtyPair(t)
	_, pty2 := transporttest.PtyPair(t)
	link := filepath.Join(t.TempDir(), "usb-Vendor_QR-20-if00")
	if err := os.Symlink(pty1, link); err != nil {
		t.Fatal(err)
	}
	p, err := transport.Serial{}.OpenSerial(link, transport.SerialMode{Baud: 9600})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	present := p.(interface{ Present() error })
	if err := present.Present(); err != nil {
		t.Fatalf("attached: %v", err)
	}
	os.Remove(link)
	if err := present.Present(); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("link removed: %v, want ErrClosed", err)
	}
	if err := os.Symlink(pty2, link); err != nil {
		t.Fatal(err)
	}
	if err := present.Present(); !errors.Is(err, transport.ErrClosed) || !strings.Contains(err.Error(), "another device") {
		t.Fatalf("link to another pty: %v, want ErrClosed", err)
	}
	os.Remove(link)
	if err := os.Symlink(pty1, link); err != nil {
		t.Fatal(err)
	}
	if err := present.Present(); err != nil {
		t.Fatalf("link back: %v", err)
	}
}

func TestSerialReadAfterCloseIsErrClosed(t *testing.T) {
	p, _ := openPty(t)
	p.Close()
	if _, err := p.Read(make([]byte, 1)); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Read after Close = %v, want ErrClosed", err)
	}
}

func TestSerialOpenMissing(t *testing.T) {
	_, err := transport.Serial{}.OpenSerial(t.TempDir()+"/nope", transport.SerialMode{})
	if err == nil {
		t.Fatal("opened a missing path")
	}
}
