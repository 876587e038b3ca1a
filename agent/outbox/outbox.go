// Package outbox is the kiosk agent's durable queue of uplink records.
//
// Every record the agent produces gets the next sequence number of the outbox's epoch and is
// durable before Append returns; the uploader reads Pending records, sends them, and deletes them
// when the hub acknowledges them cumulatively (see package wire). The epoch is a random ID made
// with a new, empty database, so a wiped or replaced disk never reuses (epoch, seq) pairs.
//
// The outbox has a size cap. Telemetry records are evicted oldest-first to make room; an evicted
// record is kept as a small tombstone (kind KindEvicted) so that the sequence has no gap the hub
// would wait on forever. Business records are never evicted: at the cap, Append of a business record
// fails with ErrFull. A small reserve below the cap is kept for alert and command-result records,
// and the outbox itself appends an alert (code AlertFull) when it first refuses a record and another
// (code AlertCleared) once acks have freed space again.
//
// Two implementations share the Outbox interface: SQLite (durable, group commit) and Memory (for
// simulators running thousands of kiosks in one process).
package outbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/strictjson"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

var (
	// ErrFull is returned when a record does not fit under the size cap even after evicting
	// telemetry. Business records are never dropped silently: the caller must tell the user.
	ErrFull = errors.New("outbox: full, record refused")
	// ErrInvalid is returned for a record with a bad kind, class or body.
	ErrInvalid = errors.New("outbox: invalid record")
	// ErrAckAhead is returned for an ack above the highest appended sequence number.
	ErrAckAhead = errors.New("outbox: ack above the highest appended seq")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("outbox: closed")
)

// Record kinds and alert codes the outbox produces itself.
const (
	KindEvicted  = "outbox.evicted" // body: Tombstone
	AlertFull    = "outbox.full"    // wire.Alert code: records are being refused
	AlertCleared = "outbox.cleared" // wire.Alert code: space is available again
)

// RecordOverhead is the fixed size charged to every record on top of its kind and body, so that
// the cap also bounds the row and index overhead of many tiny records.
const RecordOverhead = 32

// Defaults for Options.
const (
	DefaultMaxBytes = 256 << 20
	DefaultMaxGroup = 1000
)

// Tombstone is the body of a KindEvicted record: what was lost.
type Tombstone struct {
	Kind  string `json:"kind"`
	Bytes int    `json:"bytes"`
}

// Outbox is the agent's queue of uplink records. Implementations are safe for concurrent use.
type Outbox interface {
	// Epoch is the outbox's epoch ID ([a-z0-9-]).
	Epoch() string
	// NextSeq is the sequence number the next record will get (the first is 1).
	NextSeq() uint64
	// Append adds one record; body must be valid JSON. It returns the record's seq once the record
	// is durable, or ErrFull, ErrInvalid, ErrClosed.
	Append(ctx context.Context, kind string, class wire.Class, body []byte) (uint64, error)
	// AppendBatch adds records atomically (all or none) with consecutive seqs and returns the first.
	AppendBatch(ctx context.Context, entries []Entry) (first uint64, err error)
	// Pending returns up to max records with seq > afterSeq, in seq order.
	Pending(ctx context.Context, afterSeq uint64, max int) ([]wire.Record, error)
	// Ack deletes every record with seq <= upTo if epoch is the current one; an ack for another
	// epoch is ignored, an ack above the highest appended seq fails with ErrAckAhead.
	Ack(ctx context.Context, epoch string, upTo uint64) error
	// Stats reports the outbox's current figures.
	Stats() Stats
	// Notify returns a channel that receives (coalesced) after records were appended.
	Notify() <-chan struct{}
	// Close releases the outbox. Records already appended stay durable.
	Close() error
}

// Entry is one record to append.
type Entry struct {
	Kind  string
	Class wire.Class
	Body  []byte
}

// Stats are an outbox's figures.
type Stats struct {
	Depth     int64         // records pending, tombstones included
	Bytes     int64         // their size as charged against MaxBytes
	MaxBytes  int64         // the cap
	Evicted   uint64        // telemetry records turned into tombstones, ever (this epoch)
	Refused   uint64        // appends refused with ErrFull, ever (this epoch)
	Full      bool          // records were refused and acks have not yet freed enough space
	OldestAge time.Duration // age of the oldest pending record on the device clock (0: empty)
}

// Options configure an outbox. The zero value is usable.
type Options struct {
	MaxBytes     int64            // size cap; 0: DefaultMaxBytes
	AlertReserve int64            // bytes below the cap kept for alerts and command results; 0: MaxBytes/64
	MaxGroup     int              // SQLite: most records in one group commit; 0: DefaultMaxGroup
	Now          func() time.Time // device clock; nil: time.Now
	Logger       *slog.Logger     // nil: discard
}

func (o Options) withDefaults() Options {
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.AlertReserve <= 0 {
		o.AlertReserve = o.MaxBytes / 64
	}
	if o.MaxGroup <= 0 {
		o.MaxGroup = DefaultMaxGroup
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// newEpoch returns a random epoch ID of 16 hex characters.
func newEpoch() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// check validates a record before it is queued.
func check(e Entry) error {
	if !wire.ValidKind(e.Kind) {
		return fmt.Errorf("%w: kind %q is not [a-z][a-z0-9._-]{0,63}", ErrInvalid, e.Kind)
	}
	if e.Class != wire.Telemetry && e.Class != wire.Business {
		return fmt.Errorf("%w: class %q is neither %q nor %q", ErrInvalid, e.Class, wire.Telemetry, wire.Business)
	}
	if len(e.Body) == 0 || len(e.Body) > wire.MaxRecordBytes {
		return fmt.Errorf("%w: %s body of %d bytes, want 1..%d", ErrInvalid, e.Kind, len(e.Body), wire.MaxRecordBytes)
	}
	if err := strictjson.Check(e.Body); err != nil {
		// The hub refuses a batch holding such a body: it would block the outbox.
		return fmt.Errorf("%w: %s body is not strict JSON: %w", ErrInvalid, e.Kind, err)
	}
	return nil
}

func checkAll(entries []Entry) error {
	if len(entries) == 0 {
		return fmt.Errorf("%w: empty batch", ErrInvalid)
	}
	for i, e := range entries {
		if err := check(e); err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
	}
	return nil
}

// size is what a record is charged against the cap.
func size(kind string, body []byte) int64 { return int64(RecordOverhead + len(kind) + len(body)) }

// priority records (alerts, command results) may use the reserve.
func priority(kind string, class wire.Class) bool {
	return class == wire.Business && (kind == wire.KindAlert || kind == wire.KindCmdResult)
}

func evictable(kind string, class wire.Class) bool {
	return class == wire.Telemetry && kind != KindEvicted
}

// tombstone returns the body of the tombstone replacing an evicted record and what evicting it frees.
func tombstone(kind string, sz int64) (body []byte, freed int64) {
	body = wire.Encode(Tombstone{Kind: kind, Bytes: int(sz)})
	return body, sz - size(KindEvicted, body)
}

// state is the bookkeeping both implementations share.
type state struct {
	next     uint64
	depth    int64
	bytes    int64
	evicted  uint64
	refused  uint64
	full     bool
	oldestTS int64 // Unix ms; 0: empty
}

// need is how many bytes must be freed before a record of sz bytes fits (<= 0: it fits).
func (s *state) need(o *Options, kind string, class wire.Class, sz int64) int64 {
	limit := o.MaxBytes
	if !priority(kind, class) {
		limit -= o.AlertReserve
	}
	return s.bytes + sz - limit
}

// cleared reports whether space is back after a refusal: below 90% of the non-reserved space.
func (s *state) cleared(o *Options) bool {
	return s.full && s.bytes <= (o.MaxBytes-o.AlertReserve)*9/10
}

func (s *state) stats(o *Options) Stats {
	st := Stats{Depth: s.depth, Bytes: s.bytes, MaxBytes: o.MaxBytes, Evicted: s.evicted, Refused: s.refused, Full: s.full}
	if s.oldestTS != 0 {
		st.OldestAge = max(0, o.Now().Sub(time.UnixMilli(s.oldestTS)))
	}
	return st
}

func alertBody(code string, o *Options) []byte {
	msg := fmt.Sprintf("outbox reached its cap of %d bytes: records are refused", o.MaxBytes)
	if code == AlertCleared {
		msg = "outbox has space again after being full"
	}
	return wire.Encode(wire.Alert{Code: code, Message: msg})
}

func notify(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
