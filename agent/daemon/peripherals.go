package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kioskfleet/kioskfleet/agent/devices"
	"github.com/kioskfleet/kioskfleet/agent/outbox"
	"github.com/kioskfleet/kioskfleet/drivers/idcard"
	"github.com/kioskfleet/kioskfleet/drivers/profile"
	"github.com/kioskfleet/kioskfleet/drivers/transport"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// outboxReporter turns the device manager's reports into outbox records.
type outboxReporter struct{ ob outbox.Outbox }

var _ devices.Reporter = outboxReporter{}

func (r outboxReporter) Report(ctx context.Context, kind string, class wire.Class, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("daemon: encode %s record: %w", kind, err)
	}
	_, err = r.ob.Append(ctx, kind, class, b)
	return err
}

// openDevices builds the device manager from the device configuration and the firmware profiles.
func (a *Agent) openDevices() error {
	if a.cfg.DevicesFile == "" {
		return nil
	}
	dc, err := profile.LoadDeviceConfig(a.cfg.DevicesFile)
	if err != nil {
		return fmt.Errorf("agent: devices: %w", err)
	}
	profs, err := profile.LoadDir(a.cfg.ProfilesDir)
	if err != nil {
		return fmt.Errorf("agent: firmware profiles: %w", err)
	}
	var disc *devices.Discovery
	if a.cfg.Rescan > 0 {
		disc = &devices.Discovery{}
	}
	bus, usbErr := a.openUSB(devices.USBNeeds(dc, profs, disc != nil))
	a.devs, err = devices.New(devices.Config{Devices: dc, Profiles: profs, Reporter: outboxReporter{a.ob}, Log: a.log.With("component", "devices"),
		USB: bus, USBUnavailable: usbErr, Discovery: disc, RescanInterval: a.cfg.Rescan})
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	return nil
}

// openUSB starts libusb when something needs it. Without it (no usbfs in a container, no access
// to /dev/bus/usb, a build without cgo) the agent runs on: serial, network and SANE devices work,
// and the USB devices say why they stay closed.
func (a *Agent) openUSB(needs []string) (transport.USBBus, error) {
	if len(needs) == 0 {
		return nil, nil
	}
	g, err := transport.NewGoUSB()
	if err != nil {
		a.log.Error("agent: USB is unavailable, USB devices stay closed: is /dev/bus/usb there and readable by the agent?",
			"needed_by", strings.Join(needs, "; "), "err", err)
		return nil, err
	}
	a.usb = g
	a.log.Info("agent: USB opened", "needed_by", strings.Join(needs, "; "))
	return g, nil
}

// errNoPeripherals is the answer of the peripheral commands on a kiosk without a device
// configuration.
var errNoPeripherals = errors.New("this kiosk has no peripherals configured (kiosk-agent run --devices FILE)")

// cmdPeripherals answers the peripherals body as it is now.
func (a *Agent) cmdPeripherals(context.Context, json.RawMessage) (json.RawMessage, error) {
	if a.devs == nil {
		return nil, fmt.Errorf("peripherals: %w", errNoPeripherals)
	}
	return json.Marshal(a.devs.Snapshot())
}

// cmdPrintTestPage prints a generated test page on the printer named in args ({"printer": ID}) and
// reports the job's outcome; a job that did not complete fails the command.
func (a *Agent) cmdPrintTestPage(ctx context.Context, args json.RawMessage) (json.RawMessage, error) {
	var req struct {
		Printer string `json:"printer"`
	}
	if a.devs == nil {
		return nil, fmt.Errorf("print-test-page: %w", errNoPeripherals)
	}
	if len(args) > 0 {
		if err := json.Unmarshal(args, &req); err != nil {
			return nil, fmt.Errorf("print-test-page: args: %w", err)
		}
	}
	if req.Printer == "" {
		for _, d := range a.devs.Snapshot().Devices {
			if profile.Class(d.Class) == profile.ClassDocumentPrinter || profile.Class(d.Class) == profile.ClassReceiptPrinter {
				req.Printer = d.ID
				break
			}
		}
	}
	if req.Printer == "" {
		return nil, errors.New("print-test-page: no printer configured; name one with {\"printer\": ID}")
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	out, err := a.devs.PrintTestPage(ctx, req.Printer, devices.TestPage{
		Title: "kioskfleet test page",
		Lines: []string{"kiosk: " + a.id.DeviceID, "printer: " + req.Printer, "time: " + time.Now().Format(time.RFC3339), "agent: " + a.cfg.Version},
	})
	b, _ := json.Marshal(out)
	if err != nil {
		return b, fmt.Errorf("print-test-page: %w", err)
	}
	if out.State != "completed" {
		return b, fmt.Errorf("print-test-page: job %s %v", out.State, out.Reasons)
	}
	return b, nil
}

// cmdIDCardSelfTest reads the card on the reader named in args ({"reader": ID}) to prove the
// reader works end to end. It reports only that the read succeeded, the card type and the time
// taken: never the holder's data, not even masked (field ops do not need it).
func (a *Agent) cmdIDCardSelfTest(ctx context.Context, args json.RawMessage) (json.RawMessage, error) {
	var req struct {
		Reader string `json:"reader"`
	}
	if a.devs == nil {
		return nil, fmt.Errorf("idcard-selftest: %w", errNoPeripherals)
	}
	if len(args) > 0 {
		if err := json.Unmarshal(args, &req); err != nil {
			return nil, fmt.Errorf("idcard-selftest: args: %w", err)
		}
	}
	if req.Reader == "" {
		for _, d := range a.devs.Snapshot().Devices {
			if profile.Class(d.Class) == profile.ClassIDReader {
				req.Reader = d.ID
				break
			}
		}
	}
	if req.Reader == "" {
		return nil, errors.New("idcard-selftest: no ID card reader configured")
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	start := time.Now()
	cardType := "unknown"
	err := a.devs.ReadCard(ctx, req.Reader, func(id devices.Identity) error {
		if t, ok := id.(interface{ Type() idcard.CardType }); ok {
			cardType = t.Type().String()
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("idcard-selftest: %w", err)
	}
	return json.Marshal(map[string]any{"reader": req.Reader, "read": "ok", "cardType": cardType, "millis": time.Since(start).Milliseconds()})
}
