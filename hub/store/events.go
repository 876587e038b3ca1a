package store

import (
	"context"
	"fmt"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/gb11643"
)

// Events keeps the unified event stream of every channel (kiosk, web, mobile, mini-program),
// deduplicated by client and event ID, and the rollups maintained from it as events commit:
// heat by service, channel, region and hour (and day), funnels by service, channel, day and
// stage, searches that found nothing, and which services each pseudonym used (for co-use). A
// rollup cell counts its distinct citizens with a sketch that is exact for small counts, so that
// a caller can suppress cells of fewer than k citizens; every query here takes the threshold
// (MinCitizens) and leaves out the cells below it. Raw events are purged after a retention;
// rollups stay.
//
// Kiosk events arrive as the effect of a committed record (Effect.Event), applied in the same
// transaction as the record, exactly once.
type Events interface {
	// CommitEvents stores every event whose (ClientID, ID) is not stored yet, in one transaction
	// that is durable when it returns, and folds those into the rollups: in the same transaction,
	// or later in bigger groups (exactly once, also across a crash), as long as every query below
	// folds what is pending before it reads and PurgeEvents before it deletes. It returns, for
	// each event in order, whether it was new (a duplicate, in the store or earlier in evs, is
	// false). Events that CheckEvents refuses make it return ErrInvalid without storing anything.
	CommitEvents(ctx context.Context, evs []Event) ([]bool, error)
	// ListEvents returns stored events in insertion order.
	ListEvents(ctx context.Context, f EventFilter) ([]Event, error)
	// PurgeEvents deletes the raw events received before t and returns how many; rollups stay.
	PurgeEvents(ctx context.Context, before time.Time) (int64, error)

	// Heat returns the heat cells of q's range and filters, grouped by q.By, without the cells of
	// fewer than q.MinCitizens distinct citizens.
	Heat(ctx context.Context, q HeatQuery) ([]HeatCell, error)
	// Funnel returns, per service, the distinct citizens at each funnel stage, without the
	// stages of fewer than q.MinCitizens.
	Funnel(ctx context.Context, q FunnelQuery) ([]FunnelStep, error)
	// SearchMisses returns the searches that found nothing, most citizens first, without those
	// of fewer than q.MinCitizens.
	SearchMisses(ctx context.Context, q MissQuery) ([]SearchMiss, error)
	// ServicesUsed returns the services a pseudonym used (started, submitted or completed).
	ServicesUsed(ctx context.Context, pseudonym string) ([]string, error)
	// CoUsed returns, for services other than those in used, how many citizens who used one of
	// used also used them, most first, at least minCitizens, at most limit.
	CoUsed(ctx context.Context, used []string, minCitizens, limit int) ([]CoUse, error)
	// RekeyPseudonym gives the stored events of pseudonym old the pseudonym fresh and drops old's
	// service use, after folding what is pending into the rollups (which stay): a deleted
	// account's events no longer map to her. A second call finds nothing to do.
	RekeyPseudonym(ctx context.Context, old, fresh string) error
}

// Channels an event comes from.
const (
	ChannelKiosk       = "kiosk"
	ChannelWeb         = "web"
	ChannelMobile      = "mobile"
	ChannelMiniProgram = "miniprogram"
)

// Event types. The funnel of a service is view (its guide) -> start -> submit -> complete.
const (
	EventView     = "view"     // a service guide or page seen
	EventSearch   = "search"   // props: query, results (a count; "0" for nothing found)
	EventStart    = "start"    // a service begun
	EventSubmit   = "submit"   // an application handed in
	EventComplete = "complete" // a service done (certificate received, case closed)
	EventPrint    = "print"
	EventScan     = "scan"
	EventRate     = "rate"
	EventError    = "error"
	EventLogin    = "login"
	EventLogout   = "logout"
	EventClick    = "click"
)

// EventTypes lists every event type.
var EventTypes = []string{EventView, EventSearch, EventStart, EventSubmit, EventComplete, EventPrint,
	EventScan, EventRate, EventError, EventLogin, EventLogout, EventClick}

// FunnelStages are the funnel's stages, in order: the event types that count in it.
var FunnelStages = []string{EventView, EventStart, EventSubmit, EventComplete}

// UseTypes are the event types that count as using a service (co-use).
var UseTypes = []string{EventStart, EventSubmit, EventComplete}

// Event is one event of the unified stream, as stored: pseudonymous, its properties bounded
// and free of ID numbers (CheckEvents).
type Event struct {
	Seq       int64  // hub-wide insertion order, set by the store
	ID        string // unique per client, chosen by the client (retries resend it)
	Version   int    // schema version
	Type      string
	Channel   string
	ClientID  string // the channel's registered OpenID client
	Pseudonym string // the citizen's analytics pseudonym in the client's analytics domain
	Session   string
	Service   string // the service or app (catalog ID), if any
	Region    string // GB/T 2260 code of where it happened
	KioskID   string // for kiosk events
	SiteID    string
	DeviceTS  time.Time // the client's clock
	RecvTS    time.Time // the hub's clock
	Props     map[string]string
}

// Limits of an event's fields.
const (
	MaxEventIDLen  = 64
	MaxFieldLen    = 64 // client, session, service, kiosk, site, pseudonym
	MaxProps       = 16
	MaxPropKeyLen  = 32
	MaxPropValLen  = 256
	MaxSearchQuery = 64 // runes of a search query kept in the search-miss rollup
)

// CheckEvents reports what CommitEvents must refuse (ErrInvalid): an event without an ID, type,
// channel, client or times, fields over their limits, and, whatever the caller checked before,
// a property that holds anything shaped like an ID number (GB 11643), so that none is ever stored.
func CheckEvents(evs []Event) error {
	for i, e := range evs {
		bad := func(format string, a ...any) error {
			return fmt.Errorf("%w: event %d: %s", ErrInvalid, i, fmt.Sprintf(format, a...))
		}
		switch {
		case e.ID == "" || len(e.ID) > MaxEventIDLen:
			return bad("id must have 1 to %d characters", MaxEventIDLen)
		case e.Type == "" || e.Channel == "" || e.ClientID == "":
			return bad("type, channel and client required")
		case e.DeviceTS.IsZero() || e.RecvTS.IsZero():
			return bad("device and received times required")
		case len(e.Props) > MaxProps:
			return bad("more than %d properties", MaxProps)
		}
		for _, f := range []string{e.ID, e.Type, e.Channel, e.ClientID, e.Pseudonym, e.Session, e.Service, e.Region, e.KioskID, e.SiteID} {
			if len(f) > MaxFieldLen || gb11643.Contains(f) {
				return bad("a field is too long or holds an ID number")
			}
		}
		for k, v := range e.Props {
			if k == "" || len(k) > MaxPropKeyLen || len(v) > MaxPropValLen {
				return bad("property keys must have 1 to %d bytes, values at most %d", MaxPropKeyLen, MaxPropValLen)
			}
			if gb11643.Contains(k) || gb11643.Contains(v) {
				return bad("property %q holds an ID number", k)
			}
		}
	}
	return nil
}

// EventFilter selects events.
type EventFilter struct {
	AfterSeq  int64
	Pseudonym string
	Type      string
	Limit     int // 0: 1000
}

// Heat dimensions to group by.
const (
	ByService = "service"
	ByChannel = "channel"
	ByRegion  = "region"
	ByHour    = "hour"
)

// HeatQuery selects heat cells: events of the hours in [From, To) (whole days use the daily
// rollup), optionally of one service, channel or region (a prefix of the region code matches
// its sub-regions), grouped by the dimensions in By (none: one total).
type HeatQuery struct {
	From, To    time.Time
	Service     string
	Channel     string
	Region      string
	By          []string
	MinCitizens int
}

// HeatCell is one group of a heat query: the dimensions not grouped by are empty.
type HeatCell struct {
	Service  string
	Channel  string
	Region   string
	Hour     time.Time // zero unless grouped by hour
	Events   int64
	Citizens int64
}

// FunnelQuery selects the funnels of the days in [From, To).
type FunnelQuery struct {
	From, To    time.Time
	Service     string
	Channel     string
	MinCitizens int
}

// FunnelStep is the distinct citizens of a service at one stage.
type FunnelStep struct {
	Service  string
	Stage    string // one of FunnelStages
	Citizens int64
}

// MissQuery selects the searches that found nothing on the days in [From, To).
type MissQuery struct {
	From, To    time.Time
	MinCitizens int
	Limit       int // 0: 100
}

// SearchMiss is a search query (normalized) that found nothing.
type SearchMiss struct {
	Query    string
	Searches int64
	Citizens int64
}

// CoUse says that Citizens of those who used From also used To.
type CoUse struct {
	From, To string
	Citizens int64
}
