package transporttest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/drivers/transport"
	"github.com/kioskfleet/kioskfleet/drivers/transport/transporttest"
)

func TestFakeUSBRoutesAndTimesOut(t *testing.T) {
	f := transporttest.NewFakeUSB(func(ep uint8, data []byte, reply func(uint8, []byte)) {
		reply(0x81, append([]byte{ep}, data...))
	})
	ctx := context.Background()
	if _, err := f.BulkOut(ctx, 0x02, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2)
	if n, err := f.BulkIn(ctx, 0x81, buf); err != nil || string(buf[:n]) != "\x02h" {
		t.Fatalf("BulkIn = %q, %v", buf[:n], err)
	}
	if n, err := f.BulkIn(ctx, 0x81, buf); err != nil || string(buf[:n]) != "i" {
		t.Fatalf("BulkIn rest = %q, %v", buf[:n], err)
	}
	tctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := f.BulkIn(tctx, 0x81, buf); !errors.Is(err, transport.ErrTimeout) {
		t.Fatalf("empty BulkIn = %v, want ErrTimeout", err)
	}
	if _, err := f.Control(ctx, 0xc0, 0, 0, 0, buf); err == nil {
		t.Fatal("control without handler succeeded")
	}
	done := make(chan error)
	go func() { _, err := f.BulkIn(ctx, 0x85, buf); done <- err }()
	f.Unplug()
	if err := <-done; !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("BulkIn across unplug = %v, want ErrClosed", err)
	}
	if _, err := f.BulkOut(ctx, 0x02, []byte("x")); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("BulkOut after unplug = %v, want ErrClosed", err)
	}
}
