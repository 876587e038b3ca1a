// Package events is the hub's unified data room: one versioned event schema for every channel
// (wire.Event), strictly validated with an error per field, pseudonymized per analytics domain
// (Pseudonyms), deduplicated by client and event ID, and committed with group commit into
// store.Events, whose rollups (heat, funnels, searches that found nothing, co-use) are kept up
// to date in the same transaction. Queries suppress every cell of fewer than K distinct citizens,
// wherever it is shown or exported. Raw events are purged after the retention; rollups stay.
//
// Events come two ways:
//   - web, mobile and mini-program pages post batches (Submit, served by hub/httpapi), answered
//     once the accepted events are durable, 429 with a wait when the queue is full;
//   - kiosks send KindEvent records through their outbox; ingest asks this package for the
//     record's effect (RecordEffect), and the store applies it in the transaction that first
//     stores the record, so each reaches the stream exactly once.
package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// DefaultK is the least number of distinct citizens a shown or exported cell may have.
const DefaultK = 10

// DefaultRetention is how long raw events are kept.
const DefaultRetention = 180 * 24 * time.Hour

// Store is the storage the room needs.
type Store interface {
	store.Events
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

	// Group commit of posted events: the committer gathers for Window (2 ms) or MaxEvents
	// (5,000), and at most Queue events (50,000) wait; beyond that posts are refused (429).
	Window    time.Duration
	MaxEvents int
	Queue     int

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
	if c.Window <= 0 {
		c.Window = 2 * time.Millisecond
	}
	if c.MaxEvents <= 0 {
		c.MaxEvents = 5000
	}
	if c.Queue <= 0 {
		c.Queue = 50_000
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
	cfg Config
	st  Store
	ps  *Pseudonyms
	log *slog.Logger
}

// New returns the room on st.
func New(cfg Config, st Store) (*Events, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	ps, err := NewPseudonyms(cfg.Secret, cfg.Domains)
	if err != nil {
		return nil, err
	}
	return &Events{cfg: cfg, st: st, ps: ps, log: cfg.Log}, nil
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
