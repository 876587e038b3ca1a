package usbprinter_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kioskfleet/kioskfleet/drivers/escpos"
	"github.com/kioskfleet/kioskfleet/drivers/escpos/escpossim"
	"github.com/kioskfleet/kioskfleet/drivers/transport"
	"github.com/kioskfleet/kioskfleet/drivers/usbprinter"
	"github.com/kioskfleet/kioskfleet/drivers/usbprinter/usbprintertest"
)

var (
	_ escpos.Link         = (*usbprinter.Printer)(nil)
	_ escpos.ReadyChecker = (*usbprinter.Printer)(nil)
)

const id = "MFG:Xprinter;MDL:XP-80C;CMD:ESC/POS, GB18030;CLS:PRINTER;DES:80mm thermal;"

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func setup(t *testing.T) (*usbprinter.Printer, *usbprintertest.Fake, context.Context) {
	fake := usbprintertest.New(id)
	p := usbprinter.New(fake, usbprinter.Config{Interface: 0, Out: usbprintertest.EPOut, In: usbprintertest.EPIn})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return p, fake, ctx
}

func TestDeviceIDAndPortStatus(t *testing.T) {
	p, fake, ctx := setup(t)
	got, err := p.DeviceID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.Manufacturer != "Xprinter" || got.Model != "XP-80C" || !got.Speaks("esc/pos") || got.Class != "PRINTER" || got.Description != "80mm thermal" {
		t.Errorf("device id = %+v", got)
	}
	ps, err := p.PortStatus(ctx)
	if err != nil || ps != usbprinter.PortOK || ps.Err() != nil {
		t.Fatalf("port status = %v, %v", ps, err)
	}
	fake.SetFault(escpossim.PaperOut, true)
	ps, err = p.PortStatus(ctx)
	if err != nil || !errors.Is(ps.Err(), usbprinter.ErrPaperEmpty) {
		t.Fatalf("port status with paper out = %v, %v", ps, err)
	}
	fake.SetFault(escpossim.PaperOut, false)
	fake.SetFault(escpossim.Offline, true)
	if ps, _ = p.PortStatus(ctx); !errors.Is(ps.Err(), usbprinter.ErrNotSelected) {
		t.Fatalf("port status offline = %v", ps)
	}
	if err := p.SoftReset(ctx); err != nil || fake.Resets() != 1 {
		t.Fatalf("soft reset: %v, %d", err, fake.Resets())
	}
	c := fake.Controls()
	if c[0] != (usbprintertest.Control{RequestType: 0xA1, Request: 0}) || c[len(c)-1].RequestType != 0x21 {
		t.Errorf("control requests %+v", c)
	}
}

func TestESCPOSOverUSB(t *testing.T) {
	p, fake, ctx := setup(t)
	d := escpos.New(p, slog.New(slog.NewTextHandler(io.Discard, nil)), escpos.Options{StatusTimeout: 200 * time.Millisecond})
	if err := d.Print(ctx, escpos.NewJob().Line("预约号 A017").QR([]byte("A017"), 8, escpos.QRLevelQ).Cut(true)); err != nil {
		t.Fatal(err)
	}
	if fake.Text() != "预约号 A017\n" || fake.Cuts() != 1 || len(fake.QRCodes()) != 1 {
		t.Errorf("printed %q, cuts %d, qr %q", fake.Text(), fake.Cuts(), fake.QRCodes())
	}
	fake.SetFault(escpossim.CoverOpen, true)
	if err := d.Print(ctx, escpos.NewJob().Line("no")); !errors.Is(err, escpos.ErrCoverOpen) {
		t.Fatalf("cover open: %v", err)
	}
	fake.Unplug()
	if _, err := d.Status(ctx); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("after unplug: %v", err)
	}
	if _, err := p.DeviceID(ctx); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("device id after unplug: %v", err)
	}
}

func TestOneWayPrinterUsesPortStatus(t *testing.T) {
	fake := usbprintertest.New(id)
	p := usbprinter.New(fake, usbprinter.Config{Out: usbprintertest.EPOut}) // no bulk IN
	d := escpos.New(p, slog.New(slog.NewTextHandler(io.Discard, nil)), escpos.Options{NoRealtimeStatus: true})
	ctx := context.Background()
	if err := d.Print(ctx, escpos.NewJob().Line("one-way")); err != nil {
		t.Fatal(err)
	}
	fake.SetFault(escpossim.PaperOut, true)
	if err := d.Print(ctx, escpos.NewJob().Line("refused")); !errors.Is(err, usbprinter.ErrPaperEmpty) {
		t.Fatalf("paper out on one-way printer: %v", err)
	}
	if fake.Text() != "one-way\n" || fake.Discarded() != 0 {
		t.Errorf("printed %q, discarded %d", fake.Text(), fake.Discarded())
	}
}

func TestOneWayPrinterRecvTimesOut(t *testing.T) {
	fake := usbprintertest.New(id)
	p := usbprinter.New(fake, usbprinter.Config{Out: usbprintertest.EPOut})
	if _, err := p.Recv(context.Background(), make([]byte, 1)); !errors.Is(err, transport.ErrTimeout) {
		t.Fatalf("recv on one-way printer: %v", err)
	}
}

func TestParseDeviceIDErrors(t *testing.T) {
	for name, b := range map[string][]byte{
		"short":     {0x00},
		"len short": {0x00, 0x01, 'a'},
		"len long":  {0x00, 0x40, 'M', 'F', 'G'},
		"no colon":  usbprinter.EncodeDeviceID("MFG:a;MDL:b;junk;"),
		"no model":  usbprinter.EncodeDeviceID("MFG:a;CMD:ESC/POS;"),
		"control":   usbprinter.EncodeDeviceID("MFG:a\x00;MDL:b;"),
	} {
		if _, err := usbprinter.ParseDeviceID(b); !errors.Is(err, usbprinter.ErrBadDeviceID) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Long keys and trailing bytes after the length are accepted.
	got, err := usbprinter.ParseDeviceID(append(usbprinter.EncodeDeviceID("MANUFACTURER:EPSON;MODEL:TM-T88V;COMMAND SET:ESC/POS;"), 0, 0))
	if err != nil || got.Manufacturer != "EPSON" || got.Model != "TM-T88V" || !got.Speaks("ESC/POS") {
		t.Errorf("long keys: %+v, %v", got, err)
	}
}

func FuzzParseDeviceID(f *testing.F) {
	f.Add(usbprinter.EncodeDeviceID(id))
	f.Add(usbprinter.EncodeDeviceID("MANUFACTURER:EPSON;MODEL:TM-T88V;"))
	f.Add([]byte{0xFF, 0xFF, 'M'})
	f.Add([]byte{0x00, 0x02})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := usbprinter.ParseDeviceID(b)
		if err != nil {
			if !errors.Is(err, usbprinter.ErrBadDeviceID) {
				t.Fatalf("error %v does not wrap ErrBadDeviceID", err)
			}
			return
		}
		if got.Manufacturer == "" || got.Model == "" {
			t.Fatalf("accepted without MFG/MDL: %+v", got)
		}
	})
}
