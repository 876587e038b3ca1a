// Package fleetsim runs many simulated kiosks in one process against a hub, each with the real
// agent sync code (agent/link) over an in-memory outbox (agent/outbox.Memory, same semantics as the
// SQLite one), and measures what the fleet sees: throughput of records acked by the hub, latency
// from enqueue to ack, connect and drain times. Kiosks can lose their connection at random
// (churn) and go offline for a while, buffering in their outbox, as kiosks on real networks do.
// Beside the fleet, RunViewers follows the hub's change notices as live console viewers do and
// measures how late they arrive (viewers.go), and RunMQTT offers plain MQTT load to any broker.
package fleetsim

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kioskfleet/kioskfleet/agent/enroll"
	"github.com/kioskfleet/kioskfleet/agent/link"
	"github.com/kioskfleet/kioskfleet/agent/outbox"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// Config describes a simulated fleet and its load.
type Config struct {
	HubURL    string         // hub HTTP API, for enrollment
	HubCA     *x509.CertPool // trusted for the hub's HTTPS (nil: the system's roots); kiosks pin it through their tokens
	Token     string         // admin token, to create the site and enrollment tokens
	MQTTAddrs []string       // override the advertised MQTT addresses (a fault proxy; several hub replicas)
	StateDir  string         // identities are kept here and reused across runs against the same hub

	Agents    int
	Rate      float64       // records per second per agent
	Size      int           // record body bytes
	Heartbeat time.Duration // one telemetry record per agent this often (0: none)
	Duration  time.Duration // how long load is offered after all agents connected
	Prefill   int           // records buffered per agent before it connects (drain scenario)

	// Batch, inflight and ack timeout of each agent's link (0: link defaults).
	BatchRecords int
	MaxInflight  int
	AckTimeout   time.Duration

	ConnectConcurrency int // enrollments and first connects at once (default 64)

	// Churn cuts this many connections per second, fleet-wide, during the load window: a random
	// kiosk's TCP connection is reset and its agent reconnects (with its backoff) and resyncs.
	Churn float64
	// OfflineFraction of the kiosks lose the network for OfflineFor each, starting at a random
	// moment in the first half of the load window: their connection is cut, reconnecting fails,
	// records keep going to the outbox, and they drain once the network is back.
	OfflineFraction float64
	OfflineFor      time.Duration

	// TakeBundles makes each kiosk take the apps its desired state names (a rollout), as the
	// agent does: the update repository verified with the agent's TUF client, each target
	// downloaded and checked (not kept); then reported active, or failed for a FailRate share
	// of the kiosks (0..1), as if its health check had failed (bundles.go).
	TakeBundles bool
	FailRate    float64
	FailVersion string // only this version fails ("": any)

	// Connected, when set, is called once every agent is connected (or the connect deadline
	// passed), before the load window: a test starts what should run alongside the load.
	Connected func()
	// Storm, when set, is called once every agent is connected; the simulation then waits for the
	// hub to go away (most sessions lost) and measures until every agent has reconnected and had
	// its hello answered with an ack (resynced).
	Storm func()
	// During, when set, runs once every agent is connected (and after Storm), alongside the
	// load, which lasts until it returns (Duration is then ignored): a test's script of faults
	// and checks against the running fleet.
	During func(ctx context.Context, f *Fleet)
	// OnCommand, when set, is told of each command a kiosk receives (on that kiosk's dispatch
	// goroutine: it must return quickly). Simulated kiosks run no commands.
	OnCommand func(deviceID string, c wire.Command)
	// FanOut, when set, is the URL of a hub (replica) to write commands through: halfway through
	// the load window a command is written for every kiosk, 16 at a time, and the time from each
	// write (the API's answer) to its arrival at the kiosk is measured. Through a replica that
	// holds none of the kiosks, it measures the path from one replica to the others.
	FanOut string
	Log    *slog.Logger
}

// Fleet is a running simulated fleet, as During sees it.
type Fleet struct {
	ids  []enroll.Identity
	sims []*sim
}

// Len returns how many kiosks the fleet has.
func (f *Fleet) Len() int { return len(f.sims) }

// DeviceID returns kiosk i's device ID.
func (f *Fleet) DeviceID(i int) string { return f.ids[i].DeviceID }

// Link returns kiosk i's link to the hub: whether it is connected, to which address.
func (f *Fleet) Link(i int) *link.Link { return f.sims[i].link }

// Epoch returns the epoch of kiosk i's outbox.
func (f *Fleet) Epoch(i int) string { return f.sims[i].ob.Epoch() }

// Appended returns how many records kiosk i appended so far: it numbered them 1..n.
func (f *Fleet) Appended(i int) uint64 { return f.sims[i].ob.NextSeq() - 1 }

// Unplug keeps kiosk i from connecting again, its current connection left alone: when the hub
// replica it is connected to dies, it stays away (its presence is then up to the replica's
// lease). Plug lets it connect again.
func (f *Fleet) Unplug(i int) { f.sims[i].net.setRefuse(true) }

// Plug undoes Unplug.
func (f *Fleet) Plug(i int) { f.sims[i].net.setRefuse(false) }

// Result is what a run measured.
type Result struct {
	Agents         int     `json:"agents"`
	Connected      int     `json:"connected"`
	ConnectSeconds float64 `json:"connectSeconds"` // until every agent had a session
	Appended       uint64  `json:"appended"`
	Acked          uint64  `json:"acked"`
	LoadSeconds    float64 `json:"loadSeconds"`
	AckedPerSecond float64 `json:"ackedPerSecond"` // during the load window
	DrainSeconds   float64 `json:"drainSeconds"`   // after load stopped, until everything was acked
	LatencyP50Ms   float64 `json:"latencyP50Ms"`
	LatencyP99Ms   float64 `json:"latencyP99Ms"`
	LatencyMaxMs   float64 `json:"latencyMaxMs"`
	HeartbeatP99Ms float64 `json:"heartbeatP99Ms"`
	Sessions       uint64  `json:"sessions"`               // sessions established (reconnects included)
	Unacked        uint64  `json:"unacked"`                // appended but never acked by the end (should be 0)
	StormSeconds   float64 `json:"stormSeconds,omitempty"` // first session lost -> every agent resynced
	StormResynced  int     `json:"stormResynced,omitempty"`
	// Sessions one agent established in the storm (until every agent resynced): the most, and
	// how many agents needed more than two.
	StormMaxSessions uint64 `json:"stormMaxSessions,omitempty"`
	StormOverTwo     int    `json:"stormAgentsOverTwoSessions,omitempty"`
	// Sessions (or connect attempts) ended by "tls: bad record MAC" (bytes the agent could not
	// authenticate), and sessions the agent ended as deaf (link.ErrDeaf), in the whole run.
	MACErrors      uint64  `json:"macErrors"`
	DeafSessions   uint64  `json:"deafSessions"`
	Cuts           uint64  `json:"cuts"`                     // connections cut by churn
	OfflineKiosks  int     `json:"offlineKiosks"`            // kiosks that went offline for OfflineFor
	MaxBuffered    uint64  `json:"maxBuffered"`              // most records one kiosk held unacked at once
	FanOutCommands int     `json:"fanOutCommands,omitempty"` // commands written by FanOut
	FanOutArrived  int     `json:"fanOutArrived,omitempty"`  // of them, arrived within a minute
	FanOutP50Ms    float64 `json:"fanOutP50Ms"`
	FanOutP99Ms    float64 `json:"fanOutP99Ms"`
	FanOutMaxMs    float64 `json:"fanOutMaxMs"`
	// With TakeBundles: apps taken (active), failed as asked, refused, and target bytes fetched.
	BundlesActive  int64 `json:"bundlesActive,omitempty"`
	BundlesFailed  int64 `json:"bundlesFailed,omitempty"`
	BundlesRefused int64 `json:"bundlesRefused,omitempty"`
	BundleBytes    int64 `json:"bundleBytes,omitempty"`
}

// Validate reports every problem with cfg at once.
func (cfg *Config) Validate() error {
	var errs []error
	if cfg.Agents < 1 {
		errs = append(errs, fmt.Errorf("agents: %d: want at least 1", cfg.Agents))
	}
	if cfg.Rate < 0 {
		errs = append(errs, fmt.Errorf("rate: %v: want >= 0", cfg.Rate))
	}
	if cfg.Size < 0 || cfg.Size > wire.MaxRecordBytes {
		errs = append(errs, fmt.Errorf("size: %d: want 0..%d bytes", cfg.Size, wire.MaxRecordBytes))
	}
	if cfg.Churn < 0 {
		errs = append(errs, fmt.Errorf("churn: %v: want >= 0 cuts per second", cfg.Churn))
	}
	if cfg.OfflineFraction < 0 || cfg.OfflineFraction > 1 {
		errs = append(errs, fmt.Errorf("offline fraction: %v: want 0..1", cfg.OfflineFraction))
	}
	if cfg.OfflineFraction > 0 && cfg.OfflineFor <= 0 {
		errs = append(errs, errors.New("offline for: required with an offline fraction"))
	}
	if cfg.OfflineFraction > 0 && cfg.Duration <= 0 {
		errs = append(errs, errors.New("offline fraction: needs a load window (duration > 0)"))
	}
	if cfg.FanOut != "" && cfg.Duration <= 0 {
		errs = append(errs, errors.New("fan-out: needs a load window (duration > 0)"))
	}
	if cfg.FailRate < 0 || cfg.FailRate > 1 {
		errs = append(errs, fmt.Errorf("fail rate: %v: want 0..1", cfg.FailRate))
	}
	return errors.Join(errs...)
}

// Identities enrolls (or loads from StateDir) n kiosk identities.
func Identities(ctx context.Context, cfg Config, n int) ([]enroll.Identity, error) {
	c := &api.Client{BaseURL: cfg.HubURL, Token: cfg.Token, HTTP: &http.Client{Transport: api.Transport(cfg.HubCA)}}
	site := "fleetsim"
	if _, err := c.CreateSite(ctx, fleet.Site{ID: site, Name: "Fleet simulator", Region: "110101"}); err != nil {
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Status != 409 {
			return nil, fmt.Errorf("fleetsim: create site: %w", err)
		}
	}
	ids := make([]enroll.Identity, n)
	errs := make([]error, n)
	sem := make(chan struct{}, max(1, cfg.ConnectConcurrency))
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			dir := filepath.Join(cfg.StateDir, fmt.Sprintf("kiosk-%05d", i))
			if id, err := enroll.Load(dir); err == nil {
				ids[i] = id
				return
			}
			_ = os.RemoveAll(dir)
			tok, err := c.CreateToken(ctx, api.CreateToken{SiteID: site})
			if err != nil {
				errs[i] = err
				return
			}
			ids[i], errs[i] = enroll.Enroll(ctx, []string{cfg.HubURL}, tok.Secret, "fleetsim", dir, nil)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("fleetsim: enroll: %w", err)
	}
	return ids, nil
}

// sim is one simulated kiosk.
type sim struct {
	ob    *outbox.Memory
	link  *link.Link
	net   netctl
	acks  atomic.Uint64 // acks applied (any)
	mac   atomic.Uint64 // sessions ended by a bad record MAC
	deaf  atomic.Uint64 // sessions ended deaf
	taker *taker        // with TakeBundles

	mu          sync.Mutex
	base        uint64      // seq of sent[0]
	sentAt      []time.Time // append time per seq from base
	kinds       []bool      // true: heartbeat
	acked       uint64
	maxBuffered uint64 // most records appended and not yet acked at once
}

// netctl is a kiosk's network: it dials the hub, and can cut the connection or refuse to dial.
type netctl struct {
	from   net.Addr // local address to dial from, if any
	mu     sync.Mutex
	conn   *cutConn // the current connection, if any
	down   bool     // offline: dials fail
	refuse bool     // unplugged: dials fail, the current connection lives on
}

// source is the local address kiosk i dials a hub at addr from: on IPv4 loopback, an address of
// its own in 127.0.0.0/8 (all local on Linux), as kiosks in the field each have theirs, so that
// a hub's per-address limits see a fleet rather than one client; elsewhere the system's choice.
func source(addr string, i int) net.Addr {
	host, _, err := net.SplitHostPort(addr)
	ip := net.ParseIP(host)
	if err != nil || ip == nil || !ip.IsLoopback() || ip.To4() == nil {
		return nil
	}
	return &net.TCPAddr{IP: net.IPv4(127, 1, byte(i/250), byte(1+i%250))}
}

// errOffline is what a dial gets while the simulated network is down.
var errOffline = errors.New("fleetsim: network down (simulated)")

// errCut is what reads and writes on a cut connection get: a reset, as a dropped line looks to
// the agent. (A plain local Close would not do: paho takes "use of closed network connection"
// for its own close and would notice the loss only at the next keep-alive timeout.)
var errCut = fmt.Errorf("fleetsim: connection cut (simulated): %w", syscall.ECONNRESET)

// cutConn is a connection that cut makes fail with errCut.
type cutConn struct {
	net.Conn
	cut atomic.Bool
}

func (c *cutConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.cut.Load() {
		return 0, errCut
	}
	return n, err
}

func (c *cutConn) Write(p []byte) (int, error) {
	if c.cut.Load() {
		return 0, errCut
	}
	return c.Conn.Write(p)
}

func (n *netctl) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	n.mu.Lock()
	down := n.down || n.refuse
	n.mu.Unlock()
	if down {
		return nil, errOffline
	}
	raw, err := (&net.Dialer{LocalAddr: n.from}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.down || n.refuse {
		raw.Close()
		return nil, errOffline
	}
	n.conn = &cutConn{Conn: raw}
	return n.conn, nil
}

// cut resets the current connection: the agent's reads and writes fail, the hub gets an RST.
func (n *netctl) cut() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		return false
	}
	n.conn.cut.Store(true)
	if tc, ok := n.conn.Conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	n.conn.Conn.Close()
	n.conn = nil
	return true
}

func (n *netctl) setRefuse(refuse bool) {
	n.mu.Lock()
	n.refuse = refuse
	n.mu.Unlock()
}

func (n *netctl) setDown(down bool) {
	n.mu.Lock()
	n.down = down
	n.mu.Unlock()
	if down {
		n.cut()
	}
}

type samples struct {
	mu        sync.Mutex
	lat, hb   []time.Duration
	measuring atomic.Bool
}

func (s *sim) onAck(ss *samples) func(string, uint64) {
	return func(_ string, upTo uint64) {
		s.acks.Add(1)
		now := time.Now()
		s.mu.Lock()
		var lat, hb []time.Duration
		for seq := max(s.acked+1, s.base); seq <= upTo && seq-s.base < uint64(len(s.sentAt)); seq++ {
			d := now.Sub(s.sentAt[seq-s.base])
			if s.kinds[seq-s.base] {
				hb = append(hb, d)
			} else {
				lat = append(lat, d)
			}
		}
		if upTo > s.acked {
			s.acked = upTo
		}
		s.mu.Unlock()
		if ss.measuring.Load() {
			ss.mu.Lock()
			ss.lat = append(ss.lat, lat...)
			ss.hb = append(ss.hb, hb...)
			ss.mu.Unlock()
		}
	}
}

func (s *sim) append(ctx context.Context, n int, body []byte, heartbeat bool) error {
	entries := make([]outbox.Entry, n)
	kind, class := "sim", wire.Business
	if heartbeat {
		kind, class = wire.KindHeartbeat, wire.Telemetry
	}
	for i := range entries {
		entries[i] = outbox.Entry{Kind: kind, Class: class, Body: body}
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	first, err := s.ob.AppendBatch(ctx, entries)
	if err != nil {
		return err
	}
	if len(s.sentAt) == 0 {
		s.base = first
	}
	for range n {
		s.sentAt = append(s.sentAt, now)
		s.kinds = append(s.kinds, heartbeat)
	}
	if last := first + uint64(n) - 1; last > s.acked {
		s.maxBuffered = max(s.maxBuffered, last-max(s.acked, s.base-1))
	}
	return nil
}

// Run runs the simulation.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.ConnectConcurrency <= 0 {
		cfg.ConnectConcurrency = 64
	}
	if cfg.Size <= 0 {
		cfg.Size = 200
	}
	if err := cfg.Validate(); err != nil {
		return Result{}, fmt.Errorf("fleetsim: %w", err)
	}
	ids, err := Identities(ctx, cfg, cfg.Agents)
	if err != nil {
		return Result{}, err
	}
	body := makeBody(cfg.Size)
	hbBody := []byte(`{"uptimeS":1,"cpuPercent":1,"agentVersion":"fleetsim"}`)
	ss := &samples{}
	fo := &fanOut{arrived: map[string]time.Time{}}
	if cfg.FanOut != "" {
		next := cfg.OnCommand
		cfg.OnCommand = func(deviceID string, c wire.Command) {
			fo.arrive(c.ID)
			if next != nil {
				next(deviceID, c)
			}
		}
	}
	sims := make([]*sim, len(ids))
	taken := &takeStats{}
	tufHTTP := &http.Client{Transport: api.Transport(cfg.HubCA), Timeout: 30 * time.Second} // shared by the kiosks taking bundles
	for i, id := range ids {
		s := &sim{ob: outbox.NewMemory(outbox.Options{MaxBytes: 1 << 30})}
		id.SetBrokers(cfg.MQTTAddrs)
		var onCommand func(context.Context, wire.Command)
		if cfg.OnCommand != nil {
			onCommand = func(_ context.Context, c wire.Command) { cfg.OnCommand(id.DeviceID, c) }
		}
		s.net.from = source(id.MQTTAddr, i)
		var onDesired func(context.Context, wire.Desired)
		var stateVersion func() int64
		if cfg.TakeBundles {
			if s.taker, err = newTaker(s, id.DeviceID, cfg.HubURL, tufHTTP, filepath.Join(cfg.StateDir, fmt.Sprintf("kiosk-%05d", i)), cfg.FailRate, cfg.FailVersion, taken,
				cfg.Log.With("device", id.DeviceID)); err != nil {
				return Result{}, err
			}
			onDesired, stateVersion = s.taker.onDesired, s.taker.stateVersion
		}
		s.link, err = link.New(link.Config{DeviceID: id.DeviceID, Brokers: id.MQTTAddrs, TLS: id.TLSConfig(), Outbox: s.ob,
			OnCommand: onCommand, OnDesired: onDesired, StateVersion: stateVersion,
			AgentVersion: "fleetsim", OnAck: s.onAck(ss), BatchRecords: cfg.BatchRecords, MaxInflight: cfg.MaxInflight,
			AckTimeout: cfg.AckTimeout, MinBackoff: 500 * time.Millisecond, MaxBackoff: 30 * time.Second, Dial: s.net.dial,
			OnEnd: s.onEnd, Log: cfg.Log.With("device", id.DeviceID)})
		if err != nil {
			return Result{}, err
		}
		if cfg.Prefill > 0 {
			if err := s.append(ctx, cfg.Prefill, body, false); err != nil {
				return Result{}, err
			}
		}
		sims[i] = s
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	ss.measuring.Store(true)
	start := time.Now()
	sem := make(chan struct{}, cfg.ConnectConcurrency)
	for _, s := range sims {
		wg.Add(1)
		go func() { defer wg.Done(); _ = s.link.Run(ctx) }()
		if s.taker != nil {
			wg.Go(func() { s.taker.run(ctx) })
		}
		// Pace first connects so the hub sees a realistic (if steep) ramp, not one SYN flood.
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			deadline := time.Now().Add(30 * time.Second)
			for !s.link.Connected() && time.Now().Before(deadline) && ctx.Err() == nil {
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	res := Result{Agents: len(sims)}
	connDeadline := time.Now().Add(5 * time.Minute)
	for {
		n := 0
		for _, s := range sims {
			if s.link.Connected() {
				n++
			}
		}
		res.Connected = n
		if n == len(sims) || time.Now().After(connDeadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	res.ConnectSeconds = time.Since(start).Seconds()
	cfg.Log.Info("agents connected", "connected", res.Connected, "of", len(sims), "seconds", res.ConnectSeconds)
	if cfg.Connected != nil {
		cfg.Connected()
	}

	if cfg.Storm != nil {
		res.StormSeconds, res.StormResynced, res.StormMaxSessions, res.StormOverTwo = storm(ctx, cfg, sims)
	}

	ackedBefore := totalAcked(sims)
	loadStart := time.Now()
	if cfg.Duration > 0 || cfg.During != nil {
		lctx, lcancel := context.WithCancel(ctx)
		if cfg.During == nil {
			lctx, lcancel = context.WithTimeout(ctx, cfg.Duration)
		}
		var lwg sync.WaitGroup
		lwg.Go(func() { produce(lctx, sims, cfg, body, hbBody) })
		var cuts atomic.Uint64
		if cfg.Churn > 0 {
			lwg.Go(func() { churn(lctx, sims, cfg.Churn, &cuts) })
		}
		if cfg.OfflineFraction > 0 {
			res.OfflineKiosks = offline(ctx, &wg, sims, cfg)
		}
		if cfg.FanOut != "" {
			lwg.Go(func() {
				select {
				case <-lctx.Done():
					return
				case <-time.After(cfg.Duration / 2):
				}
				fo.run(ctx, cfg, ids, &res)
			})
		}
		if cfg.During != nil {
			cfg.During(lctx, &Fleet{ids: ids, sims: sims})
			lcancel()
		}
		lwg.Wait()
		lcancel()
		res.Cuts = cuts.Load()
	}
	res.LoadSeconds = time.Since(loadStart).Seconds()
	if res.LoadSeconds > 0 && (cfg.Duration > 0 || cfg.During != nil) {
		res.AckedPerSecond = float64(totalAcked(sims)-ackedBefore) / res.LoadSeconds
	}
	drainStart := time.Now()
	drainDeadline := time.Now().Add(5*time.Minute + cfg.OfflineFor)
	for unacked(sims) > 0 && time.Now().Before(drainDeadline) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	res.DrainSeconds = time.Since(drainStart).Seconds()
	if cfg.Duration == 0 && cfg.Prefill > 0 {
		res.DrainSeconds = time.Since(start).Seconds() // drain scenario: from first connect
		res.AckedPerSecond = float64(totalAcked(sims)) / res.DrainSeconds
	}
	for _, s := range sims {
		res.Appended += s.ob.NextSeq() - 1
		res.Sessions += s.link.Sessions()
		res.MACErrors += s.mac.Load()
		res.DeafSessions += s.deaf.Load()
		s.mu.Lock()
		res.MaxBuffered = max(res.MaxBuffered, s.maxBuffered)
		s.mu.Unlock()
	}
	res.Acked = totalAcked(sims)
	res.Unacked = unacked(sims)
	res.BundlesActive, res.BundlesFailed, res.BundlesRefused, res.BundleBytes = taken.active.Load(), taken.failed.Load(), taken.refused.Load(), taken.bytes.Load()
	ss.mu.Lock()
	res.LatencyP50Ms, res.LatencyP99Ms, res.LatencyMaxMs = pct(ss.lat, 0.5), pct(ss.lat, 0.99), pct(ss.lat, 1)
	res.HeartbeatP99Ms = pct(ss.hb, 0.99)
	ss.mu.Unlock()
	return res, nil
}

// onEnd counts why the kiosk's sessions end. crypto/tls reports a record it cannot authenticate
// only as a local alert ("local error: tls: bad record MAC"), with no type of its own.
func (s *sim) onEnd(err error) {
	switch {
	case errors.Is(err, link.ErrDeaf):
		s.deaf.Add(1)
	case err != nil && strings.Contains(err.Error(), "bad record MAC"):
		s.mac.Add(1)
	}
}

// storm lets cfg.Storm disrupt the hub and measures the fleet's recovery: the time until every
// agent resynced, how many did, and the sessions per agent meanwhile (the most, and how many
// agents needed more than two).
func storm(ctx context.Context, cfg Config, sims []*sim) (secs float64, resynced int, most uint64, overTwo int) {
	sessions := make([]uint64, len(sims))
	acks := make([]uint64, len(sims))
	for i, s := range sims {
		sessions[i], acks[i] = s.link.Sessions(), s.acks.Load()
	}
	cfg.Storm()
	// Wait for the disruption to show: most agents lost their session.
	deadline := time.Now().Add(time.Minute)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		down := 0
		for _, s := range sims {
			if !s.link.Connected() {
				down++
			}
		}
		if down*10 >= len(sims)*9 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	deadline = start.Add(5 * time.Minute)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		ok := 0
		for i, s := range sims {
			if s.link.Connected() && s.link.Sessions() > sessions[i] && s.acks.Load() > acks[i] {
				ok++
			}
		}
		if ok == len(sims) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	secs = time.Since(start).Seconds()
	for i, s := range sims {
		n := s.link.Sessions() - sessions[i]
		if n > 0 && s.acks.Load() > acks[i] {
			resynced++
		}
		most = max(most, n)
		if n > 2 {
			overTwo++
		}
	}
	return secs, resynced, most, overTwo
}

// fanOut measures commands written through one hub until they reach their kiosks.
type fanOut struct {
	mu      sync.Mutex
	arrived map[string]time.Time // command ID -> first arrival
}

func (f *fanOut) arrive(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.arrived[id]; !ok {
		f.arrived[id] = time.Now()
	}
}

// run writes a command for every kiosk through cfg.FanOut, 16 at a time, and waits up to a
// minute for them to arrive; the figures go to res.
func (f *fanOut) run(ctx context.Context, cfg Config, ids []enroll.Identity, res *Result) {
	c := &api.Client{BaseURL: cfg.FanOut, Token: cfg.Token, HTTP: &http.Client{Transport: api.Transport(cfg.HubCA)}}
	var mu sync.Mutex
	written := map[string]time.Time{}
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for _, id := range ids {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			cmd, err := c.SendCommand(ctx, id.DeviceID, api.CreateCommand{Name: "fanout", TTL: "5m"})
			if err != nil {
				cfg.Log.Warn("fan-out command not written", "device", id.DeviceID, "err", err)
				return
			}
			mu.Lock()
			written[cmd.ID] = time.Now()
			mu.Unlock()
		})
	}
	wg.Wait()
	deadline := time.Now().Add(time.Minute)
	var lat []time.Duration
	for {
		lat = lat[:0]
		f.mu.Lock()
		for id, at := range written {
			if got, ok := f.arrived[id]; ok {
				lat = append(lat, max(0, got.Sub(at)))
			}
		}
		f.mu.Unlock()
		if len(lat) == len(written) || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	res.FanOutCommands, res.FanOutArrived = len(written), len(lat)
	res.FanOutP50Ms, res.FanOutP99Ms, res.FanOutMaxMs = pct(lat, 0.5), pct(lat, 0.99), pct(lat, 1)
}

// churn cuts perSecond random connections per second until ctx is done.
func churn(ctx context.Context, sims []*sim, perSecond float64, cuts *atomic.Uint64) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	start, done := time.Now(), 0.0
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			for due := perSecond*now.Sub(start).Seconds() - done; due >= 1; due-- {
				done++
				if sims[rand.IntN(len(sims))].net.cut() {
					cuts.Add(1)
				}
			}
		}
	}
}

// offline takes a random OfflineFraction of the kiosks off the network, each at a random moment
// in the first half of the load window, for OfflineFor. The timers run under wg and ctx.
func offline(ctx context.Context, wg *sync.WaitGroup, sims []*sim, cfg Config) int {
	n := int(math.Round(cfg.OfflineFraction * float64(len(sims))))
	for _, i := range rand.Perm(len(sims))[:n] {
		s := sims[i]
		at := time.Duration(rand.Int64N(int64(cfg.Duration/2) + 1))
		wg.Go(func() {
			select {
			case <-ctx.Done():
				return
			case <-time.After(at):
			}
			s.net.setDown(true)
			select {
			case <-ctx.Done():
			case <-time.After(cfg.OfflineFor):
			}
			s.net.setDown(false)
		})
	}
	return n
}

// produce appends each kiosk's records (and heartbeats) as they fall due, every 50 ms, until
// ctx is done. One goroutine serves the whole fleet: a ticker per kiosk cost the simulator
// 20,000 wake-ups a second at 1,000 kiosks (half of them with nothing due), CPU taken from the
// hub it shares the machine with. A kiosk whose append fails (its outbox closed) is skipped.
func produce(ctx context.Context, sims []*sim, cfg Config, body, hbBody []byte) {
	const tick = 50 * time.Millisecond
	t := time.NewTicker(tick)
	defer t.Stop()
	start := time.Now()
	made := make([]float64, len(sims))
	nextHB := make([]time.Time, len(sims))
	stopped := make([]bool, len(sims))
	if cfg.Heartbeat > 0 {
		// Spread heartbeats over the interval so they do not all land at once.
		for i := range nextHB {
			nextHB[i] = start.Add(time.Duration(int64(cfg.Heartbeat) * int64(i%1000) / 1000))
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			due := cfg.Rate * now.Sub(start).Seconds()
			for i, s := range sims {
				if stopped[i] {
					continue
				}
				if n := int(due - made[i]); n > 0 {
					if s.append(ctx, n, body, false) != nil {
						stopped[i] = true
						continue
					}
					made[i] += float64(n)
				}
				if cfg.Heartbeat > 0 && !now.Before(nextHB[i]) {
					if s.append(ctx, 1, hbBody, true) != nil {
						stopped[i] = true
						continue
					}
					nextHB[i] = nextHB[i].Add(cfg.Heartbeat)
				}
			}
		}
	}
}

func totalAcked(sims []*sim) uint64 {
	var n uint64
	for _, s := range sims {
		s.mu.Lock()
		if s.acked >= s.base && len(s.sentAt) > 0 {
			n += s.acked - s.base + 1
		}
		s.mu.Unlock()
	}
	return n
}

func unacked(sims []*sim) uint64 {
	var n uint64
	for _, s := range sims {
		next := s.ob.NextSeq()
		s.mu.Lock()
		acked := s.acked
		s.mu.Unlock()
		if next-1 > acked {
			n += next - 1 - acked
		}
	}
	return n
}

func makeBody(size int) []byte {
	// {"p":"xxxx..."} padded to size bytes.
	pad := max(0, size-8)
	b := make([]byte, 0, size)
	b = append(b, `{"p":"`...)
	for range pad {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}

func pct(d []time.Duration, p float64) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(p * float64(len(s)-1))
	return float64(s[i].Microseconds()) / 1000
}
