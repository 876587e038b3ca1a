// Package daemon runs a kiosk agent: the durable outbox and inbox, the link to the hub, host
// telemetry, desired-state application and the commands the hub sends.
package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/kioskfleet/kioskfleet/pkg/atomicfile"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kioskfleet/kioskfleet/agent/bundles"
	"github.com/kioskfleet/kioskfleet/agent/devices"
	"github.com/kioskfleet/kioskfleet/agent/enroll"
	"github.com/kioskfleet/kioskfleet/agent/hoststat"
	"github.com/kioskfleet/kioskfleet/agent/inbox"
	"github.com/kioskfleet/kioskfleet/agent/link"
	"github.com/kioskfleet/kioskfleet/agent/localapi"
	"github.com/kioskfleet/kioskfleet/agent/logring"
	"github.com/kioskfleet/kioskfleet/agent/outbox"
	"github.com/kioskfleet/kioskfleet/agent/shell"
	"github.com/kioskfleet/kioskfleet/drivers/transport"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// Config configures an agent.
type Config struct {
	DataDir        string
	Version        string
	Log            *slog.Logger
	OutboxMaxBytes int64
	// MQTTOverride replaces the broker addresses from enrollment (e.g. to go through a proxy).
	MQTTOverride []string
	// Link tuning; zero values are link defaults.
	BatchRecords int
	AckTimeout   time.Duration
	MinBackoff   time.Duration
	MaxBackoff   time.Duration
	// SyntheticRate, when > 0, appends that many "synthetic" business records per second: a load
	// generator for tests, soak runs and benchmarks.
	SyntheticRate float64
	// DevicesFile is the peripheral configuration (e.g. written by devsim kiosk); empty: none.
	DevicesFile string
	// ProfilesDir holds the firmware profiles (firmware-profiles/).
	ProfilesDir string
	// Rescan is how often the device manager looks for serial and USB devices attached after
	// start that DevicesFile does not name (hot-plug); 0: never.
	Rescan time.Duration
	// Commands adds command handlers to those of api.CommandSpecs.
	Commands map[string]Handler
	// LocalAPI is the loopback host:port of the local device API (agent/localapi) for the kiosk
	// shell and kiosk apps; "" or "0": off. It needs DevicesFile.
	LocalAPI string
	// AppsAddr is the loopback host:port the installed kiosk apps are served on, each at
	// http://APP.localhost:PORT (updates.go); "" or "0": off.
	AppsAddr string
	// MetricsAddr is the loopback host:port the agent's Prometheus metrics are served on, at
	// MetricsPath (metrics.go); "" or "0": off.
	MetricsAddr string
	// TUFRoot is the update repository's trusted root file (its 1.root.json); "": fetched from
	// the hub at first use and trusted from then on.
	TUFRoot string
	// Sessions tells whether a citizen uses the kiosk; nil: the kiosk shell's sessions (with the
	// local API on), else never.
	Sessions bundles.SessionGuard
	// AppHealth is the shell's check of a newly activated app (it loads it); nil: none.
	AppHealth bundles.HealthCheck
}

// Handler executes a command. Its output must be JSON (or nil).
type Handler func(ctx context.Context, args json.RawMessage) (json.RawMessage, error)

// Agent is a running kiosk agent.
type Agent struct {
	cfg      Config
	id       enroll.Identity
	ob       *outbox.SQLite
	in       *inbox.Inbox
	link     *link.Link
	log      *slog.Logger
	sampler  hoststat.Sampler
	started  time.Time
	handlers map[string]Handler
	devs     *devices.Manager // nil without DevicesFile
	usb      *transport.GoUSB // libusb, when a device or discovery needs it
	local    *http.Server     // the local device API's; nil when off
	localLn  net.Listener
	localAPI *localapi.Server
	shell    *shell.Shell     // the kiosk shell, served with the local API; nil when off
	bundles  *bundles.Manager // nil without a hub URL
	apps     *http.Server     // serves the installed apps; nil when off
	appsLn   net.Listener
	prom     *http.Server // serves the metrics; nil when off
	promLn   net.Listener
	ring     *logring.Ring // the recent log lines, for the log tail
	tail     *logTail
	report   chan struct{}      // the installer changed: report the state
	stop     context.CancelFunc // ends Run (the restart command, or to switch to a staged agent)
	restart  atomic.Bool        // the restart command ran: Run returns, and the process starts again

	mu       sync.Mutex
	settings Settings
	applied  appliedState
	work     chan wire.Command
	kick     chan struct{} // settings changed: re-arm the heartbeat timer
}

// Open loads the identity and opens the outbox and inbox. Close it after Run returns.
func Open(ctx context.Context, cfg Config) (*Agent, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	id, err := enroll.Load(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	id.SetBrokers(cfg.MQTTOverride)
	// Every record the agent logs also goes to the ring the log tail streams from.
	ring := logring.New(logRingLines, slog.LevelInfo)
	cfg.Log = slog.New(ring.Handler(cfg.Log.Handler()))
	a := &Agent{ring: ring, cfg: cfg, id: id, log: cfg.Log.With("device", id.DeviceID), started: time.Now(),
		sampler: hoststat.Sampler{Disk: cfg.DataDir}, settings: DefaultSettings(),
		work: make(chan wire.Command, 1024), kick: make(chan struct{}, 1), report: make(chan struct{}, 1)}
	a.ob, err = outbox.Open(ctx, filepath.Join(cfg.DataDir, "outbox.db"), outbox.Options{MaxBytes: cfg.OutboxMaxBytes, Logger: a.log})
	if err != nil {
		return nil, err
	}
	a.in, err = inbox.Open(ctx, a.ob)
	if err != nil {
		a.ob.Close()
		return nil, err
	}
	a.tail = newLogTail(ring, a.log)
	if err := a.loadState(); err != nil {
		a.ob.Close()
		return nil, err
	}
	a.handlers = a.commandHandlers()
	if err := a.openDevices(); err != nil {
		a.ob.Close()
		return nil, err
	}
	if err := a.openUpdates(); err != nil {
		a.Close()
		return nil, err
	}
	if err := a.openLocalAPI(); err != nil {
		a.Close()
		return nil, err
	}
	if err := a.openMetrics(); err != nil {
		a.Close()
		return nil, err
	}
	for k, h := range cfg.Commands {
		a.handlers[k] = h
	}
	a.link, err = link.New(link.Config{
		DeviceID: id.DeviceID, Brokers: id.MQTTAddrs, TLS: id.TLSConfig(), Outbox: a.ob,
		AgentVersion: cfg.Version, StateVersion: a.stateVersion,
		OnCommand: a.onCommand, OnDesired: a.onDesired,
		BatchRecords: cfg.BatchRecords, AckTimeout: cfg.AckTimeout,
		MinBackoff: cfg.MinBackoff, MaxBackoff: cfg.MaxBackoff, Log: a.log.With("component", "link"),
	})
	if err != nil {
		a.Close()
		return nil, err
	}
	a.tail.pub = a.link
	return a, nil
}

// DeviceID returns the kiosk's device ID.
func (a *Agent) DeviceID() string { return a.id.DeviceID }

// Outbox returns the agent's outbox (for producers of business records).
func (a *Agent) Outbox() outbox.Outbox { return a.ob }

// Link returns the agent's link to the hub.
func (a *Agent) Link() *link.Link { return a.link }

// Close closes the outbox, libusb and the local API's listener if Run did not.
func (a *Agent) Close() error {
	if a.usb != nil {
		a.usb.Close()
	}
	if a.localLn != nil {
		a.localLn.Close()
	}
	if a.appsLn != nil {
		a.appsLn.Close()
	}
	if a.promLn != nil {
		a.promLn.Close()
	}
	return a.ob.Close()
}

// Run runs the agent until ctx is done, or the restart command ran (RestartRequested), or it
// stops to switch to a staged agent version (the launcher starts that one).
func (a *Agent) Run(ctx context.Context) error {
	ctx, a.stop = context.WithCancel(ctx)
	defer a.stop()
	// Commands found mid-execution after a crash are reported failed, never re-run.
	if n, err := a.in.Recover(ctx); err != nil {
		return fmt.Errorf("agent: inbox recovery: %w", err)
	} else if n > 0 {
		a.log.Warn("commands interrupted by a restart reported failed", "count", n)
	}
	// Commands accepted before a crash but never started run now (expired ones are reported).
	pending, err := a.in.Pending(ctx, time.Now())
	if err != nil {
		return fmt.Errorf("agent: inbox: %w", err)
	}
	for _, c := range pending {
		select {
		case a.work <- c:
		default:
			a.log.Warn("command queue full; command left for the next start", "command", c.ID)
		}
	}
	// Report the state we run; the hub keeps the newest version it has seen.
	a.reportState(ctx, "")
	var wg sync.WaitGroup
	if a.devs != nil {
		wg.Add(1)
		go func() { defer wg.Done(); _ = a.devs.Run(ctx) }()
	}
	if a.local != nil {
		wg.Add(1)
		go func() { defer wg.Done(); a.serveLocalAPI(ctx) }()
	}
	if a.prom != nil {
		wg.Go(func() { a.serveMetrics(ctx) })
	}
	wg.Add(6)
	go func() { defer wg.Done(); a.runUpdates(ctx) }()
	go func() { defer wg.Done(); a.reportUpdates(ctx) }()
	go func() { defer wg.Done(); a.synthetic(ctx) }()
	go func() { defer wg.Done(); _ = a.link.Run(ctx) }()
	go func() { defer wg.Done(); a.heartbeats(ctx) }()
	go func() { defer wg.Done(); a.runCommands(ctx) }()
	wg.Go(func() { a.tail.run(ctx) })
	wg.Wait()
	return nil
}

// synthetic appends SyntheticRate records per second in small batches.
func (a *Agent) synthetic(ctx context.Context) {
	if a.cfg.SyntheticRate <= 0 {
		return
	}
	const tick = 20 * time.Millisecond
	t := time.NewTicker(tick)
	defer t.Stop()
	start, made := time.Now(), 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		due := int(a.cfg.SyntheticRate*time.Since(start).Seconds()) - made
		if due <= 0 {
			continue
		}
		due = min(due, 1000)
		batch := make([]outbox.Entry, due)
		for i := range batch {
			batch[i] = outbox.Entry{Kind: "synthetic", Class: wire.Business, Body: []byte(`{"synthetic":true}`)}
		}
		if _, err := a.ob.AppendBatch(ctx, batch); err != nil {
			if ctx.Err() == nil {
				a.log.Warn("synthetic records refused", "err", err)
			}
			continue
		}
		made += due
	}
}

func (a *Agent) heartbeats(ctx context.Context) {
	for {
		a.heartbeat(ctx)
		a.mu.Lock()
		every := a.settings.HeartbeatInterval.D
		a.mu.Unlock()
		t := time.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-a.kick:
			t.Stop()
		case <-t.C:
		}
	}
}

func (a *Agent) heartbeat(ctx context.Context) {
	s, err := a.sampler.Read()
	if err != nil {
		a.log.Debug("host figures incomplete", "err", err)
	}
	hb := wire.Heartbeat{UptimeS: s.UptimeS, CPUPercent: s.CPUPercent, MemUsedBytes: s.MemUsedBytes, MemTotal: s.MemTotal,
		DiskFree: s.DiskFree, DiskTotal: s.DiskTotal, AgentVersion: a.cfg.Version, OutboxDepth: a.ob.Stats().Depth, RSSBytes: s.RSSBytes}
	if _, err := a.ob.Append(ctx, wire.KindHeartbeat, wire.Telemetry, wire.Encode(hb)); err != nil && ctx.Err() == nil {
		a.log.Warn("heartbeat not recorded", "err", err)
	}
}

// onCommand persists a command (and its accepted or expired result) before anything acts on it.
func (a *Agent) onCommand(ctx context.Context, c wire.Command) {
	d, err := a.in.Receive(ctx, c, time.Now())
	if err != nil {
		a.log.Error("command not persisted; the hub will resend it", "command", c.ID, "err", err)
		return
	}
	if d != inbox.Run {
		a.log.Info("command not run", "command", c.ID, "name", c.Name, "decision", d.String())
		return
	}
	select {
	case a.work <- c:
	case <-ctx.Done():
	}
}

func (a *Agent) runCommands(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-a.work:
			a.execute(ctx, c)
		}
	}
}

func (a *Agent) execute(ctx context.Context, c wire.Command) {
	// Durably "running" before it runs: a crash from here on reports it interrupted (at most once).
	if err := a.in.Start(ctx, c.ID); err != nil {
		a.log.Warn("command not started", "command", c.ID, "err", err)
		return
	}
	h, ok := a.handlers[c.Name]
	var out json.RawMessage
	var err error
	if !ok {
		err = fmt.Errorf("unknown command %q", c.Name)
	} else {
		a.log.Info("running command", "command", c.ID, "name", c.Name)
		out, err = h(context.WithValue(ctx, cmdIDKey{}, c.ID), c.Args)
	}
	if ctx.Err() != nil {
		return // shutting down mid-command: reported interrupted at the next start
	}
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if ferr := a.in.Finish(ctx, c.ID, err == nil, out, msg); ferr != nil {
		a.log.Error("command result not recorded", "command", c.ID, "err", ferr)
	}
	if a.restart.Load() { // its result is durable: the agent stops, to start again
		a.log.Info("restarting at the hub's command", "command", c.ID)
		a.stop()
	}
}

// commandHandlers returns a handler for each command of api.CommandSpecs.
func (a *Agent) commandHandlers() map[string]Handler {
	return map[string]Handler{
		api.CmdPing:           a.cmdPing,
		api.CmdDiagnostics:    a.cmdDiagnostics,
		api.CmdJournal:        a.cmdJournal,
		api.CmdPeripherals:    a.cmdPeripherals,
		api.CmdPrintTestPage:  a.cmdPrintTestPage,
		api.CmdIDCardSelfTest: a.cmdIDCardSelfTest,
		api.CmdRestart:        a.cmdRestart,
		api.CmdLogTail:        a.cmdLogTail,
	}
}

func (a *Agent) cmdPing(ctx context.Context, args json.RawMessage) (json.RawMessage, error) {
	return json.Marshal(map[string]any{"pong": true, "time": time.Now().UTC(), "args": args})
}

// diagnostics is the answer of the diagnostics command. Every figure says its unit in its name
// (or its value, for the settings' durations).
type diagnostics struct {
	AgentVersion       string            `json:"agentVersion"`
	AgentUptimeSeconds int64             `json:"agentUptimeSeconds"`
	StateVersion       int64             `json:"stateVersion"` // desired-state version applied
	Connected          bool              `json:"connected"`    // to the hub now
	MQTTSessions       uint64            `json:"mqttSessions"` // sessions established since start
	Outbox             outboxDiagnostics `json:"outbox"`
	Host               hoststat.Sample   `json:"host"`
	Settings           Settings          `json:"settings"`
	CitizenSession     bool              `json:"citizenSession"` // a citizen is using the kiosk now
}

type outboxDiagnostics struct {
	DepthRecords     int64   `json:"depthRecords"` // waiting for the hub's ack
	SizeBytes        int64   `json:"sizeBytes"`
	MaxBytes         int64   `json:"maxBytes"`
	EvictedRecords   uint64  `json:"evictedRecords"` // telemetry dropped when full, this epoch
	RefusedRecords   uint64  `json:"refusedRecords"` // appends refused when full, this epoch
	Full             bool    `json:"full"`
	OldestAgeSeconds float64 `json:"oldestAgeSeconds"` // of the oldest waiting record; 0: none
}

func (a *Agent) cmdDiagnostics(ctx context.Context, _ json.RawMessage) (json.RawMessage, error) {
	s, _ := a.sampler.Read()
	s.CPUPercent = math.Round(s.CPUPercent*10) / 10
	a.mu.Lock()
	settings, applied := a.settings, a.applied
	a.mu.Unlock()
	ob := a.ob.Stats()
	return json.Marshal(diagnostics{
		AgentVersion: a.cfg.Version, AgentUptimeSeconds: int64(time.Since(a.started).Seconds()),
		StateVersion: applied.Version, Connected: a.link.Connected(), MQTTSessions: a.link.Sessions(),
		Outbox: outboxDiagnostics{DepthRecords: ob.Depth, SizeBytes: ob.Bytes, MaxBytes: ob.MaxBytes,
			EvictedRecords: ob.Evicted, RefusedRecords: ob.Refused, Full: ob.Full,
			OldestAgeSeconds: math.Round(ob.OldestAge.Seconds()*1000) / 1000},
		Host: s, Settings: settings, CitizenSession: a.CitizenSession(),
	})
}

// cmdJournal writes a business journal entry (used by field ops to mark visits, and by tests).
func (a *Agent) cmdJournal(ctx context.Context, args json.RawMessage) (json.RawMessage, error) {
	if !json.Valid(args) || len(args) == 0 {
		return nil, errors.New("journal: args must be a JSON object")
	}
	seq, err := a.ob.Append(ctx, api.CmdJournal, wire.Business, args)
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]uint64{"seq": seq})
}

// statePath is where the applied desired state is kept.
func (a *Agent) statePath() string { return filepath.Join(a.cfg.DataDir, "state.json") }

type appliedState struct {
	Version int64           `json:"version"`
	Doc     json.RawMessage `json:"doc"`
}

func (a *Agent) loadState() error {
	b, err := os.ReadFile(a.statePath())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	var st appliedState
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("agent: %s: %w", a.statePath(), err)
	}
	s, err := ParseSettings(st.Doc)
	if err != nil {
		return fmt.Errorf("agent: %s: %w", a.statePath(), err)
	}
	a.applied, a.settings = st, s
	return nil
}

func (a *Agent) stateVersion() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.applied.Version
}

// onDesired validates and applies a desired state, persists it, and reports what now runs.
func (a *Agent) onDesired(ctx context.Context, d wire.Desired) {
	a.mu.Lock()
	cur := a.applied.Version
	a.mu.Unlock()
	if d.Version <= cur {
		return
	}
	s, err := ParseSettings(d.Doc)
	if err != nil {
		a.log.Warn("desired state refused", "version", d.Version, "err", err)
		a.reportRefused(ctx, d.Version, err)
		return
	}
	st := appliedState{Version: d.Version, Doc: d.Doc}
	if err := atomicfile.WriteFile(a.statePath(), wire.Encode(st), 0o600); err != nil {
		a.log.Error("desired state not saved", "err", err)
		return
	}
	a.mu.Lock()
	a.applied, a.settings = st, s
	a.mu.Unlock()
	select {
	case a.kick <- struct{}{}:
	default:
	}
	a.log.Info("desired state applied", "version", d.Version)
	a.wantUpdates()
	a.reportState(ctx, "")
}

func (a *Agent) reportState(ctx context.Context, errMsg string) {
	a.mu.Lock()
	st := a.applied
	a.mu.Unlock()
	doc := st.Doc
	if len(doc) == 0 {
		doc = json.RawMessage(`{}`)
	}
	body := wire.Encode(wire.Reported{Version: st.Version, Doc: a.withUpdates(doc), Error: errMsg})
	if _, err := a.ob.Append(ctx, wire.KindReported, wire.Business, body); err != nil && ctx.Err() == nil {
		a.log.Error("reported state not recorded", "err", err)
	}
}

// reportRefused reports that version could not be applied: the hub shows the drift and the reason.
func (a *Agent) reportRefused(ctx context.Context, version int64, cause error) {
	a.mu.Lock()
	st := a.applied
	a.mu.Unlock()
	doc := st.Doc
	if len(doc) == 0 {
		doc = json.RawMessage(`{}`)
	}
	body := wire.Encode(wire.Reported{Version: st.Version, Doc: doc, Error: fmt.Sprintf("version %d refused: %v", version, cause)})
	if _, err := a.ob.Append(ctx, wire.KindReported, wire.Business, body); err != nil && ctx.Err() == nil {
		a.log.Error("reported state not recorded", "err", err)
	}
}
