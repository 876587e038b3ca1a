// Package journal verifies the kiosks' transaction journals at the hub. Every citizen-facing
// transaction at a kiosk is a wire.JournalEntry in a hash chain with signed checkpoints (written
// by agent/journal, carried by the outbox as journal.entry records). The verifier follows each
// kiosk's journal records in the store, in the kiosk's order, checks every entry's hash, its link
// to the entry before and every checkpoint's signature against the kiosk's enrolled certificate,
// and raises a security event (store.SecurityEvent, shown by the API) for a tampered, missing,
// reordered or malformed entry or a forged checkpoint.
//
// Ingest tells it which devices committed journal records (it is an ingest.Hook); it reads the
// records back from the store from its own cursor, kept per device in the store (store.Journal)
// and advanced by compare-and-set, so a crash, a duplicate delivery or two hub replicas verify
// every entry exactly once.
package journal

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// Kinds of security events.
const (
	EventTampered  = "journal.tampered"          // an entry's hash is not the digest of its content
	EventBreak     = "journal.break"             // an entry's prev is not the hash of the entry before
	EventGap       = "journal.gap"               // entries are missing
	EventReordered = "journal.reordered"         // an entry came after a later one, or twice
	EventForged    = "journal.forged-checkpoint" // a checkpoint's signature does not verify with the kiosk's key
	EventMalformed = "journal.malformed"         // a journal record that is not an entry
	EventRestarted = "journal.restarted"         // a new chain began (the kiosk's data was wiped)
)

// Store is what the verifier reads and writes.
type Store interface {
	store.Journal
	store.Records
	GetDevice(ctx context.Context, id string) (store.Device, error)
}

// Verifier verifies journals. Create it with New, hook it into ingest (Committed), run it with Run.
type Verifier struct {
	st   Store
	log  *slog.Logger
	now  func() time.Time
	page int

	mu    sync.Mutex
	dirty map[string]bool
	kick  chan struct{}
}

// New returns a Verifier. log may be nil.
func New(st Store, log *slog.Logger) *Verifier {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Verifier{st: st, log: log, now: time.Now, page: 500, dirty: map[string]bool{}, kick: make(chan struct{}, 1)}
}

// Committed implements ingest.Hook: it notes the devices whose batches hold journal records.
func (v *Verifier) Committed(batches []store.Batch) {
	n := 0
	v.mu.Lock()
	for _, b := range batches {
		for _, r := range b.Records {
			if r.Kind == wire.KindJournal {
				v.dirty[b.DeviceID] = true
				n++
				break
			}
		}
	}
	v.mu.Unlock()
	if n > 0 {
		select {
		case v.kick <- struct{}{}:
		default:
		}
	}
}

// Run verifies what was committed while no verifier ran (the devices whose journals are behind
// their cursor, found in one query: at a hub start amid a fleet's reconnect storm, a pass over
// every device cost two queries each), then what ingest reports, until ctx is done.
func (v *Verifier) Run(ctx context.Context) error {
	behind, err := v.st.JournalsBehind(ctx)
	if err != nil && ctx.Err() == nil {
		v.log.Error("journal: devices behind not listed; verifying as records arrive", "err", err)
	}
	for _, id := range behind {
		v.verifyLogged(ctx, id)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-v.kick:
		}
		v.mu.Lock()
		devs := v.dirty
		v.dirty = map[string]bool{}
		v.mu.Unlock()
		for id := range devs {
			v.verifyLogged(ctx, id)
		}
	}
}

func (v *Verifier) verifyLogged(ctx context.Context, id string) {
	if err := v.Verify(ctx, id); err != nil && ctx.Err() == nil {
		// The cursor did not move: the next commit of the device (or the next start) retries.
		v.log.Error("journal: verification failed", "device", id, "err", err)
	}
}

// Verify verifies the device's journal records committed since its cursor.
func (v *Verifier) Verify(ctx context.Context, deviceID string) error {
	var key *ecdsa.PublicKey
	keyLoaded := false
	for conflicts := 0; ; {
		h, err := v.st.JournalHead(ctx, deviceID)
		if errors.Is(err, store.ErrNotFound) {
			h = store.JournalHead{DeviceID: deviceID}
		} else if err != nil {
			return err
		}
		recs, err := v.st.ListRecords(ctx, store.RecordFilter{DeviceID: deviceID, Kind: wire.KindJournal, AfterID: h.Cursor, Limit: v.page})
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			return nil
		}
		if !keyLoaded {
			key, err = v.deviceKey(ctx, deviceID)
			if err != nil {
				return err
			}
			keyLoaded = true
		}
		from := h.Cursor
		var events []store.SecurityEvent
		for _, r := range recs {
			events = append(events, check(&h, r, key)...)
		}
		for i := range events {
			events[i].DeviceID, events[i].At = deviceID, v.now().UTC()
		}
		h.Events += int64(len(events))
		h.UpdatedAt = v.now().UTC()
		err = v.st.AdvanceJournal(ctx, h, from, events)
		if errors.Is(err, store.ErrConflict) && conflicts < 10 {
			conflicts++ // verified meanwhile by another replica: read its state and go on from there
			continue
		}
		if err != nil {
			return err
		}
		for _, e := range events {
			v.log.Warn("journal: security event", "device", deviceID, "kind", e.Kind, "index", e.Index, "record", e.RecordID, "detail", e.Detail)
		}
		if len(recs) < v.page {
			return nil
		}
	}
}

// deviceKey returns the public key of the device's enrolled certificate (nil when it has none
// that is ECDSA: its checkpoints are then reported as not verifiable).
func (v *Verifier) deviceKey(ctx context.Context, id string) (*ecdsa.PublicKey, error) {
	d, err := v.st.GetDevice(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("journal: device %s: %w", id, err)
	}
	blk, _ := pem.Decode(d.CertPEM)
	if blk == nil {
		return nil, nil
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, nil
	}
	k, _ := cert.PublicKey.(*ecdsa.PublicKey)
	return k, nil
}

// check verifies one record against the head and moves the head to it. It returns the security
// events the record shows. After a break the head follows the entry as it claims to be, so that
// one altered entry raises one event, not one for every entry after it.
func check(h *store.JournalHead, r store.Record, key *ecdsa.PublicKey) []store.SecurityEvent {
	var out []store.SecurityEvent
	event := func(kind string, index uint64, format string, a ...any) {
		out = append(out, store.SecurityEvent{Kind: kind, RecordID: r.ID, Index: index, Detail: fmt.Sprintf(format, a...)})
	}
	newEpoch := h.Epoch != "" && r.Epoch != h.Epoch
	h.Cursor, h.Epoch = r.ID, r.Epoch
	e, err := wire.DecodeJournalEntry(r.Body)
	if err != nil {
		event(EventMalformed, 0, "record %d (seq %d) is not a journal entry: %v", r.ID, r.Seq, err)
		return out
	}
	if e.VerifyHash() != nil {
		event(EventTampered, e.Index, "entry %d: its content does not match its hash: it was altered after it was written", e.Index)
	}
	switch {
	case h.Chain == "" && e.Index == 1:
		// the device's first entry
	case h.Chain == "":
		event(EventGap, e.Index, "entries 1..%d of chain %s never arrived: the first entry seen is %d", e.Index-1, e.Chain, e.Index)
	case e.Chain != h.Chain && e.Index == 1 && newEpoch:
		event(EventRestarted, 1, "a new journal chain %s began with a new outbox epoch (the kiosk's data was reset); chain %s ended at entry %d", e.Chain, h.Chain, h.Index)
	case e.Chain != h.Chain:
		event(EventBreak, e.Index, "entry %d belongs to chain %s, but the kiosk's chain is %s at entry %d", e.Index, e.Chain, h.Chain, h.Index)
	case e.Index <= h.Index:
		event(EventReordered, e.Index, "entry %d arrived after entry %d: entries were reordered or replayed", e.Index, h.Index)
		return out // the head stays where it was
	case e.Index > h.Index+1:
		event(EventGap, e.Index, "entries %d..%d are missing (entry %d follows entry %d)", h.Index+1, e.Index-1, e.Index, h.Index)
	case e.Prev != h.Hash:
		event(EventBreak, e.Index, "entry %d does not follow entry %d: its prev is not that entry's hash (an entry was altered or replaced)", e.Index, h.Index)
	}
	if e.Sig != "" {
		if err := e.VerifyCheckpoint(key); err != nil {
			event(EventForged, e.Index, "checkpoint at entry %d: the signature does not verify with the kiosk's enrolled key", e.Index)
		} else if e.VerifyHash() == nil {
			h.Checkpoint = e.Index
		}
	}
	h.Chain, h.Index, h.Hash = e.Chain, e.Index, e.Hash
	h.Entries++
	return out
}
