package devices

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kioskfleet/kioskfleet/drivers/docscan"
	"github.com/kioskfleet/kioskfleet/drivers/idcard"
	"github.com/kioskfleet/kioskfleet/drivers/profile"
	"github.com/kioskfleet/kioskfleet/drivers/transport"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// Config configures a Manager. Devices, Profiles, Reporter and Log are required.
type Config struct {
	Devices  *profile.DeviceConfig
	Profiles []*profile.Profile
	Openers  map[profile.Driver]Opener // nil: Openers(USB)
	USB      transport.USBBus          // for USB profiles when Openers is nil; nil: no USB
	// USBUnavailable says why USB is nil (libusb failed to start); USB devices show it.
	USBUnavailable error
	Reporter       Reporter
	Log            *slog.Logger

	// Discovery, when set, is looked at every RescanInterval (default 5 s) for attached devices
	// that no device of the manager stands for; those a profile fits are added and opened
	// (hot-plug), and stay in the inventory, disconnected, when they go. Its Bus defaults to USB.
	Discovery      *Discovery
	RescanInterval time.Duration

	PollInterval   time.Duration // status polling when the profile has none; default 1 s
	StatusTimeout  time.Duration // deadline of one status query when the profile has none; default 2 s
	OpenTimeout    time.Duration // deadline of one open; default 5 s
	ReportInterval time.Duration // a peripherals record at least this often; default 5 min
	MinBackoff     time.Duration // first reopen delay; default 250 ms
	MaxBackoff     time.Duration // longest reopen delay; default 10 s
	MaxNoResponse  int           // failed status polls in a row before reopening; default 3
	AlertQuiet     time.Duration // an identical alert of a device is not repeated within this; default 1 min
}

// Manager owns the kiosk's peripherals. Create it with New and run it with Run.
type Manager struct {
	cfg     Config
	log     *slog.Logger
	changed chan struct{} // a device's status changed: report soon

	mu      sync.Mutex // guards alerts, devices, byID, next and every managed.st
	devices []*managed
	byID    map[string]*managed
	alerts  []wire.Alert
	next    chan struct{} // closed at the next change: Changed
}

// managed is one device, configured or discovered.
type managed struct {
	entry profile.DeviceEntry
	prof  *profile.Profile // nil when none matched
	perr  error            // why prof is nil
	log   *slog.Logger
	poke  chan struct{} // poll now (after a print)

	op  sync.Mutex // serialises use of dev: polls, prints, card reads
	dev Device     // nil when not open; written under op

	st      wire.Peripheral      // guarded by Manager.mu
	alerted map[string]time.Time // alert code and message -> when last sent; guarded by Manager.mu
	quiet   map[string]int       // alerts held back since then, by the same key
}

// New checks cfg and matches every configured device to its profile. A device without a profile
// is kept and reported as a fault (reason no-profile); it is not an error.
func New(cfg Config) (*Manager, error) {
	if cfg.Devices == nil || cfg.Reporter == nil || cfg.Log == nil {
		return nil, errors.New("devices: Config needs Devices, Reporter and Log")
	}
	if cfg.Openers == nil {
		cfg.Openers = openersFor(cfg.USB, cfg.USBUnavailable)
	}
	if d := cfg.Discovery; d != nil && d.Bus == nil {
		dc := *d
		dc.Bus = cfg.USB
		cfg.Discovery = &dc
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.PollInterval, time.Second)
	def(&cfg.StatusTimeout, 2*time.Second)
	def(&cfg.OpenTimeout, 5*time.Second)
	def(&cfg.ReportInterval, 5*time.Minute)
	def(&cfg.MinBackoff, 250*time.Millisecond)
	def(&cfg.MaxBackoff, 10*time.Second)
	def(&cfg.AlertQuiet, time.Minute)
	def(&cfg.RescanInterval, 5*time.Second)
	if cfg.MaxNoResponse <= 0 {
		cfg.MaxNoResponse = 3
	}
	m := &Manager{cfg: cfg, log: cfg.Log, byID: map[string]*managed{}, changed: make(chan struct{}, 1), next: make(chan struct{})}
	for _, e := range cfg.Devices.Devices {
		if _, dup := m.byID[e.ID]; dup {
			return nil, fmt.Errorf("devices: duplicate device id %q", e.ID)
		}
		d := m.add(e)
		if strings.HasPrefix(e.Path, "/dev/ttyUSB") || strings.HasPrefix(e.Path, "/dev/ttyACM") {
			d.log.Warn("devices: serial port configured by its plug-order name; after a replug it may be another device: use its /dev/serial/by-id path", "path", e.Path)
		}
	}
	return m, nil
}

// add matches e to its profile and adds it to the inventory. Called with m.mu held or before Run.
func (m *Manager) add(e profile.DeviceEntry) *managed {
	d := &managed{entry: e, log: m.log.With("peripheral", e.ID), poke: make(chan struct{}, 1),
		alerted: map[string]time.Time{}, quiet: map[string]int{}}
	d.st = wire.Peripheral{ID: e.ID, Class: string(e.Class), Status: StateUnknown, Since: time.Now().UnixMilli()}
	d.prof, d.perr = profile.Match(m.cfg.Profiles, e.Attached())
	if d.prof != nil {
		d.st.Class, d.st.Manufacturer, d.st.Model, d.st.Profile = string(d.prof.Class), d.prof.Manufacturer, d.prof.Model, d.prof.ID
	} else {
		d.st.Status, d.st.Reasons, d.st.Error = StateFault, []string{ReasonNoProfile}, d.perr.Error()
	}
	m.devices = append(m.devices, d)
	m.byID[e.ID] = d
	return d
}

// Run opens and watches every device and reports until ctx is done, then closes every device.
// It returns once all its goroutines have ended.
func (m *Manager) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	start := func(d *managed) {
		if d.prof == nil {
			m.log.Warn("devices: no profile for device; it stays unused", "peripheral", d.entry.ID, "err", d.perr)
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.runDevice(ctx, d)
		}()
	}
	m.mu.Lock()
	configured := slices.Clone(m.devices)
	m.mu.Unlock()
	for _, d := range configured {
		start(d)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		m.reportLoop(ctx)
	}()
	if m.cfg.Discovery != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.rescanLoop(ctx, start)
		}()
	}
	wg.Wait()
	return nil
}

// rescanLoop looks for newly attached devices at once and then every RescanInterval, and starts
// those it adds. Each problem of discovery (a device several profiles fit, a USB bus that cannot
// be listed) is logged once.
func (m *Manager) rescanLoop(ctx context.Context, start func(*managed)) {
	t := time.NewTicker(m.cfg.RescanInterval)
	defer t.Stop()
	logged := map[string]bool{}
	for {
		found, err := Discover(ctx, m.cfg.Profiles, *m.cfg.Discovery)
		errs := []error{err}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			errs = j.Unwrap()
		}
		for _, err := range errs {
			if err != nil && ctx.Err() == nil && !logged[err.Error()] {
				logged[err.Error()] = true
				m.log.Warn("devices: discovery", "err", err)
			}
		}
		for _, e := range found {
			if d := m.addFound(e); d != nil {
				d.log.Info("devices: found attached device", "profile", e.Profile, "at", e.Attached())
				start(d)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// addFound adds a discovered device unless a device of the manager already stands for it (the
// same path, the same port behind a link, or the same USB vendor and product). A taken ID gets
// the next free number of its kind. It returns the device added, or nil.
func (m *Manager) addFound(e profile.DeviceEntry) *managed {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, d := range m.devices {
		if sameDevice(d.entry, e) {
			return nil
		}
	}
	kind := strings.TrimRight(e.ID, "0123456789")
	for n := 0; m.byID[e.ID] != nil; n++ {
		e.ID = fmt.Sprintf("%s%d", kind, n)
	}
	d := m.add(e)
	m.signalLocked()
	return d
}

// signalLocked queues a report and wakes those waiting on Changed. Called with m.mu held.
func (m *Manager) signalLocked() {
	select {
	case m.changed <- struct{}{}:
	default:
	}
	close(m.next)
	m.next = make(chan struct{})
}

// Changed returns a channel that is closed at the next change of the inventory or of a device's
// status (then Snapshot shows it); call it again for the change after that.
func (m *Manager) Changed() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.next
}

// sameDevice reports whether a and b are at the same place.
func sameDevice(a, b profile.DeviceEntry) bool {
	if a.Path != "" && b.Path != "" {
		if a.Path == b.Path {
			return true
		}
		ra, err1 := filepath.EvalSymlinks(a.Path)
		rb, err2 := filepath.EvalSymlinks(b.Path)
		return err1 == nil && err2 == nil && ra == rb
	}
	ua, ub := a.Attached().USB, b.Attached().USB
	return a.Path == "" && b.Path == "" && ua != nil && ub != nil && *ua == *ub
}

// Snapshot returns the current inventory and status of every device.
func (m *Manager) Snapshot() wire.Peripherals {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := wire.Peripherals{Devices: make([]wire.Peripheral, len(m.devices))}
	for i, d := range m.devices {
		s := d.st
		s.Reasons = slices.Clone(s.Reasons)
		s.Consumables = slices.Clone(s.Consumables)
		p.Devices[i] = s
	}
	return p
}

// runDevice opens d, watches it until it goes away, and reopens it with backoff, until ctx is done.
func (m *Manager) runDevice(ctx context.Context, d *managed) {
	open := m.cfg.Openers[d.prof.Driver]
	if open == nil {
		m.setStatus(d, false, Status{State: StateFault, Reasons: []string{ReasonNoDriver}}, fmt.Errorf("%w %q", ErrNoDriver, d.prof.Driver))
		return
	}
	backoff := m.cfg.MinBackoff
	for ctx.Err() == nil {
		octx, cancel := context.WithTimeout(ctx, m.cfg.OpenTimeout)
		dev, err := open(octx, d.entry, d.prof, d.log)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			d.log.Debug("devices: open failed; retrying", "err", err, "retry_in", backoff)
			m.setStatus(d, false, Status{State: StateFault, Reasons: []string{ReasonDisconnected}}, err)
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(backoff*2, m.cfg.MaxBackoff)
			continue
		}
		backoff = m.cfg.MinBackoff
		d.op.Lock()
		d.dev = dev
		d.op.Unlock()
		d.log.Info("devices: opened", "profile", d.prof.ID)
		err = m.watch(ctx, d, dev)
		d.op.Lock()
		d.dev = nil
		cerr := dev.Close()
		d.op.Unlock()
		if ctx.Err() != nil {
			return
		}
		d.log.Warn("devices: device lost; reopening", "err", err, "close_err", cerr)
		m.setStatus(d, false, Status{State: StateFault, Reasons: []string{ReasonDisconnected}}, err)
		if !sleep(ctx, backoff) {
			return
		}
	}
}

// watch polls dev until it is gone (transport.ErrClosed, or MaxNoResponse failed polls in a row)
// or ctx is done.
func (m *Manager) watch(ctx context.Context, d *managed, dev Device) error {
	every, limit := m.cfg.PollInterval, m.cfg.StatusTimeout
	if q := d.prof.Quirks; q.PollInterval > 0 {
		every = q.PollInterval
	}
	if q := d.prof.Quirks; q.ReplyTimeout > 0 {
		limit = q.ReplyTimeout
	}
	t := time.NewTicker(every)
	defer t.Stop()
	failures := 0
	for {
		sctx, cancel := context.WithTimeout(ctx, limit)
		d.op.Lock()
		s, err := dev.Status(sctx)
		d.op.Unlock()
		cancel()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, transport.ErrClosed):
			return err
		case err != nil:
			failures++
			m.setStatus(d, true, Status{State: StateFault, Reasons: []string{ReasonNoResponse}}, err)
			if failures >= m.cfg.MaxNoResponse {
				return fmt.Errorf("%d status queries failed in a row: %w", failures, err)
			}
		default:
			failures = 0
			m.setStatus(d, true, s, nil)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		case <-d.poke:
		}
	}
}

// setStatus records d's status and, when it changed, queues a report and maybe an alert.
func (m *Manager) setStatus(d *managed, connected bool, s Status, err error) {
	if s.State == "" {
		s.State = StateOK
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old := d.st
	d.st.Connected = connected
	d.st.Status = s.State
	d.st.Reasons = slices.Clone(s.Reasons)
	d.st.Consumables = slices.Clone(s.Consumables)
	d.st.Error = ""
	if err != nil {
		d.st.Error = truncate(err.Error(), 200)
	}
	if old.Status == d.st.Status && slices.Equal(old.Reasons, d.st.Reasons) && old.Connected == connected &&
		slices.Equal(old.Consumables, d.st.Consumables) {
		return
	}
	if old.Status != d.st.Status || !slices.Equal(old.Reasons, d.st.Reasons) {
		d.st.Since = time.Now().UnixMilli()
		if a, ok := alertFor(old, d.st); ok {
			m.queueAlert(d, a)
		}
		d.log.Info("devices: status changed", "status", d.st.Status, "reasons", strings.Join(d.st.Reasons, ","), "connected", connected)
	}
	m.signalLocked()
}

// queueAlert queues a unless the same alert of d went out less than AlertQuiet ago (a flapping
// cable must not flood the outbox with business records); held-back alerts are counted in the
// next one that goes out. Called with m.mu held.
func (m *Manager) queueAlert(d *managed, a wire.Alert) {
	key := a.Code + "\x00" + a.Message
	now := time.Now()
	if last, ok := d.alerted[key]; ok && now.Sub(last) < m.cfg.AlertQuiet {
		d.quiet[key]++
		return
	}
	if n := d.quiet[key]; n > 0 {
		a.Message += fmt.Sprintf(" (%d more since %s)", n, d.alerted[key].Format(time.RFC3339))
		delete(d.quiet, key)
	}
	d.alerted[key] = now
	m.alerts = append(m.alerts, a)
}

// alertFor returns the alert for a status change: a fault or degradation with a reason that was
// not there before, or a recovery from a fault.
func alertFor(old, cur wire.Peripheral) (wire.Alert, bool) {
	name := cur.ID
	if cur.Model != "" {
		name += " (" + cur.Manufacturer + " " + cur.Model + ")"
	}
	switch cur.Status {
	case StateFault, StateDegraded:
		for _, r := range cur.Reasons {
			if !slices.Contains(old.Reasons, r) || old.Status != cur.Status {
				return wire.Alert{
					Code:    "peripheral." + string(cur.Status),
					Message: fmt.Sprintf("%s %s: %s", cur.Class, name, strings.Join(cur.Reasons, ", ")),
				}, true
			}
		}
	case StateOK:
		if old.Status == StateFault || old.Status == StateDegraded {
			return wire.Alert{Code: "peripheral.recovered", Message: fmt.Sprintf("%s %s: ok", cur.Class, name)}, true
		}
	}
	return wire.Alert{}, false
}

// reportLoop sends a peripherals record whenever the snapshot changed (at most every 100 ms) and
// at least every ReportInterval, and an alert record for each queued alert. What the Reporter
// refuses is kept and tried again after a second (alerts in order; the latest snapshot).
func (m *Manager) reportLoop(ctx context.Context) {
	t := time.NewTicker(m.cfg.ReportInterval)
	defer t.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	var last []byte
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			last = nil
		case <-retry.C:
		case <-m.changed:
			if !sleep(ctx, 100*time.Millisecond) { // let simultaneous changes gather
				return
			}
		}
		if !m.report(ctx, &last) {
			retry.Reset(time.Second)
		}
	}
}

// report sends the queued alerts and, if it changed since last, the snapshot. It reports whether
// everything went out.
func (m *Manager) report(ctx context.Context, last *[]byte) bool {
	m.mu.Lock()
	alerts := m.alerts
	m.alerts = nil
	m.mu.Unlock()
	for i, a := range alerts {
		if err := m.cfg.Reporter.Report(ctx, wire.KindAlert, wire.Business, a); err != nil {
			m.log.Error("devices: report alert; will retry", "err", err, "code", a.Code)
			m.mu.Lock()
			m.alerts = append(alerts[i:len(alerts):len(alerts)], m.alerts...)
			m.mu.Unlock()
			return false
		}
	}
	snap := m.Snapshot()
	b, _ := json.Marshal(snap)
	if string(b) == string(*last) {
		return true
	}
	if err := m.cfg.Reporter.Report(ctx, wire.KindPeripherals, wire.Telemetry, snap); err != nil {
		m.log.Error("devices: report peripherals; will retry", "err", err)
		return false
	}
	*last = b
	return true
}

func (m *Manager) device(id string) (*managed, error) {
	m.mu.Lock()
	d := m.byID[id]
	m.mu.Unlock()
	if d == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownDevice, id)
	}
	return d, nil
}

// PrintTestPage prints page on printer id and returns the job's outcome. A printer that refuses
// the job because of its state gives an outcome with State refused and the reasons, not an error;
// errors are for devices that are unknown, not printers, not connected, or fail mid-job.
func (m *Manager) PrintTestPage(ctx context.Context, id string, page TestPage) (JobOutcome, error) {
	return printJob(m, id, "test page", func(p TestPagePrinter) (JobOutcome, error) { return p.PrintTestPage(ctx, page) })
}

// PrintDocument prints doc on A4 printer id, following the job to its end and calling progress
// (when not nil) with each change of it; outcomes and errors as PrintTestPage. Nothing of the
// document is logged.
func (m *Manager) PrintDocument(ctx context.Context, id string, doc Document, progress func(JobProgress)) (JobOutcome, error) {
	return printJob(m, id, "document", func(p DocumentPrinter) (JobOutcome, error) { return p.PrintDocument(ctx, doc, progress) })
}

// PrintReceipt prints r on receipt printer id; outcomes and errors as PrintTestPage. Nothing of
// the receipt is logged.
func (m *Manager) PrintReceipt(ctx context.Context, id string, r Receipt) (JobOutcome, error) {
	return printJob(m, id, "receipt", func(p ReceiptPrinter) (JobOutcome, error) { return p.PrintReceipt(ctx, r) })
}

// printJob runs job on printer id with the capability P, holding the device, and fills in the
// outcome's device and time.
func printJob[P any](m *Manager, id, what string, job func(P) (JobOutcome, error)) (JobOutcome, error) {
	var out JobOutcome
	err := use(m, id, "print a "+what, func(d *managed, p P) error {
		start := time.Now()
		var err error
		out, err = job(p)
		out.Device, out.Millis = id, time.Since(start).Milliseconds()
		d.log.Info("devices: "+what+" printed", "state", out.State, "job", out.JobID, "err", err)
		return err
	})
	if out.Device == "" {
		return JobOutcome{}, err
	}
	return out, err
}

// use runs f with device id's driver as its capability C, holding the device (status polls
// wait), then has the device's status polled at once (a fault a job left shows at once). cannot
// says what a device without C cannot do.
func use[C any](m *Manager, id, cannot string, f func(*managed, C) error) error {
	d, err := m.device(id)
	if err != nil {
		return err
	}
	d.op.Lock()
	defer d.op.Unlock()
	if d.dev == nil {
		return fmt.Errorf("%w: %s", ErrNotConnected, id)
	}
	c, ok := d.dev.(C)
	if !ok {
		return fmt.Errorf("%w: %s cannot %s", ErrUnsupported, id, cannot)
	}
	defer func() {
		select {
		case d.poke <- struct{}{}:
		default:
		}
	}()
	return f(d, c)
}

// ReadCard reads an ID card on reader id and passes it to use; the identity is wiped when use
// returns, whatever it returns. Nothing of the card is logged or reported: only that a read
// happened and whether it failed.
func (m *Manager) ReadCard(ctx context.Context, id string, use func(Identity) error) error {
	d, err := m.device(id)
	if err != nil {
		return err
	}
	d.op.Lock()
	if d.dev == nil {
		d.op.Unlock()
		return fmt.Errorf("%w: %s", ErrNotConnected, id)
	}
	cr, ok := d.dev.(CardReader)
	if !ok {
		d.op.Unlock()
		return fmt.Errorf("%w: %s cannot read ID cards", ErrUnsupported, id)
	}
	ident, err := cr.ReadCard(ctx)
	d.op.Unlock()
	if err == nil && ident == nil {
		err = errors.New("driver returned no card data")
	}
	if err != nil {
		level := slog.LevelInfo
		if errors.Is(err, idcard.StatusNoCard) {
			level = slog.LevelDebug // a caller waiting for a tap asks again and again
		}
		d.log.Log(ctx, level, "devices: card read failed", "err", err)
		return fmt.Errorf("devices: read card on %s: %w", id, err)
	}
	defer ident.Wipe()
	d.log.Info("devices: card read")
	return use(ident)
}

// NextScan waits until a code is scanned on scanner id (or ctx ends) and returns it. Only codes
// scanned while a caller waits are returned; nothing of them is logged or reported.
func (m *Manager) NextScan(ctx context.Context, id string) (string, error) {
	d, err := m.device(id)
	if err != nil {
		return "", err
	}
	d.op.Lock()
	dev := d.dev
	d.op.Unlock()
	if dev == nil {
		return "", fmt.Errorf("%w: %s", ErrNotConnected, id)
	}
	cr, ok := dev.(CodeReader)
	if !ok {
		return "", fmt.Errorf("%w: %s cannot scan codes", ErrUnsupported, id)
	}
	return cr.NextCode(ctx)
}

// ScanDocument scans on document scanner id. The pages are the caller's; nothing of them is
// logged or reported. After the scan the scanner's status is refreshed (a jam shows at once).
func (m *Manager) ScanDocument(ctx context.Context, id string, opt docscan.Options) ([]docscan.Page, error) {
	var pages []docscan.Page
	err := use(m, id, "scan documents", func(d *managed, s DocumentScanner) error {
		var err error
		pages, err = s.ScanDocument(ctx, opt)
		d.log.Info("devices: document scan", "pages", len(pages), "err", err)
		return err
	})
	return pages, err
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
