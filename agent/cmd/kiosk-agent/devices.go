package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/kioskfleet/kioskfleet/agent/devices"
	"github.com/kioskfleet/kioskfleet/drivers/profile"
	"github.com/kioskfleet/kioskfleet/drivers/transport"
	"gopkg.in/yaml.v3"
)

// usbBus is libusb's bus as devices discover uses it.
type usbBus interface {
	transport.USBBus
	Close() error
}

var _ usbBus = (*transport.GoUSB)(nil)

// openUSB starts libusb. Tests put a fake bus here: the build machines have no USB bus.
var openUSB = func() (usbBus, error) {
	g, err := transport.NewGoUSB()
	if err != nil {
		return nil, err
	}
	return g, nil
}

// devicesCmd lists the serial ports and USB devices attached to this machine and the firmware
// profile that fits each, as a table or as a device configuration (-o yaml).
func devicesCmd(args []string, stdout, stderr io.Writer) error {
	const usage = "usage: kiosk-agent devices discover [--profiles DIR] [-o table|yaml]"
	if len(args) == 0 || args[0] != "discover" {
		return errors.New(usage)
	}
	fs := flag.NewFlagSet("kiosk-agent devices discover", flag.ContinueOnError)
	fs.SetOutput(stderr)
	profilesDir := fs.String("profiles", "firmware-profiles", "folder of firmware profiles")
	out := fs.String("o", "table", "table, or yaml: a device configuration (for run --devices) of the devices a profile fits")
	devDir := fs.String("dev", "/dev", "device folder; serial ports are found under DEV/serial/by-id")
	sysDir := fs.String("sys", "/sys", "sysfs, which gives the USB IDs of serial ports")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	var errs []error
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments: %v (%s)", fs.Args(), usage))
	}
	if *out != "table" && *out != "yaml" {
		errs = append(errs, fmt.Errorf("-o must be table or yaml, not %q", *out))
	}
	profs, err := profile.LoadDir(*profilesDir)
	if err != nil {
		errs = append(errs, fmt.Errorf("firmware profiles: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}

	d := devices.Discovery{DevDir: *devDir, SysDir: *sysDir}
	if needs := devices.USBNeeds(&profile.DeviceConfig{}, profs, true); len(needs) > 0 {
		bus, err := openUSB()
		if err != nil {
			fmt.Fprintf(stderr, "kiosk-agent: USB devices not listed: libusb is unavailable (is /dev/bus/usb there and readable?): %v\n", err)
		} else {
			defer bus.Close()
			d.Bus = bus
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if *out == "yaml" {
		entries, err := devices.Discover(ctx, profs, d)
		if err != nil {
			fmt.Fprintf(stderr, "kiosk-agent: %v\n", err)
		}
		b, err := yaml.Marshal(&profile.DeviceConfig{Devices: entries})
		if err != nil {
			return err
		}
		_, err = stdout.Write(b)
		return err
	}
	found, err := devices.Attached(ctx, profs, d)
	if err != nil {
		fmt.Fprintf(stderr, "kiosk-agent: %v\n", err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tWHERE\tUSB ID\tPROFILE\tCLASS\tMODEL")
	fits := 0
	for _, f := range found {
		kind, where, usb := "serial", f.Path, "-"
		if f.Path == "" {
			kind, where = "usb", fmt.Sprintf("bus %d device %d", f.USB.Bus, f.USB.Address)
		}
		if f.USB != nil {
			usb = fmt.Sprintf("%04x:%04x", f.USB.Vendor, f.USB.Product)
		}
		prof, class, model := "-", "-", ""
		switch {
		case f.Profile != nil:
			fits++
			prof, class, model = f.Profile.ID, string(f.Profile.Class), f.Profile.Manufacturer+" "+f.Profile.Model
		case errors.Is(f.Err, devices.ErrSerialBridge):
			model = "USB-serial bridge, used through its serial port"
		case errors.Is(f.Err, profile.ErrNoMatch):
			model = "no profile fits"
		default:
			model = f.Err.Error()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", kind, where, usb, prof, class, model)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\n%d attached, %d with a profile. Network printers and SANE scanners are not discovered: configure them.\n", len(found), fits)
	if fits > 0 {
		fmt.Fprintln(stdout, "'kiosk-agent devices discover -o yaml > devices.yaml' writes them as a device configuration for 'kiosk-agent run --devices devices.yaml'.")
	}
	return nil
}
