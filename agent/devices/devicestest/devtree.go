package devicestest

import (
	"os"
	"path/filepath"
	"testing"
)

// TTY is a USB serial port for DevTree: its kernel name (ttyUSB0, ttyACM0), its name under
// /dev/serial/by-id, and the vendor and product of the USB device it belongs to (four hex digits).
// Behind a USB-serial bridge (ttyUSB) the tty sits one level below the USB interface.
type TTY struct {
	Name, ByID, Vendor, Product string
	Bridge                      bool
}

// DevTree builds a /dev and a /sys holding ttys as udev and the kernel show them, for
// devices.Discovery's DevDir and SysDir.
func DevTree(t testing.TB, ttys ...TTY) (dev, sys string) {
	t.Helper()
	root := t.TempDir()
	dev, sys = filepath.Join(root, "dev"), filepath.Join(root, "sys")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dev, "serial", "by-id"), 0o755))
	for i, tty := range ttys {
		must(os.WriteFile(filepath.Join(dev, tty.Name), nil, 0o644))
		must(os.Symlink(filepath.Join("..", "..", tty.Name), filepath.Join(dev, "serial", "by-id", tty.ByID)))
		usbDev := "1-" + string(rune('1'+i))
		udev := filepath.Join(sys, "devices", "usb1", usbDev)
		node := filepath.Join(udev, usbDev+":1.0")
		if tty.Bridge {
			node = filepath.Join(node, tty.Name)
		}
		must(os.MkdirAll(node, 0o755))
		must(os.WriteFile(filepath.Join(udev, "idVendor"), []byte(tty.Vendor+"\n"), 0o644))
		must(os.WriteFile(filepath.Join(udev, "idProduct"), []byte(tty.Product+"\n"), 0o644))
		must(os.MkdirAll(filepath.Join(sys, "class", "tty", tty.Name), 0o755))
		must(os.Symlink(node, filepath.Join(sys, "class", "tty", tty.Name, "device")))
	}
	return dev, sys
}
