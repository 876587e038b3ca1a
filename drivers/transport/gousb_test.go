//go:build cgo

package transport_test

import (
	"context"
	"testing"

	"github.com/kioskfleet/kioskfleet/drivers/transport"
)

// There is no USB bus on the build machines: libusb initialises and lists nothing. Where a bus
// exists the test only checks that listing works.
func TestGoUSBList(t *testing.T) {
	bus, err := transport.NewGoUSB()
	if err != nil {
		t.Skipf("no libusb here: %v", err)
	}
	defer bus.Close()
	ids, err := bus.List(context.Background())
	if err != nil {
		t.Skipf("libusb cannot enumerate here: %v", err)
	}
	t.Logf("%d USB devices", len(ids))
	if _, err := bus.Open(context.Background(), transport.USBID{Vendor: 0xffff, Product: 0xfffe}, 0); err == nil {
		t.Fatal("opened a device that does not exist")
	}
}
