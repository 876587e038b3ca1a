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

func TestFakeBusPlugListOpen(t *testing.T) {
	bus := transporttest.NewFakeBus()
	ctx := context.Background()
	a := bus.Plug(0x0400, 0xc35a, func() transport.USBDevice { return transporttest.NewFakeUSB(nil) })
	b := bus.Plug(0x0fe6, 0x811e, func() transport.USBDevice { return transporttest.NewFakeUSB(nil) })
	if ids, err := bus.List(ctx); err != nil || len(ids) != 2 || ids[0] != a || ids[1] != b || a.Address == b.Address {
		t.Fatalf("List = %+v, %v", ids, err)
	}
	if d, err := bus.Open(ctx, transport.USBID{Vendor: 0x0400, Product: 0xc35a}, 0); err != nil || d == nil {
		t.Fatalf("Open by vendor and product = %v", err)
	}
	if _, err := bus.Open(ctx, transport.USBID{Vendor: 0x0400, Product: 0xc35a, Address: b.Address}, 0); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Open at the wrong address = %v, want ErrClosed", err)
	}
	bus.Unplug(a)
	if _, err := bus.Open(ctx, transport.USBID{Vendor: 0x0400, Product: 0xc35a}, 0); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Open after unplug = %v, want ErrClosed", err)
	}
	if c := bus.Plug(0x0400, 0xc35a, func() transport.USBDevice { return transporttest.NewFakeUSB(nil) }); c.Address <= b.Address {
		t.Fatalf("replugged at address %d, want a new one after %d", c.Address, b.Address)
	}
}
