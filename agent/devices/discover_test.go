package devices_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kioskfleet/kioskfleet/agent/devices"
	"github.com/kioskfleet/kioskfleet/agent/devices/devicestest"
	"github.com/kioskfleet/kioskfleet/drivers/profile"
	"github.com/kioskfleet/kioskfleet/drivers/transport"
	"github.com/kioskfleet/kioskfleet/drivers/transport/transporttest"
)

// fakeTree builds a /dev and /sys with a CH340 (ttyUSB0, 1a86:7523), a CDC-ACM QR scanner
// (ttyACM0) and an unknown FTDI adapter (ttyUSB1).
func fakeTree(t *testing.T) (dev, sys string) {
	return devicestest.DevTree(t,
		devicestest.TTY{Name: "ttyUSB0", ByID: "usb-1a86_USB_Serial-if00-port0", Vendor: "1a86", Product: "7523", Bridge: true},
		devicestest.TTY{Name: "ttyACM0", ByID: "usb-Saoma_QR-20_0001-if00", Vendor: "2dd6", Product: "0260"},
		devicestest.TTY{Name: "ttyUSB1", ByID: "usb-FTDI_FT232R_A1-if00-port0", Vendor: "0403", Product: "6001", Bridge: true})
}

func TestDiscover(t *testing.T) {
	dev, sys := fakeTree(t)
	present := func() transport.USBDevice { return nil } // listed, never opened here
	bus := transporttest.NewFakeBus()
	bus.Plug(0x0fe6, 0x811e, present)             // the USB receipt printer
	bus.Plug(0x046d, 0xc52b, present)             // a keyboard receiver: no profile
	bus.Unplug(bus.Plug(0x0400, 0xc35a, present)) // the USB ID reader, unplugged
	bus.Plug(0x1a86, 0x7523, present)             // the CH340 of ttyUSB0: used as a serial port
	got, err := devices.Discover(context.Background(), loadProfiles(t), devices.Discovery{Bus: bus, DevDir: dev, SysDir: sys})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]profile.DeviceEntry{
		"idcard0":  {ID: "idcard0", Profile: "zhengtong-zt-10-ch340", Path: filepath.Join(dev, "serial", "by-id", "usb-1a86_USB_Serial-if00-port0")},
		"qr0":      {ID: "qr0", Profile: "saoma-qr20-serial", Path: filepath.Join(dev, "serial", "by-id", "usb-Saoma_QR-20_0001-if00")},
		"receipt0": {ID: "receipt0", Profile: "yunhe-yt-80-usb", USB: &profile.USBMatch{VID: "0fe6", PID: "811e"}},
	}
	if len(got) != len(want) {
		t.Fatalf("found %+v", got)
	}
	for _, e := range got {
		w := want[e.ID]
		if e.Profile != w.Profile || e.Path != w.Path || (w.USB != nil) != (e.USB != nil) || (w.USB != nil && *w.USB != *e.USB) {
			t.Errorf("%s: %+v, want %+v", e.ID, e, w)
		}
	}
	// What Discover finds is a valid configuration.
	cfg := &profile.DeviceConfig{Devices: got}
	p := filepath.Join(t.TempDir(), "devices.yaml")
	if err := profile.WriteDeviceConfig(p, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := profile.LoadDeviceConfig(p); err != nil {
		t.Fatal(err)
	}
}

// A port two profiles fit equally is reported, not guessed.
func TestDiscoverAmbiguous(t *testing.T) {
	dev := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dev, "serial", "by-id"), 0o755); err != nil {
		t.Fatal(err)
	}
	// /dev/serial/by-id/... of a port matching no vendor rule but a generic glob of two profiles.
	ps := loadProfiles(t)
	for _, p := range ps {
		if p.ID == "huaxin-hx-r200-serial" || p.ID == "hengtai-kp80-serial" {
			p.Match.Serial = append(p.Match.Serial, "/dev/serial/by-id/usb-Generic*")
		}
	}
	if err := os.Symlink("/dev/null", filepath.Join(dev, "serial", "by-id", "usb-Generic_Port-if00")); err != nil {
		t.Fatal(err)
	}
	got, err := devices.Discover(context.Background(), ps, devices.Discovery{DevDir: dev, SysDir: t.TempDir()})
	var amb *profile.AmbiguousError
	if len(got) != 0 || !errors.As(err, &amb) || len(amb.Candidates) != 2 {
		t.Fatalf("got %+v, %v", got, err)
	}
}

// failingBus is a USB bus that cannot be listed (libusb without access to usbfs).
type failingBus struct{ *transporttest.FakeBus }

func (failingBus) List(context.Context) ([]transport.USBID, error) {
	return nil, errors.New("libusb: access denied")
}

// Attached lists every serial port and USB device, with the profile that fits or why none does;
// a bus that cannot be listed does not hide the serial ports.
func TestAttached(t *testing.T) {
	dev, sys := fakeTree(t)
	present := func() transport.USBDevice { return nil }
	bus := transporttest.NewFakeBus()
	bus.Plug(0x0fe6, 0x811e, present)
	bus.Plug(0x046d, 0xc52b, present)
	bus.Plug(0x1a86, 0x7523, present)
	found, err := devices.Attached(context.Background(), loadProfiles(t), devices.Discovery{Bus: bus, DevDir: dev, SysDir: sys})
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		where, usb, profile string
		err                 error
	}
	var got []row
	for _, f := range found {
		r := row{where: filepath.Base(f.Path), err: f.Err}
		if f.USB != nil {
			r.usb = fmt.Sprintf("%04x:%04x", f.USB.Vendor, f.USB.Product)
		}
		if f.Profile != nil {
			r.profile = f.Profile.ID
		}
		got = append(got, r)
	}
	want := []row{
		{"usb-1a86_USB_Serial-if00-port0", "1a86:7523", "zhengtong-zt-10-ch340", nil},
		{"usb-FTDI_FT232R_A1-if00-port0", "0403:6001", "", profile.ErrNoMatch},
		{"usb-Saoma_QR-20_0001-if00", "2dd6:0260", "saoma-qr20-serial", nil},
		{".", "0fe6:811e", "yunhe-yt-80-usb", nil},
		{".", "046d:c52b", "", profile.ErrNoMatch},
		{".", "1a86:7523", "", devices.ErrSerialBridge},
	}
	if len(got) != len(want) {
		t.Fatalf("found %+v", got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.where != w.where || g.usb != w.usb || g.profile != w.profile || !errors.Is(g.err, w.err) || (w.err == nil) != (g.err == nil) {
			t.Errorf("found[%d] = %+v, want %+v", i, g, w)
		}
	}

	found, err = devices.Attached(context.Background(), loadProfiles(t), devices.Discovery{Bus: failingBus{transporttest.NewFakeBus()}, DevDir: dev, SysDir: sys})
	if err == nil || !strings.Contains(err.Error(), "access denied") || len(found) != 3 {
		t.Fatalf("with a bus that cannot be listed: %d found, %v", len(found), err)
	}
}

// The agent needs libusb only for devices driven over USB and, when it discovers, for the USB
// profiles it looks for.
func TestUSBNeeds(t *testing.T) {
	ps := loadProfiles(t)
	serial := &profile.DeviceConfig{Devices: []profile.DeviceEntry{
		{ID: "qr0", Path: "/dev/serial/by-id/usb-Saoma_QR-20_0001-if00"},
		{ID: "idcard0", Profile: "zhengtong-zt-10-ch340", Path: "/dev/ttyUSB0"}, // a bridge's USB IDs: no libusb
	}}
	if n := devices.USBNeeds(serial, ps, false); len(n) != 0 {
		t.Fatalf("serial devices need USB: %v", n)
	}
	withUSB := &profile.DeviceConfig{Devices: append(serial.Devices, profile.DeviceEntry{ID: "reader1", USB: &profile.USBMatch{VID: "0400", PID: "c35a"}})}
	if n := devices.USBNeeds(withUSB, ps, false); !slices.Equal(n, []string{"device reader1 (profile jinghe-jh-u5-usb)"}) {
		t.Fatalf("USB reader: %v", n)
	}
	n := devices.USBNeeds(serial, ps, true)
	if !slices.Contains(n, "discovery of profile jinghe-jh-u5-usb") || !slices.Contains(n, "discovery of profile yunhe-yt-80-usb") || len(n) != 2 {
		t.Fatalf("discovery: %v", n)
	}
}
