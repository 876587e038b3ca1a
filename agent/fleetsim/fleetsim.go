// Package fleetsim runs many simulated kiosks in one process against a hub, each with the real
// agent sync code (agent/link) over an in-memory outbox (agent/outbox.Memory, same semantics as the
// SQLite one), and measures what the fleet sees: throughput of records acked by the hub, latency
// from enqueue to ack, connect and drain times.
package fleetsim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
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
	HubURL   string // hub HTTP API, for enrollment
	Token    string // admin token, to create the site and enrollment tokens
	MQTTAddr string // override the advertised MQTT address (e.g. a fault proxy)
	StateDir string // identities are kept here and reused across runs against the same hub

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

	// Storm, when set, is called once every agent is connected; the simulation then waits for the
	// hub to go away (most sessions lost) and measures until every agent has reconnected and had
	// its hello answered with an ack (resynced).
	Storm func()
	Log   *slog.Logger
}

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
}

// Identities enrolls (or loads from StateDir) n kiosk identities.
func Identities(ctx context.Context, cfg Config, n int) ([]enroll.Identity, error) {
	c := &api.Client{BaseURL: cfg.HubURL, Token: cfg.Token}
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
			ids[i], errs[i] = enroll.Enroll(ctx, cfg.HubURL, tok.Secret, "fleetsim", dir, "")
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
	ob   *outbox.Memory
	link *link.Link
	acks atomic.Uint64 // acks applied (any)

	mu     sync.Mutex
	base   uint64      // seq of sent[0]
	sentAt []time.Time // append time per seq from base
	kinds  []bool      // true: heartbeat
	acked  uint64
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
	ids, err := Identities(ctx, cfg, cfg.Agents)
	if err != nil {
		return Result{}, err
	}
	body := makeBody(cfg.Size)
	hbBody := []byte(`{"uptimeS":1,"cpuPercent":1,"agentVersion":"fleetsim"}`)
	ss := &samples{}
	sims := make([]*sim, len(ids))
	for i, id := range ids {
		s := &sim{ob: outbox.NewMemory(outbox.Options{MaxBytes: 1 << 30})}
		if cfg.MQTTAddr != "" {
			id.MQTTAddr = cfg.MQTTAddr
		}
		s.link, err = link.New(link.Config{DeviceID: id.DeviceID, Broker: id.MQTTAddr, TLS: id.TLSConfig(), Outbox: s.ob,
			AgentVersion: "fleetsim", OnAck: s.onAck(ss), BatchRecords: cfg.BatchRecords, MaxInflight: cfg.MaxInflight,
			AckTimeout: cfg.AckTimeout, MinBackoff: 500 * time.Millisecond, MaxBackoff: 30 * time.Second})
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

	if cfg.Storm != nil {
		res.StormSeconds, res.StormResynced = storm(ctx, cfg, sims)
	}

	ackedBefore := totalAcked(sims)
	loadStart := time.Now()
	if cfg.Duration > 0 {
		lctx, lcancel := context.WithTimeout(ctx, cfg.Duration)
		var lwg sync.WaitGroup
		for i, s := range sims {
			lwg.Add(1)
			go func() {
				defer lwg.Done()
				produce(lctx, s, cfg, body, hbBody, i)
			}()
		}
		lwg.Wait()
		lcancel()
	}
	res.LoadSeconds = time.Since(loadStart).Seconds()
	if res.LoadSeconds > 0 && cfg.Duration > 0 {
		res.AckedPerSecond = float64(totalAcked(sims)-ackedBefore) / res.LoadSeconds
	}
	drainStart := time.Now()
	drainDeadline := time.Now().Add(5 * time.Minute)
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
	}
	res.Acked = totalAcked(sims)
	res.Unacked = unacked(sims)
	ss.mu.Lock()
	res.LatencyP50Ms, res.LatencyP99Ms, res.LatencyMaxMs = pct(ss.lat, 0.5), pct(ss.lat, 0.99), pct(ss.lat, 1)
	res.HeartbeatP99Ms = pct(ss.hb, 0.99)
	ss.mu.Unlock()
	return res, nil
}

// storm lets cfg.Storm disrupt the hub and measures the fleet's recovery.
func storm(ctx context.Context, cfg Config, sims []*sim) (float64, int) {
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
			return time.Since(start).Seconds(), ok
		}
		time.Sleep(20 * time.Millisecond)
	}
	ok := 0
	for i, s := range sims {
		if s.link.Sessions() > sessions[i] && s.acks.Load() > acks[i] {
			ok++
		}
	}
	return time.Since(start).Seconds(), ok
}

func produce(ctx context.Context, s *sim, cfg Config, body, hbBody []byte, i int) {
	const tick = 50 * time.Millisecond
	t := time.NewTicker(tick)
	defer t.Stop()
	start := time.Now()
	made := 0.0
	var nextHB time.Time
	if cfg.Heartbeat > 0 {
		// Spread heartbeats over the interval so they do not all land at once.
		nextHB = start.Add(time.Duration(int64(cfg.Heartbeat) * int64(i%1000) / 1000))
	}
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			due := cfg.Rate*now.Sub(start).Seconds() - made
			if n := int(due); n > 0 {
				if s.append(ctx, n, body, false) != nil {
					return
				}
				made += float64(n)
			}
			if cfg.Heartbeat > 0 && !now.Before(nextHB) {
				if s.append(ctx, 1, hbBody, true) != nil {
					return
				}
				nextHB = nextHB.Add(cfg.Heartbeat)
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
