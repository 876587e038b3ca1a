package storetest

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// JournalStore is what the suite of store.Journal needs.
type JournalStore interface {
	store.Journal
	store.Devices
	store.Records
}

// RunJournal runs the suite of store.Journal.
func RunJournal(t *testing.T, open func(t *testing.T) JournalStore) {
	suite[JournalStore]{
		{"AdvanceAndEvents", testJournalAdvance},
		{"ConcurrentAdvance", testJournalConcurrent},
		{"Behind", testJournalsBehind},
	}.run(t, open)
}

func head(dev string, cursor int64, idx uint64) store.JournalHead {
	return store.JournalHead{DeviceID: dev, Cursor: cursor, Epoch: "e1", Chain: "0123456789abcdef", Index: idx,
		Hash: "ab", Checkpoint: idx / 2, Entries: int64(idx), UpdatedAt: T0.Add(time.Duration(idx) * time.Second)}
}

func testJournalAdvance(t *testing.T, s JournalStore) {
	ctx := t.Context()
	Enroll(t, s, "sz", "k1")
	Enroll(t, s, "sz", "k2")
	_, err := s.JournalHead(ctx, "k1")
	wantErr(t, "JournalHead before any", err, store.ErrNotFound)
	wantErr(t, "AdvanceJournal of an unknown device", s.AdvanceJournal(ctx, head("nope", 1, 1), 0, nil), store.ErrNotFound)
	wantErr(t, "AdvanceJournal without a cursor", s.AdvanceJournal(ctx, head("k1", 0, 1), 0, nil), store.ErrInvalid)
	wantErr(t, "AdvanceJournal with a kindless event", s.AdvanceJournal(ctx, head("k1", 1, 1), 0, []store.SecurityEvent{{}}), store.ErrInvalid)

	if err := s.AdvanceJournal(ctx, head("k1", 5, 1), 0, nil); err != nil {
		t.Fatal(err)
	}
	gap := store.SecurityEvent{Kind: "journal.gap", RecordID: 9, Index: 4, Detail: "entries 2..3 missing", At: T0}
	h := head("k1", 9, 4)
	h.Events = 1
	if err := s.AdvanceJournal(ctx, h, 5, []store.SecurityEvent{gap}); err != nil {
		t.Fatal(err)
	}
	// A verifier that read an old state writes nothing.
	stale := store.SecurityEvent{Kind: "journal.gap", RecordID: 9, Index: 4, Detail: "twice", At: T0}
	wantErr(t, "AdvanceJournal from a stale cursor", s.AdvanceJournal(ctx, head("k1", 9, 4), 5, []store.SecurityEvent{stale}), store.ErrConflict)
	wantErr(t, "AdvanceJournal of a head that exists from 0", s.AdvanceJournal(ctx, head("k1", 9, 4), 0, nil), store.ErrConflict)
	got, err := s.JournalHead(ctx, "k1")
	if err != nil || got != h {
		t.Fatalf("JournalHead = %+v, %v; want %+v", got, err, h)
	}
	if err := s.AdvanceJournal(ctx, head("k2", 3, 1), 0, []store.SecurityEvent{{Kind: "journal.restarted", RecordID: 3, Index: 1, At: T0}}); err != nil {
		t.Fatal(err)
	}
	all, err := s.ListSecurityEvents(ctx, store.SecurityEventFilter{})
	if err != nil || len(all) != 2 || all[0].DeviceID != "k1" || all[1].DeviceID != "k2" || all[0].ID >= all[1].ID {
		t.Fatalf("ListSecurityEvents = %+v, %v", all, err)
	}
	e := all[0]
	if e.Kind != gap.Kind || e.RecordID != 9 || e.Index != 4 || e.Detail != gap.Detail || !e.At.Equal(T0) {
		t.Fatalf("event %+v, want %+v", e, gap)
	}
	for _, tc := range []struct {
		f    store.SecurityEventFilter
		want int
	}{
		{store.SecurityEventFilter{DeviceID: "k2"}, 1},
		{store.SecurityEventFilter{AfterID: all[0].ID}, 1},
		{store.SecurityEventFilter{Limit: 1}, 1},
		{store.SecurityEventFilter{DeviceID: "k3"}, 0},
	} {
		if got, err := s.ListSecurityEvents(ctx, tc.f); err != nil || len(got) != tc.want {
			t.Errorf("ListSecurityEvents(%+v) = %d events, %v; want %d", tc.f, len(got), err, tc.want)
		}
	}
}

// Verifiers racing from the same state: exactly one advances, the others get ErrConflict and
// write no event.
func testJournalConcurrent(t *testing.T, s JournalStore) {
	ctx := t.Context()
	Enroll(t, s, "sz", "k1")
	for round, from := range []int64{0, 10} {
		var won atomic.Int32
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Go(func() {
				ev := []store.SecurityEvent{{Kind: "journal.gap", RecordID: int64(i), At: T0}}
				err := s.AdvanceJournal(ctx, head("k1", 10*int64(round+1), uint64(round+1)), from, ev)
				switch {
				case err == nil:
					won.Add(1)
				case !isConflict(err):
					t.Errorf("AdvanceJournal: %v", err)
				}
			})
		}
		wg.Wait()
		if won.Load() != 1 {
			t.Fatalf("round %d: %d verifiers advanced", round, won.Load())
		}
	}
	if evs, _ := s.ListSecurityEvents(ctx, store.SecurityEventFilter{}); len(evs) != 2 {
		t.Fatalf("%d events written, want 2", len(evs))
	}
}

// JournalsBehind names exactly the devices whose last journal record (of any epoch) is past their
// cursor: not those with none, with other kinds only, or verified up to their last.
func testJournalsBehind(t *testing.T, s JournalStore) {
	ctx := t.Context()
	for _, id := range []string{"k1", "k2", "k3", "k4"} {
		Enroll(t, s, "sz", id)
	}
	behind := func(want ...string) {
		t.Helper()
		got, err := s.JournalsBehind(ctx)
		if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("JournalsBehind = %v, %v; want %v", got, err, want)
		}
	}
	behind()
	batch := func(dev, epoch string, seq uint64, kinds ...string) {
		t.Helper()
		b := store.Batch{DeviceID: dev, Epoch: epoch, RecvTS: T0}
		for i, k := range kinds {
			b.Records = append(b.Records, store.IncomingRecord{Record: wire.Record{Seq: seq + uint64(i), Kind: k, Class: wire.Business, TS: T0.UnixMilli(), Body: []byte(`{}`)}})
		}
		commit(t, s, b)
	}
	batch("k1", "e1", 1, wire.KindJournal, "heartbeat") // a journal record, then another kind
	batch("k2", "e1", 1, "heartbeat")
	batch("k3", "e1", 1, wire.KindJournal)
	batch("k4", "e1", 1, wire.KindJournal)
	behind("k1", "k3", "k4")

	last := func(dev string) int64 {
		recs, err := s.ListRecords(ctx, store.RecordFilter{DeviceID: dev, Kind: wire.KindJournal})
		if err != nil || len(recs) == 0 {
			t.Fatalf("ListRecords(%s) = %v, %v", dev, recs, err)
		}
		return recs[len(recs)-1].ID
	}
	if err := s.AdvanceJournal(ctx, head("k1", last("k1"), 1), 0, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.AdvanceJournal(ctx, head("k3", last("k3"), 1), 0, nil); err != nil {
		t.Fatal(err)
	}
	behind("k4")
	batch("k3", "e2", 1, wire.KindJournal) // a new epoch (the kiosk's data wiped)
	batch("k1", "e1", 3, "heartbeat")
	behind("k3", "k4")
}

func isConflict(err error) bool { return errors.Is(err, store.ErrConflict) }
