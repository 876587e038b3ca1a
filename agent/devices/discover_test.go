package devices_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/kioskfleet/kioskfleet/agent/devices"
	"github.com/kioskfleet/kioskfleet/drivers/profile"
	"github.com/kioskfleet/kioskfleet/drivers/transport"
)

// fakeTree builds a /dev and /sys with a CH340 (ttyUSB0, 1a86:7523), a CDC-ACM QR scanner
// (ttyACM0) and an unknown FTDI adapter (ttyUSB1).
func fakeTree(t *testing.T) (dev, sys string) {
	root := t.TempDir()
	dev, sys = filepath.Join(root, "dev"), filepath.Join(root, "sys")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	tty := func(name, byID, usbDev, vid, pid string, viaPort bool) {
		must(os.MkdirAll(filepath.Join(dev, "serial", "by-id"), 0o755))
		must(os.WriteFile(filepath.Join(dev, name), nil, 0o644))
		must(os.Symlink(filepath.Join("..", "..", name), filepath.Join(dev, "serial", "by-id", byID)))
		udev := filepath.Join(sys, "devices", "usb1", usbDev)
		node := filepath.Join(udev, usbDev+":1.0")
		if viaPort {
			node = filepath.Join(node, name)
		}
		must(os.MkdirAll(node, 0o755))
		must(os.WriteFile(filepath.Join(udev, "idVendor"), []byte(vid+"\n"), 0o644))
		must(os.WriteFile(filepath.Join(udev, "idProduct"), []byte(pid+"\n"), 0o644))
		must(os.MkdirAll(filepath.Join(sys, "class", "tty", name), 0o755))
		must(os.Symlink(node, filepath.Join(sys, "class", "tty", name, "device")))
	}
	tty("ttyUSB0", "usb-1a86_USB_Serial-if00-port0", "1-1", "1a86", "7523", true)
	tty("ttyACM0", "usb-Saoma_QR-20_0001-if00", "1-2", "2dd6", "0260", false)
	tty("ttyUSB1", "usb-FTDI_FT232R_A1-if00-port0", "1-3", "0403", "6001", true)
	return dev, sys
}

func TestDiscover(t *testing.T) {
	dev, sys := fakeTree(t)
	present := func() transport.USBDevice { return nil } // listed, never opened here
	bus := &fakeBus{devices: map[[2]uint16]func() transport.USBDevice{
		{0x0fe6, 0x811e}: present, // the USB receipt printer
		{0x046d, 0xc52b}: present, // a keyboard receiver: no profile
		{0x0400, 0xc35a}: nil,     // the USB ID reader, unplugged
	}}
	got, err := devices.Discover(context.Background(), loadProfiles(t), devices.Discovery{Bus: bus, DevDir: dev, SysDir: sys})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]profile.DeviceEntry{
		"idcard0":  {ID: "idcard0", Profile: "beiyang-bz-10-ch340", Path: filepath.Join(dev, "serial", "by-id", "usb-1a86_USB_Serial-if00-port0")},
		"qr0":      {ID: "qr0", Profile: "saoma-qr20-serial", Path: filepath.Join(dev, "serial", "by-id", "usb-Saoma_QR-20_0001-if00")},
		"receipt0": {ID: "receipt0", Profile: "xinye-xp-t80-usb", USB: &profile.USBMatch{VID: "0fe6", PID: "811e"}},
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
