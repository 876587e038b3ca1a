package main

import (
	"bytes"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/kioskfleet/kioskfleet/agent/devices/devicestest"
	"github.com/kioskfleet/kioskfleet/drivers/profile"
	"github.com/kioskfleet/kioskfleet/drivers/transport/transporttest"
)

// useBus makes devices discover use bus (nil: libusb fails to start) until the test ends.
func useBus(t *testing.T, bus usbBus) {
	old := openUSB
	t.Cleanup(func() { openUSB = old })
	openUSB = func() (usbBus, error) {
		if bus == nil {
			return nil, errors.New("libusb: LIBUSB_ERROR_OTHER")
		}
		return bus, nil
	}
}

// devices discover prints every attached serial port and USB device with the profile that fits
// it, and -o yaml the device configuration of those a profile fits.
func TestDevicesDiscover(t *testing.T) {
	dev, sys := devicestest.DevTree(t,
		devicestest.TTY{Name: "ttyUSB0", ByID: "usb-1a86_USB_Serial-if00-port0", Vendor: "1a86", Product: "7523", Bridge: true},
		devicestest.TTY{Name: "ttyACM0", ByID: "usb-Saoma_QR-20_0001-if00", Vendor: "2dd6", Product: "0260"})
	bus := transporttest.NewFakeBus()
	bus.Plug(0x1a86, 0x7523, nil) // the bridge of ttyUSB0
	bus.Plug(0x0400, 0xc35a, nil) // the USB GA 467 reader
	bus.Plug(0x046d, 0xc52b, nil) // a keyboard receiver
	useBus(t, bus)
	args := []string{"devices", "discover", "--profiles", "../../../firmware-profiles", "--dev", dev, "--sys", sys}

	var out, errb bytes.Buffer
	if err := run(args, &out, &errb); err != nil {
		t.Fatalf("discover: %v\n%s", err, errb.String())
	}
	for _, want := range []string{
		`serial +\S+/serial/by-id/usb-1a86_USB_Serial-if00-port0 +1a86:7523 +zhengtong-zt-10-ch340 +id-reader `,
		`serial +\S+/serial/by-id/usb-Saoma_QR-20_0001-if00 +2dd6:0260 +saoma-qr20-serial +qr-scanner `,
		`usb +bus 1 device 1 +1a86:7523 +- +- +USB-serial bridge, used through its serial port`,
		`usb +bus 1 device 2 +0400:c35a +jinghe-jh-u5-usb +id-reader `,
		`usb +bus 1 device 3 +046d:c52b +- +- +no profile fits`,
		`5 attached, 3 with a profile`,
	} {
		if !regexp.MustCompile(want).MatchString(out.String()) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}

	out.Reset()
	if err := run(append(args, "-o", "yaml"), &out, &errb); err != nil {
		t.Fatal(err)
	}
	cfg, err := profile.ParseDeviceConfig("discovered", out.Bytes())
	if err != nil {
		t.Fatalf("-o yaml is no device configuration: %v\n%s", err, out.String())
	}
	got := map[string]profile.DeviceEntry{}
	for _, e := range cfg.Devices {
		got[e.ID] = e
	}
	if len(got) != 3 || got["idcard0"].Profile != "zhengtong-zt-10-ch340" || got["qr0"].Profile != "saoma-qr20-serial" ||
		got["idcard1"].Profile != "jinghe-jh-u5-usb" || *got["idcard1"].USB != (profile.USBMatch{VID: "0400", PID: "c35a"}) {
		t.Fatalf("configuration:\n%s", out.String())
	}
}

// Without libusb the serial ports are still listed, and stderr says why the USB devices are not.
func TestDevicesDiscoverWithoutLibUSB(t *testing.T) {
	dev, sys := devicestest.DevTree(t, devicestest.TTY{Name: "ttyACM0", ByID: "usb-Saoma_QR-20_0001-if00", Vendor: "2dd6", Product: "0260"})
	useBus(t, nil)
	var out, errb bytes.Buffer
	if err := run([]string{"devices", "discover", "--profiles", "../../../firmware-profiles", "--dev", dev, "--sys", sys}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "saoma-qr20-serial") || !strings.Contains(errb.String(), "USB devices not listed: libusb is unavailable") {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", out.String(), errb.String())
	}
	if err := run([]string{"devices", "discover", "-o", "json", "extra"}, &out, &errb); err == nil ||
		!strings.Contains(err.Error(), "unexpected arguments") || !strings.Contains(err.Error(), "-o must be") {
		t.Fatalf("bad flags: %v", err)
	}
	if err := run([]string{"devices", "list"}, &out, &errb); err == nil {
		t.Fatal("devices list accepted")
	}
}

var _ usbBus = (*transporttest.FakeBus)(nil)
