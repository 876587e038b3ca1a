// Package events is the hub's unified data room: one versioned event schema for every channel
// (wire.Event), strictly validated with an error per field, pseudonymized per analytics domain
// (Pseudonyms), deduplicated by client and event ID, and committed with group commit into
// store.Events, whose rollups (heat, funnels, searches that found nothing, co-use) are kept up
// to date in the same transaction. Queries suppress every cell of fewer than K distinct citizens,
// wherever it is shown or exported. Raw events are purged after the retention; rollups stay.
// A deleted account's events are re-keyed to a random pseudonym (AccountDeleted).
//
// Events come two ways:
//   - web, mobile and mini-program pages post batches (Submit, served by hub/httpapi), answered
//     once the accepted events are durable, 429 with a wait when the queue is full;
//   - kiosks send KindEvent records through their outbox; ingest asks this package for the
//     record's effect (RecordEffect), and the store applies it in the transaction that first
//     stores the record, so each reaches the stream exactly once.
package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// DefaultK is the least number of distinct citizens a shown or exported cell may have.
const DefaultK = 10

// DefaultRetention is how long raw events are kept.
const DefaultRetention = 180 * 24 * time.Hour

// Store is the storage the room needs: its domain, and the kiosks and clients events come from.
type Store interface {
	store.Events
	Kiosks
}

// Config configures the room. Zero values take the defaults shown.
type Config struct {
	// Secret is the hub's master secret (at least 32 bytes); the pseudonym key derives from it.
	Secret []byte
	// Domains maps client IDs to analytics domains (default: every client in DefaultDomain).
	Domains map[string]string
	// Channels maps client IDs to their channel (default: the built-in clients', see
	// DefaultChannels); events of other clients name their channel (web, mobile or miniprogram).
	Channels map[string]string
	// K is the suppression threshold: 10, and never less.
	K int
	// Retention of raw events: 180 days.
	Retention time.Duration
	// PurgeEvery is how often events beyond the retention are purged: 1 h.
	PurgeEvery time.Duration
	// FoldEvery is how often committed events are folded into the rollups, where the store
	// does that apart from commits (RollupFolder): 250 ms.
	FoldEvery time.Duration

	// Group commit of posted events: the committer gathers for Window (2 ms) or MaxEvents
	// (5,000). At most Queue events (50,000) wait, and no more than the committer is seen to
	// commit in MaxWait (200 ms; at least a batch, a full group until its rate is known): beyond
	// that posts are refused (429), before they are read when the queue is at its bound already,
	// and a submission that waited MaxWait under overload is refused rather than committed, so
	// that an accepted batch is answered within about MaxWait and a commit, whatever the load.
	Window    time.Duration
	MaxEvents int
	Queue     int
	MaxWait   time.Duration
	// ClientRate is how many events a second each client may send (20,000), ClientBurst how
	// many at once (twice the rate, at least MaxBatch).
	ClientRate  float64
	ClientBurst float64

	Now func() time.Time
	Log *slog.Logger
}

// DefaultChannels are the channels of the hub's built-in clients (hub/identity).
var DefaultChannels = map[string]string{
	"web-portal":   store.ChannelWeb,
	"mobile-app":   store.ChannelMobile,
	"mini-program": store.ChannelMiniProgram,
	"kiosk-shell":  store.ChannelKiosk,
}

// KioskClient is the client that kiosks' events are filed under.
const KioskClient = "kiosk-shell"

func (c *Config) defaults() error {
	if c.K < DefaultK {
		c.K = DefaultK
	}
	if c.Retention <= 0 {
		c.Retention = DefaultRetention
	}
	if c.PurgeEvery <= 0 {
		c.PurgeEvery = time.Hour
	}
	if c.FoldEvery <= 0 {
		c.FoldEvery = 250 * time.Millisecond
	}
	if c.Window <= 0 {
		c.Window = 2 * time.Millisecond
	}
	if c.MaxEvents <= 0 {
		c.MaxEvents = 5000
	}
	if c.Queue <= 0 {
		c.Queue = 50_000
	}
	if c.MaxWait <= 0 {
		c.MaxWait = 200 * time.Millisecond
	}
	if c.ClientRate <= 0 {
		c.ClientRate = 20_000
	}
	if c.ClientBurst < max(2*c.ClientRate, MaxBatch) {
		c.ClientBurst = max(2*c.ClientRate, MaxBatch)
	}
	if c.Channels == nil {
		c.Channels = DefaultChannels
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Events is the room. Create with New; Run runs its committer and purger.
type Events struct {
	cfg    Config
	st     Store
	ps     *Pseudonyms
	log    *slog.Logger
	m      *metrics
	limits *limiter
	kiosks Kiosks
	kc     kioskCache

	qmu    sync.Mutex
	q      []*pending // submissions waiting for the committer, in arrival order
	queued int        // their events
	rate   float64    // events the committer commits a second, a moving average of its groups
	closed bool
	wake   chan struct{}
}

// New returns the room on st. reg may be nil.
func New(cfg Config, st Store, reg prometheus.Registerer) (*Events, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	ps, err := NewPseudonyms(cfg.Secret, cfg.Domains)
	if err != nil {
		return nil, err
	}
	m := newMetrics()
	if reg != nil {
		if err := m.register(reg); err != nil {
			return nil, fmt.Errorf("events: metrics: %w", err)
		}
	}
	return &Events{cfg: cfg, st: st, ps: ps, log: cfg.Log, m: m, wake: make(chan struct{}, 1), kiosks: st,
		kc:     kioskCache{devs: map[string]cachedDevice{}},
		limits: &limiter{rate: cfg.ClientRate, burst: cfg.ClientBurst, buckets: map[string]*bucket{}}}, nil
}

// Run commits submitted events, folds them into the rollups where the store does that apart
// (RollupFolder) and purges those beyond the retention until ctx ends; then it refuses new
// submissions, commits what is queued and returns.
func (ev *Events) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() {
		every(ctx, ev.cfg.PurgeEvery, func() {
			if _, err := ev.Purge(ctx); err != nil && ctx.Err() == nil {
				ev.log.Warn("event purge failed", "err", err)
			}
		})
	})
	if f, ok := ev.st.(RollupFolder); ok {
		// Often, so that a query seldom waits for a fold.
		wg.Go(func() {
			every(ctx, ev.cfg.FoldEvery, func() {
				if err := f.FoldRollups(ctx); err != nil && ctx.Err() == nil {
					ev.log.Warn("event rollup fold failed", "err", err)
				}
			})
		})
	}
	ev.commitLoop(ctx)
	wg.Wait()
	return nil
}

// RollupFolder is a store that folds committed events into the rollups apart from their commits,
// many commits' events at once (SQLite), and whose queries fold what is pending before they read.
type RollupFolder interface {
	FoldRollups(ctx context.Context) error
}

// every runs fn at once and then every d until ctx ends.
func every(ctx context.Context, d time.Duration, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		fn()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Purge deletes the raw events received before the retention; rollups stay.
func (ev *Events) Purge(ctx context.Context) (int64, error) {
	n, err := ev.st.PurgeEvents(ctx, ev.cfg.Now().Add(-ev.cfg.Retention))
	if n > 0 {
		ev.log.Info("events purged", "events", n, "retention", ev.cfg.Retention)
	}
	return n, err
}

// K is the suppression threshold in force.
func (ev *Events) K() int { return ev.cfg.K }

// Pseudonyms returns the room's pseudonym derivation (for rooms that look citizens up in the
// rollups, such as co-use recommendations).
func (ev *Events) Pseudonyms() *Pseudonyms { return ev.ps }

// ErrChannel is returned for an origin whose channel cannot be told.
var ErrChannel = errors.New("events: unknown channel")

// Channel returns the channel of a client's events: configured, or named by the events
// themselves for other clients (then web, mobile or miniprogram).
func (ev *Events) Channel(clientID, named string) (string, error) {
	if c, ok := ev.cfg.Channels[clientID]; ok {
		return c, nil
	}
	switch named {
	case store.ChannelWeb, store.ChannelMobile, store.ChannelMiniProgram:
		return named, nil
	}
	return "", fmt.Errorf("%w: client %s must name its channel (web, mobile or miniprogram)", ErrChannel, clientID)
}

// Decode validates one event as o sent it at recv and returns it as stored: pseudonymous, with
// the origin's channel, client, kiosk, site and region. Every problem is in the FieldErrors.
func (ev *Events) Decode(o Origin, raw json.RawMessage, recv time.Time) (store.Event, FieldErrors) {
	var e wire.Event
	defer clear(e.Props)
	if err := decodeStrict(raw, &e); err != nil {
		return store.Event{}, FieldErrors{"event: " + clip(err.Error())}
	}
	if f := check(&e, o, recv, ev.cfg.Retention); len(f) > 0 {
		return store.Event{}, f
	}
	out := store.Event{ID: e.ID, Version: e.V, Type: e.Type, Channel: o.Channel, ClientID: o.ClientID, Session: e.Session,
		Service: e.Service, Region: e.Region, KioskID: o.KioskID, SiteID: o.SiteID, DeviceTS: time.UnixMilli(e.TS).UTC(),
		RecvTS: recv.UTC()}
	if o.KioskID != "" {
		out.Region = o.Region
	}
	if len(e.Props) > 0 {
		out.Props = make(map[string]string, len(e.Props))
		for k, v := range e.Props {
			out.Props[k] = v
		}
	}
	switch {
	case o.Account != "":
		out.Pseudonym = ev.ps.Citizen(o.ClientID, o.Account)
	case e.AnonymousID != "":
		out.Pseudonym = ev.ps.Anonymous(o.ClientID, e.AnonymousID)
	}
	return out, nil
}
