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

// ErrSerialBridge says why a device on the USB bus gets no profile of its own: it is a USB-serial
// bridge (CH340, CP2102, ...) that a serial profile names, and is used through its serial port.
var ErrSerialBridge = errors.New("devices: USB-serial bridge, used through its serial port")

// Discovery says where to look for attached devices. Zero values are the real system's.
type Discovery struct {
	Bus    transport.USBBus // USB devices with vendor interfaces; nil: none
	DevDir string           // default /dev; serial ports are found under DevDir/serial/by-id
	SysDir string           // default /sys; gives the USB IDs of USB-serial ports
}

// Found is a device attached to the kiosk and the profile that fits it.
type Found struct {
	Path    string           // a serial port's stable path (under Discovery.DevDir/serial/by-id); "" on the USB bus
	USB     *transport.USBID // the USB device, or a serial port's USB bridge (vendor and product only); nil: not USB
	Profile *profile.Profile // nil when none fits or several do (Err says which)
	Err     error            // profile.ErrNoMatch, *profile.AmbiguousError or ErrSerialBridge
}

// Attached lists the serial ports under /dev/serial/by-id (with their USB IDs read from sysfs)
// and the devices on the USB bus, each with the profile that fits it (a serial profile's USB IDs
// name its bridge: the bridge on the bus gets ErrSerialBridge). The error is the bus's: the
// serial ports are listed even when the bus cannot be.
func Attached(ctx context.Context, profiles []*profile.Profile, d Discovery) ([]Found, error) {
	if d.DevDir == "" {
		d.DevDir = "/dev"
	}
	if d.SysDir == "" {
		d.SysDir = "/sys"
	}
	var found []Found
	links, _ := filepath.Glob(filepath.Join(d.DevDir, "serial", "by-id", "*"))
	sort.Strings(links)
	for _, l := range links {
		rel, _ := filepath.Rel(d.DevDir, l)
		a := profile.Attached{Path: "/dev/" + filepath.ToSlash(rel)} // as profiles see it
		f := Found{Path: l}
		if target, err := filepath.EvalSymlinks(l); err == nil {
			if a.USB = usbOfTTY(d.SysDir, filepath.Base(target)); a.USB != nil {
				f.USB = &transport.USBID{Vendor: a.USB.Vendor, Product: a.USB.Product}
			}
		}
		f.Profile, f.Err = profile.Match(profiles, a)
		found = append(found, f)
	}
	if d.Bus == nil {
		return found, nil
	}
	ids, err := d.Bus.List(ctx)
	if err != nil {
		return found, fmt.Errorf("devices: list usb devices: %w", err)
	}
	for _, id := range ids {
		f := Found{USB: &id}
		f.Profile, f.Err = profile.Match(profiles, profile.Attached{USB: &profile.USBIDs{Vendor: id.Vendor, Product: id.Product}})
		if errors.Is(f.Err, profile.ErrNoMatch) && isBridge(profiles, id) {
			f.Err = ErrSerialBridge
		}
		found = append(found, f)
	}
	return found, nil
}

// isBridge reports whether a serial profile names id as its USB-serial bridge.
func isBridge(profiles []*profile.Profile, id transport.USBID) bool {
	for _, p := range profiles {
		if p.Transport.Kind != profile.TransportSerial {
			continue
		}
		for _, u := range p.Match.USB {
			v, err1 := profile.ParseUSBID(u.VID)
			d, err2 := profile.ParseUSBID(u.PID)
			if err1 == nil && err2 == nil && v == id.Vendor && d == id.Product {
				return true
			}
		}
	}
	return false
}

// Discover lists attached devices that a profile fits, as device configuration entries (serial
// ports by their stable /dev/serial/by-id path). Devices no profile fits are skipped; a device
// several profiles fit equally is returned in the error (errors.Join of *profile.AmbiguousError)
// and left out, as are the USB devices when the bus cannot be listed. Network printers and SANE
// scanners cannot be discovered: configure them.
func Discover(ctx context.Context, profiles []*profile.Profile, d Discovery) ([]profile.DeviceEntry, error) {
	found, err := Attached(ctx, profiles, d)
	errs := []error{err}
	var out []profile.DeviceEntry
	count := map[profile.Class]int{}
	for _, f := range found {
		var amb *profile.AmbiguousError
		if errors.As(f.Err, &amb) {
			errs = append(errs, f.Err)
		}
		if f.Profile == nil {
			continue // not a peripheral we support (keyboards, hubs, ...)
		}
		p := f.Profile
		e := profile.DeviceEntry{ID: fmt.Sprintf("%s%d", idPrefix[p.Class], count[p.Class]), Profile: p.ID, Path: f.Path}
		count[p.Class]++
		if f.Path == "" {
			e.USB = &profile.USBMatch{VID: fmt.Sprintf("%04x", f.USB.Vendor), PID: fmt.Sprintf("%04x", f.USB.Product)}
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

// usbTransport reports whether p's device is driven over the USB bus (not a USB-serial port).
func usbTransport(p *profile.Profile) bool {
	return p.Transport.Kind == profile.TransportUSBBulk || p.Transport.Kind == profile.TransportUSBPrinter
}

// USBNeeds says what needs a USB bus: each configured device whose profile drives it over USB
// and, when discovering, each USB profile that discovery looks for on the bus. Empty: the agent
// can do without libusb.
func USBNeeds(dc *profile.DeviceConfig, profiles []*profile.Profile, discover bool) []string {
	var needs []string
	for _, e := range dc.Devices {
		if p, err := profile.Match(profiles, e.Attached()); err == nil && usbTransport(p) {
			needs = append(needs, fmt.Sprintf("device %s (profile %s)", e.ID, p.ID))
		}
	}
	if discover {
		for _, p := range profiles {
			if usbTransport(p) {
				needs = append(needs, fmt.Sprintf("discovery of profile %s", p.ID))
			}
		}
	}
	return needs
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
