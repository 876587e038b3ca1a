package devices

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kioskfleet/kioskfleet/drivers/docscan"
	"github.com/kioskfleet/kioskfleet/drivers/escpos"
	"github.com/kioskfleet/kioskfleet/drivers/idcard"
	"github.com/kioskfleet/kioskfleet/drivers/ipp"
	"github.com/kioskfleet/kioskfleet/drivers/profile"
	"github.com/kioskfleet/kioskfleet/drivers/qrscan"
	"github.com/kioskfleet/kioskfleet/drivers/transport"
	"github.com/kioskfleet/kioskfleet/drivers/usbprinter"
)

// DefaultOpeners returns the drivers built into the agent, by profile driver name, without USB.
func DefaultOpeners() map[profile.Driver]Opener { return Openers(nil) }

// Openers returns the drivers built into the agent; USB devices are opened on bus (nil: USB
// profiles fail to open with a clear error). The caller owns bus.
func Openers(bus transport.USBBus) map[profile.Driver]Opener { return openersFor(bus, nil) }

// openersFor is Openers with the reason why bus is nil, for the devices' errors.
func openersFor(bus transport.USBBus, noBus error) map[profile.Driver]Opener {
	o := &openers{bus: bus, noBus: noBus}
	return map[profile.Driver]Opener{
		profile.DriverESCPOS:  o.escpos,
		profile.DriverIDCard:  o.idcard,
		profile.DriverIPP:     o.ipp,
		profile.DriverQRScan:  o.qrscan,
		profile.DriverDocScan: o.sane,
	}
}

type openers struct {
	bus   transport.USBBus
	noBus error // why bus is nil, if known
}

// openUSB opens e's USB device on the profile's interface.
func (o *openers) openUSB(ctx context.Context, e profile.DeviceEntry, p *profile.Profile) (transport.USBDevice, error) {
	switch {
	case o.bus == nil && o.noBus != nil:
		return nil, fmt.Errorf("devices: %s: profile %s needs USB, which is unavailable: %w", e.ID, p.ID, o.noBus)
	case o.bus == nil:
		return nil, fmt.Errorf("devices: %s: profile %s needs USB, and the agent runs without a USB bus", e.ID, p.ID)
	}
	a := e.Attached()
	if a.USB == nil {
		return nil, fmt.Errorf("devices: %s: USB profile %s needs usb vid/pid in the device configuration", e.ID, p.ID)
	}
	dev, err := o.bus.Open(ctx, transport.USBID{Vendor: a.USB.Vendor, Product: a.USB.Product}, p.Transport.Interface)
	if err != nil {
		return nil, fmt.Errorf("devices: open %s: %w", e.ID, err)
	}
	return dev, nil
}

// openSerial opens e's serial port at the profile's baud rate and waits out the profile's settle
// delay.
func openSerial(ctx context.Context, e profile.DeviceEntry, p *profile.Profile) (transport.Port, error) {
	if p.Transport.Kind != profile.TransportSerial {
		return nil, fmt.Errorf("devices: %s: transport %s is not supported by this agent yet", p.ID, p.Transport.Kind)
	}
	if e.Path == "" {
		return nil, fmt.Errorf("devices: %s: serial profile %s needs a path", e.ID, p.ID)
	}
	port, err := transport.Serial{}.OpenSerial(e.Path, transport.SerialMode{Baud: p.Transport.Baud})
	if err != nil {
		return nil, err
	}
	if d := p.Quirks.SettleDelay; d > 0 && !sleep(ctx, d) {
		port.Close()
		return nil, ctx.Err()
	}
	return port, nil
}

// presence is the optional capability of serial ports (transport.Serial's) that tell whether
// their device is still attached without a byte on the wire.
type presence interface{ Present() error }

// present returns an error wrapping transport.ErrClosed when port's device is gone, nil when it
// is there, the port cannot tell, or port is nil (a USB device).
func present(port transport.Port) error {
	if p, ok := port.(presence); ok {
		return p.Present()
	}
	return nil
}

// escposDevice adapts an ESC/POS receipt printer.
type escposDevice struct {
	dev   *escpos.Device
	link  escpos.Link
	port  transport.Port // nil on USB
	close func() error
}

var (
	_ Device          = (*escposDevice)(nil)
	_ TestPagePrinter = (*escposDevice)(nil)
	_ ReceiptPrinter  = (*escposDevice)(nil)
)

// escpos opens an ESC/POS receipt printer on a serial port or the USB printer class.
func (o *openers) escpos(ctx context.Context, e profile.DeviceEntry, p *profile.Profile, log *slog.Logger) (Device, error) {
	var link escpos.Link
	var closer func() error
	var port transport.Port
	if p.Transport.Kind == profile.TransportUSBPrinter {
		dev, err := o.openUSB(ctx, e, p)
		if err != nil {
			return nil, err
		}
		cfg := usbprinter.Config{Interface: uint8(p.Transport.Interface)}
		if ep := p.Transport.Endpoints; ep != nil {
			cfg.Out, cfg.In = uint8(ep.Out), uint8(ep.In)
		} else {
			cfg.Out = 0x01
		}
		link, closer = usbprinter.New(dev, cfg), dev.Close
	} else {
		var err error
		if port, err = openSerial(ctx, e, p); err != nil {
			return nil, err
		}
		link, closer = &escpos.SerialLink{Port: port}, port.Close
	}
	d := &escposDevice{
		dev:   escpos.New(link, log, escpos.Options{StatusTimeout: p.Quirks.ReplyTimeout, NoRealtimeStatus: p.Quirks.NoRealtimeStatus}),
		link:  link,
		port:  port,
		close: closer,
	}
	if p.Quirks.ResetOnOpen {
		if err := link.Send(ctx, []byte{escpos.ESC, '@'}); err != nil {
			closer()
			return nil, fmt.Errorf("devices: reset %s: %w", e.ID, err)
		}
	}
	return d, nil
}

func (d *escposDevice) Close() error { return d.close() }

// Status asks the printer (DLE EOT); a serial printer whose port is gone is gone even when the
// profile says it has no real-time status.
func (d *escposDevice) Status(ctx context.Context) (Status, error) {
	if err := present(d.port); err != nil {
		return Status{}, err
	}
	s, err := d.dev.Status(ctx)
	if errors.Is(err, escpos.ErrNoStatus) {
		return Status{State: StateOK, Consumables: []Consumable{{Name: "paper", Level: LevelUnknown}}}, nil
	}
	if err != nil {
		return Status{}, err
	}
	return escposStatus(s), nil
}

// escposStatus maps a printer's flags to reasons: the reason that stops printing first.
func escposStatus(s escpos.Status) Status {
	var st Status
	add := func(on bool, r string) {
		if on {
			st.Reasons = append(st.Reasons, r)
		}
	}
	add(s.CoverOpen, "cover-open")
	add(s.PaperOut || s.PaperEndStop, "paper-out")
	add(s.CutterError, "cutter-error")
	add(s.Unrecoverable, "unrecoverable-error")
	add(s.AutoRecoverable, "auto-recoverable-error")
	add(s.Offline && len(st.Reasons) == 0, "offline")
	paper := LevelOK
	switch {
	case s.PaperOut || s.PaperEndStop:
		paper = LevelEmpty
	case s.PaperNearEnd:
		paper = LevelLow
	}
	st.Consumables = []Consumable{{Name: "paper", Level: paper}}
	switch {
	case s.Err() != nil:
		st.State = StateFault
	case s.PaperNearEnd:
		st.State = StateDegraded
		st.Reasons = append(st.Reasons, "paper-near-end")
	default:
		st.State = StateOK
	}
	return st
}

// PrintTestPage prints page as a receipt.
func (d *escposDevice) PrintTestPage(ctx context.Context, page TestPage) (JobOutcome, error) {
	lines := append([]string{page.Title, ""}, page.Lines...)
	return d.PrintReceipt(ctx, Receipt{Lines: append(lines, time.Now().Format(time.DateTime))})
}

// PrintReceipt prints r's lines and QR code and cuts. ESC/POS has no job acknowledgement: the job
// counts as completed when it was sent and the printer's status afterwards shows no fault.
func (d *escposDevice) PrintReceipt(ctx context.Context, r Receipt) (JobOutcome, error) {
	job := escpos.NewJob()
	for _, l := range r.Lines {
		job.Line(l)
	}
	if r.QR != "" {
		job.QR([]byte(r.QR), 6, escpos.QRLevelM)
	}
	job.Feed(4).Cut(false)
	err := d.dev.Print(ctx, job)
	var se *escpos.StatusError
	switch {
	case errors.As(err, &se):
		return JobOutcome{State: JobRefused, Reasons: escposStatus(se.Status).Reasons, Error: err.Error()}, nil
	case err != nil:
		return JobOutcome{State: JobAborted, Error: err.Error()}, err
	}
	after, err := d.dev.Status(ctx)
	if errors.Is(err, escpos.ErrNoStatus) {
		return JobOutcome{State: JobCompleted}, nil
	}
	if err != nil {
		return JobOutcome{State: JobAborted, Error: err.Error()}, err
	}
	if after.Err() != nil {
		return JobOutcome{State: JobAborted, Reasons: escposStatus(after).Reasons, Error: after.Err().Error()}, nil
	}
	return JobOutcome{State: JobCompleted}, nil
}

// idcardDevice adapts a GA 467 ID card reader.
type idcardDevice struct {
	r     *idcard.Reader
	opt   idcard.ReadOptions
	port  transport.Port // nil on USB
	close func() error
}

var (
	_ Device     = (*idcardDevice)(nil)
	_ CardReader = (*idcardDevice)(nil)
	_ Identity   = (*idcard.Identity)(nil)
)

// idcard opens a GA 467 reader on a serial port or a vendor USB bulk interface.
func (o *openers) idcard(ctx context.Context, e profile.DeviceEntry, p *profile.Profile, log *slog.Logger) (Device, error) {
	cfg := idcard.Config{ReadTimeout: p.Quirks.ReplyTimeout, Logger: log}
	d := &idcardDevice{opt: idcard.ReadOptions{AppendedAddress: p.Has("read-new-address")}}
	if p.Transport.Kind == profile.TransportUSBBulk {
		dev, err := o.openUSB(ctx, e, p)
		if err != nil {
			return nil, err
		}
		ep := p.Transport.Endpoints
		l := idcard.USBLayout{HeaderOut: uint8(ep.Out), HeaderIn: uint8(ep.In)}
		if ep.HeaderOut != 0 { // split frames: header on HeaderOut, the rest on Out
			l.HeaderOut, l.BodyOut = uint8(ep.HeaderOut), uint8(ep.Out)
		}
		l.BodyIn = uint8(ep.BodyIn)
		r, err := idcard.NewUSBReader(dev, l, cfg)
		if err != nil {
			dev.Close()
			return nil, err
		}
		d.r, d.close = r, dev.Close
	} else {
		port, err := openSerial(ctx, e, p)
		if err != nil {
			return nil, err
		}
		d.r, d.port, d.close = idcard.NewSerialReader(port, cfg), port, port.Close
	}
	if p.Quirks.ResetOnOpen {
		if err := d.r.ResetSAM(ctx); err != nil {
			d.close()
			return nil, fmt.Errorf("devices: reset SAM of %s: %w", e.ID, err)
		}
	}
	return d, nil
}

func (d *idcardDevice) Close() error { return d.close() }

// Status asks the SAM for its status (11 FF). A broken SAM is a fault; other SAM answers
// (no card and the like) mean the reader works.
func (d *idcardDevice) Status(ctx context.Context) (Status, error) {
	if err := present(d.port); err != nil {
		return Status{}, err
	}
	err := d.r.SAMStatus(ctx)
	var st idcard.Status
	switch {
	case err == nil:
		return Status{State: StateOK}, nil
	case errors.As(err, &st) && st.Fault():
		return Status{State: StateFault, Reasons: []string{"sam-fault"}}, nil
	case errors.As(err, &st):
		return Status{State: StateOK}, nil
	}
	return Status{}, err
}

// ReadCard finds, selects and reads the card on the reader.
func (d *idcardDevice) ReadCard(ctx context.Context) (Identity, error) {
	id, err := d.r.ReadCard(ctx, d.opt)
	if err != nil {
		return nil, err
	}
	return id, nil
}

// ippDevice adapts an IPP Everywhere printer.
type ippDevice struct {
	c    *ipp.Client
	name string
}

var (
	_ Device          = (*ippDevice)(nil)
	_ TestPagePrinter = (*ippDevice)(nil)
	_ DocumentPrinter = (*ippDevice)(nil)
)

// ipp opens a network printer: it is "connected" while it answers Get-Printer-Attributes.
func (o *openers) ipp(ctx context.Context, e profile.DeviceEntry, p *profile.Profile, _ *slog.Logger) (Device, error) {
	if e.URI == "" {
		return nil, fmt.Errorf("devices: %s: IPP profile %s needs a uri", e.ID, p.ID)
	}
	timeout := p.Quirks.ReplyTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	c, err := ipp.New(e.URI, &http.Client{Timeout: timeout})
	if err != nil {
		return nil, err
	}
	if _, err := c.PrinterAttributes(ctx); err != nil {
		return nil, fmt.Errorf("devices: %s: %w", e.ID, err)
	}
	return &ippDevice{c: c, name: e.ID + " (" + p.Manufacturer + " " + p.Model + ")"}, nil
}

func (d *ippDevice) Close() error { return nil }

// Status asks for the printer's attributes. A printer that refuses the connection (switched off,
// or its address is not on the network) is gone, not slow: the manager reports it disconnected
// at once and reopens it with backoff.
func (d *ippDevice) Status(ctx context.Context) (Status, error) {
	p, err := d.c.PrinterAttributes(ctx)
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return Status{}, fmt.Errorf("%w: %w", transport.ErrClosed, err)
	}
	if err != nil {
		return Status{}, err
	}
	return ippStatus(p), nil
}

// ippStatus maps printer-state-reasons (RFC 8011 §5.4.12): blocking reasons make a fault, other
// reasons (media-low, toner-low, ...) a degradation.
func ippStatus(p *ipp.Printer) Status {
	st := Status{State: StateOK}
	has := func(rs ...ipp.Reason) bool { return slices.ContainsFunc(rs, p.Has) }
	for _, r := range p.Reasons {
		if r.Reason == ipp.ReasonNone || slices.Contains(st.Reasons, string(r.Reason)) {
			continue
		}
		st.Reasons = append(st.Reasons, string(r.Reason))
		st.State = StateDegraded
	}
	if p.Ready() != nil {
		st.State = StateFault
		if len(st.Reasons) == 0 {
			st.Reasons = []string{"not-accepting-jobs"}
		}
	}
	level := func(empty, low []ipp.Reason) string {
		switch {
		case has(empty...):
			return LevelEmpty
		case has(low...):
			return LevelLow
		}
		return LevelOK
	}
	st.Consumables = []Consumable{
		{Name: "paper", Level: level([]ipp.Reason{ipp.ReasonMediaEmpty, ipp.ReasonMediaNeeded}, []ipp.Reason{ipp.ReasonMediaLow})},
		{Name: "toner", Level: level([]ipp.Reason{ipp.ReasonTonerEmpty, ipp.ReasonMarkerSupplyEmpty}, []ipp.Reason{ipp.ReasonTonerLow, ipp.ReasonMarkerSupplyLow})},
	}
	return st
}

// PrintTestPage prints the A4 test page (PDF) and follows the job to its end.
func (d *ippDevice) PrintTestPage(ctx context.Context, page TestPage) (JobOutcome, error) {
	doc, err := ipp.TestPagePDF(ipp.TestPage{Printer: d.name, Lines: page.Lines})
	if err != nil {
		return JobOutcome{State: JobAborted, Error: err.Error()}, err
	}
	return d.PrintDocument(ctx, Document{Name: page.Title, Data: doc}, nil)
}

// PrintDocument prints doc and follows the job to its end, reporting its pages and the printer's
// reasons (media-empty mid-job) to progress.
func (d *ippDevice) PrintDocument(ctx context.Context, doc Document, progress func(JobProgress)) (JobOutcome, error) {
	opt := ipp.JobOptions{Name: doc.Name, Format: doc.Format}
	if progress != nil {
		opt.Progress = func(j *ipp.Job) {
			p := JobProgress{JobID: j.ID, State: j.State.String(), Pages: j.ImpressionsCompleted, TotalPages: j.Impressions}
			for _, r := range j.PrinterReasons {
				p.Reasons = append(p.Reasons, string(r.Reason))
			}
			progress(p)
		}
	}
	job, err := d.c.Print(ctx, doc.Data, opt)
	var nr *ipp.NotReadyError
	var je *ipp.JobError
	switch {
	case errors.As(err, &nr):
		out := JobOutcome{State: JobRefused, Error: err.Error()}
		for _, r := range nr.Reasons {
			out.Reasons = append(out.Reasons, string(r))
		}
		return out, nil
	case errors.As(err, &je):
		out := JobOutcome{State: JobAborted, JobID: je.Job.ID, Reasons: je.Job.Reasons, Error: err.Error()}
		if je.Job.State == ipp.JobCanceled {
			out.State = JobCanceled
		}
		for _, r := range je.Job.PrinterReasons {
			if r.Reason != ipp.ReasonNone && !slices.Contains(out.Reasons, string(r.Reason)) {
				out.Reasons = append(out.Reasons, string(r.Reason))
			}
		}
		return out, nil
	case err != nil:
		out := JobOutcome{State: JobAborted, Error: err.Error()}
		if job != nil {
			out.JobID = job.ID
		}
		if ctx.Err() != nil && job != nil {
			out.State = JobCanceled // WaitJob canceled it on the printer
		}
		return out, err
	}
	return JobOutcome{State: JobCompleted, JobID: job.ID}, nil
}

// qrDevice adapts a serial QR/barcode scanner. The scanner only talks when a code is scanned and
// its protocol (serial-text) has no query to probe it with, so presence is what the port shows:
// a read error, EOF or hangup (a CDC-ACM device or USB-serial bridge unplugged) ends the reading
// goroutine, and Status checks that the port's path still names the device that was opened (the
// node and its /dev/serial/by-id link go away on unplug even where no hangup reaches the port).
// A cable pulled from a native RS-232 port shows in neither. Scans are handed only to a caller
// waiting in NextCode; a code scanned while nobody waits is dropped, never delivered later.
type qrDevice struct {
	port   transport.Port
	cancel context.CancelFunc
	codes  chan string   // unbuffered: delivery only to a waiting caller
	done   chan struct{} // closed when the scanner stopped
	err    error         // why it stopped; read after done
}

var (
	_ Device     = (*qrDevice)(nil)
	_ CodeReader = (*qrDevice)(nil)
)

func (o *openers) qrscan(ctx context.Context, e profile.DeviceEntry, p *profile.Profile, log *slog.Logger) (Device, error) {
	port, err := openSerial(ctx, e, p)
	if err != nil {
		return nil, err
	}
	cfg := qrscan.Config{}
	if sc := p.Scanner; sc != nil {
		cfg.Suffix, cfg.MaxLength = qrscan.Suffix(sc.Suffix), sc.MaxLength
	}
	s, err := qrscan.New(port, cfg, log)
	if err != nil {
		port.Close()
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	d := &qrDevice{port: port, cancel: cancel, codes: make(chan string), done: make(chan struct{})}
	runErr := make(chan error, 1)
	go func() { runErr <- s.Run(rctx) }()
	go func() { // owned by d: ends when Run closes Scans
		defer close(d.done)
		for sc := range s.Scans() {
			if sc.Err != nil {
				continue // counted by the driver
			}
			select {
			case d.codes <- sc.Data:
			default: // nobody waiting: drop it
			}
		}
		d.err = <-runErr
		if d.err == nil {
			d.err = fmt.Errorf("qrscan: stopped: %w", transport.ErrClosed)
		}
	}()
	return d, nil
}

func (d *qrDevice) Close() error {
	d.cancel()
	err := d.port.Close()
	<-d.done
	return err
}

func (d *qrDevice) Status(ctx context.Context) (Status, error) {
	select {
	case <-d.done:
		return Status{}, d.err
	default:
	}
	if err := present(d.port); err != nil {
		return Status{}, err
	}
	return Status{State: StateOK}, nil
}

// NextCode waits for the next scan.
func (d *qrDevice) NextCode(ctx context.Context) (string, error) {
	select {
	case c := <-d.codes:
		return c, nil
	case <-d.done:
		return "", fmt.Errorf("%w: %w", ErrNotConnected, d.err)
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// saneDevice adapts a SANE document scanner. Presence is checked by asking scanimage for the
// device's options (scanimage -d DEV -A, a few ms with a private SANE config); cover-open and
// jams are known only from the last scan and clear with the next good one.
type saneDevice struct {
	s *docscan.SANE

	mu   sync.Mutex
	last error // error of the last scan, if it left the scanner needing attention
}

var (
	_ Device          = (*saneDevice)(nil)
	_ DocumentScanner = (*saneDevice)(nil)
)

func (o *openers) sane(ctx context.Context, e profile.DeviceEntry, p *profile.Profile, _ *slog.Logger) (Device, error) {
	if e.SANE == "" {
		return nil, fmt.Errorf("devices: %s: SANE profile %s needs a sane device name", e.ID, p.ID)
	}
	d := &saneDevice{s: &docscan.SANE{Device: e.SANE, ConfigDir: e.Env["SANE_CONFIG_DIR"], Timeout: p.Quirks.ReplyTimeout}}
	if err := d.probe(ctx); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *saneDevice) probe(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, "scanimage", "-d", d.s.Device, "-A")
	cmd.Env = os.Environ()
	if d.s.ConfigDir != "" {
		cmd.Env = append(cmd.Env, "SANE_CONFIG_DIR="+d.s.ConfigDir)
	}
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
			msg = msg[i+1:]
		}
		return fmt.Errorf("sane device %s: %w (%v: %s)", d.s.Device, transport.ErrClosed, err, msg)
	}
	return nil
}

func (d *saneDevice) Close() error { return nil }

func (d *saneDevice) Status(ctx context.Context) (Status, error) {
	if err := d.probe(ctx); err != nil {
		return Status{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case errors.Is(d.last, docscan.ErrCoverOpen):
		return Status{State: StateFault, Reasons: []string{"cover-open"}}, nil
	case errors.Is(d.last, docscan.ErrJammed):
		return Status{State: StateFault, Reasons: []string{"media-jam"}}, nil
	}
	return Status{State: StateOK}, nil
}

// ScanDocument scans with opt. The pages are personal data: the manager never logs them.
func (d *saneDevice) ScanDocument(ctx context.Context, opt docscan.Options) ([]docscan.Page, error) {
	pages, err := d.s.Scan(ctx, opt)
	d.mu.Lock()
	d.last = nil
	if errors.Is(err, docscan.ErrCoverOpen) || errors.Is(err, docscan.ErrJammed) {
		d.last = err
	}
	d.mu.Unlock()
	return pages, err
}
