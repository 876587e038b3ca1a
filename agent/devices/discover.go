package devices

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kioskfleet/kioskfleet/drivers/profile"
	"github.com/kioskfleet/kioskfleet/drivers/transport"
)

// Discovery says where to look for attached devices. Zero values are the real system's.
type Discovery struct {
	Bus    transport.USBBus // USB devices with vendor interfaces; nil: none
	DevDir string           // default /dev; serial ports are found under DevDir/serial/by-id
	SysDir string           // default /sys; gives the USB IDs of USB-serial ports
}

// Discover lists attached devices that a profile fits, as device configuration entries (serial
// ports by their stable /dev/serial/by-id path). Devices no profile fits are skipped; a device
// several profiles fit equally is returned in the error (errors.Join of *profile.AmbiguousError)
// and left out. Network printers and SANE scanners cannot be discovered: configure them.
func Discover(ctx context.Context, profiles []*profile.Profile, d Discovery) ([]profile.DeviceEntry, error) {
	if d.DevDir == "" {
		d.DevDir = "/dev"
	}
	if d.SysDir == "" {
		d.SysDir = "/sys"
	}
	var found []profile.Attached
	links, _ := filepath.Glob(filepath.Join(d.DevDir, "serial", "by-id", "*"))
	sort.Strings(links)
	real := map[string]string{} // path as profiles see it (/dev/...) -> path under DevDir
	for _, l := range links {
		rel, _ := filepath.Rel(d.DevDir, l)
		a := profile.Attached{Path: "/dev/" + filepath.ToSlash(rel)}
		real[a.Path] = l
		if target, err := filepath.EvalSymlinks(l); err == nil {
			a.USB = usbOfTTY(d.SysDir, filepath.Base(target))
		}
		found = append(found, a)
	}
	if d.Bus != nil {
		ids, err := d.Bus.List(ctx)
		if err != nil {
			return nil, fmt.Errorf("devices: discover: %w", err)
		}
		for _, id := range ids {
			found = append(found, profile.Attached{USB: &profile.USBIDs{Vendor: id.Vendor, Product: id.Product}})
		}
	}
	var out []profile.DeviceEntry
	var errs []error
	count := map[profile.Class]int{}
	for _, a := range found {
		p, err := profile.Match(profiles, a)
		var amb *profile.AmbiguousError
		switch {
		case errors.As(err, &amb):
			errs = append(errs, err)
			continue
		case err != nil:
			continue // not a peripheral we support (keyboards, hubs, ...)
		}
		e := profile.DeviceEntry{ID: fmt.Sprintf("%s%d", idPrefix[p.Class], count[p.Class]), Profile: p.ID, Path: real[a.Path]}
		count[p.Class]++
		if a.Path == "" {
			e.USB = &profile.USBMatch{VID: fmt.Sprintf("%04x", a.USB.Vendor), PID: fmt.Sprintf("%04x", a.USB.Product)}
		}
		out = append(out, e)
	}
	return out, errors.Join(errs...)
}

var idPrefix = map[profile.Class]string{
	profile.ClassIDReader:        "idcard",
	profile.ClassReceiptPrinter:  "receipt",
	profile.ClassDocumentPrinter: "printer",
	profile.ClassQRScanner:       "qr",
	profile.ClassDocumentScanner: "scan",
}

// usbOfTTY reads the USB vendor and product of tty name from sysfs: the tty's device is a USB
// interface (ttyACM) or a usb-serial port below one (ttyUSB), and the USB device holding idVendor
// and idProduct is one or two levels further up.
func usbOfTTY(sys, name string) *profile.USBIDs {
	dir, err := filepath.EvalSymlinks(filepath.Join(sys, "class", "tty", name, "device"))
	if err != nil {
		return nil
	}
	for range 3 {
		dir = filepath.Dir(dir)
		v, err1 := os.ReadFile(filepath.Join(dir, "idVendor"))
		p, err2 := os.ReadFile(filepath.Join(dir, "idProduct"))
		if err1 != nil || err2 != nil {
			continue
		}
		vid, err1 := profile.ParseUSBID(strings.TrimSpace(string(v)))
		pid, err2 := profile.ParseUSBID(strings.TrimSpace(string(p)))
		if err1 == nil && err2 == nil {
			return &profile.USBIDs{Vendor: vid, Product: pid}
		}
		return nil
	}
	return nil
}
