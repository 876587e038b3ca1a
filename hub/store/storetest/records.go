package storetest

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

func testCommitAndList(t *testing.T, s RecordStore) {
	Enroll(t, s, "sz", "k1")
	b := NewBatch("k1", "e1", 1, 3, 200)
	b.RecvTS = T0.Add(time.Second)
	b.Records[1].Kind, b.Records[1].Class, b.Records[1].Body = "journal.entry", wire.Business, json.RawMessage(`{"n":2}`)
	m := commit(t, s, b)
	if !slices.Equal(m, []store.Watermark{{DeviceID: "k1", Epoch: "e1", UpTo: 3}}) {
		t.Fatalf("watermarks = %+v", m)
	}
	wantMark(t, s, "k1", "e1", 3)
	wantMark(t, s, "k1", "other", 0)
	wantMark(t, s, "unknown", "e1", 0)
	rs := records(t, s, store.RecordFilter{DeviceID: "k1"})
	if len(rs) != 3 {
		t.Fatalf("%d records, want 3", len(rs))
	}
	r := rs[1]
	if r.DeviceID != "k1" || r.Epoch != "e1" || r.Seq != 2 || r.Kind != "journal.entry" || r.Class != wire.Business ||
		string(r.Body) != `{"n":2}` || !r.DeviceTS.Equal(time.UnixMilli(T0.UnixMilli()+2)) || !r.RecvTS.Equal(T0.Add(time.Second)) {
		t.Fatalf("record = %+v", r)
	}
	if !(rs[0].ID < rs[1].ID && rs[1].ID < rs[2].ID) {
		t.Fatalf("ids not increasing: %d %d %d", rs[0].ID, rs[1].ID, rs[2].ID)
	}
	if got := records(t, s, store.RecordFilter{}); len(got) != 3 {
		t.Fatalf("hub-wide list: %d records", len(got))
	}
	if got := records(t, s, store.RecordFilter{DeviceID: "k1", Kind: "journal.entry"}); len(got) != 1 || got[0].Seq != 2 {
		t.Fatalf("kind filter: %s", seqs(got))
	}
	if got := records(t, s, store.RecordFilter{DeviceID: "nobody"}); len(got) != 0 {
		t.Fatalf("unknown device: %s", seqs(got))
	}
	_, err := s.CommitBatches(t.Context(), []store.Batch{{DeviceID: "k1", Epoch: "e1", Records: []store.IncomingRecord{{}}}})
	wantErr(t, "seq 0", err, store.ErrInvalid)
	_, err = s.CommitBatches(t.Context(), []store.Batch{{DeviceID: "k1", Records: NewBatch("k1", "e1", 4, 1, 10).Records}})
	wantErr(t, "batch without epoch", err, store.ErrInvalid)
	wantMark(t, s, "k1", "e1", 3) // a refused call commits nothing
}

func testCommitIdempotent(t *testing.T, s RecordStore) {
	ctx := t.Context()
	Enroll(t, s, "sz", "k1")
	hb := NewBatch("k1", "e1", 1, 2, 50)
	hb.Records[1].Kind, hb.Records[1].Effect.Health = wire.KindHeartbeat, json.RawMessage(`{"uptimeS":1}`)
	hb.RecvTS = T0.Add(time.Minute)
	// The same batch twice in one call and again in a later call: stored and applied once.
	commit(t, s, hb, hb)
	again := hb
	again.RecvTS = T0.Add(time.Hour)
	m := commit(t, s, again)
	if m[0].UpTo != 2 {
		t.Fatalf("watermark after duplicate = %d", m[0].UpTo)
	}
	if rs := records(t, s, store.RecordFilter{}); seqs(rs) != span("e1", 1, 2) {
		t.Fatalf("records after duplicates: %s", seqs(rs))
	}
	d, err := s.GetDevice(ctx, "k1")
	if err != nil || string(d.Health) != `{"uptimeS":1}` || !d.HealthAt.Equal(T0.Add(time.Minute)) {
		t.Fatalf("health = %s at %v (%v); want the first commit's", d.Health, d.HealthAt, err)
	}
	// Overlapping batch: 2..4 after 1..2 stores 3 and 4 only.
	commit(t, s, NewBatch("k1", "e1", 2, 3, 50))
	if rs := records(t, s, store.RecordFilter{DeviceID: "k1"}); seqs(rs) != span("e1", 1, 4) {
		t.Fatalf("records after overlap: %s", seqs(rs))
	}
}

func testGapThenFill(t *testing.T, s RecordStore) {
	Enroll(t, s, "sz", "k1")
	if m := commit(t, s, NewBatch("k1", "e1", 1, 10, 100)); m[0].UpTo != 10 {
		t.Fatalf("watermark %d, want 10", m[0].UpTo)
	}
	// 21..30 arrive before 11..20: never acked over the gap, twice.
	for range 2 {
		if m := commit(t, s, NewBatch("k1", "e1", 21, 10, 100)); m[0].UpTo != 10 {
			t.Fatalf("watermark over a gap: %d, want 10", m[0].UpTo)
		}
	}
	if m := commit(t, s, NewBatch("k1", "e1", 31, 5, 100)); m[0].UpTo != 10 {
		t.Fatalf("watermark over a gap: %d, want 10", m[0].UpTo)
	}
	// Partial fill 11..15 moves the watermark to 15 only.
	if m := commit(t, s, NewBatch("k1", "e1", 11, 5, 100)); m[0].UpTo != 15 {
		t.Fatalf("watermark after partial fill: %d, want 15", m[0].UpTo)
	}
	// Filling 16..20 jumps over everything contiguous.
	if m := commit(t, s, NewBatch("k1", "e1", 16, 5, 100)); m[0].UpTo != 35 {
		t.Fatalf("watermark after fill: %d, want 35", m[0].UpTo)
	}
	wantMark(t, s, "k1", "e1", 35)
	rs := records(t, s, store.RecordFilter{DeviceID: "k1"})
	if seqs(rs) != span("e1", 1, 35) {
		t.Fatalf("records: %s", seqs(rs))
	}
	// Per-device order holds in the hub-wide insertion order too.
	all := records(t, s, store.RecordFilter{})
	if seqs(all) != span("e1", 1, 35) {
		t.Fatalf("hub-wide order: %s", seqs(all))
	}
	// Gap and fill inside one call.
	m := commit(t, s, NewBatch("k1", "e1", 40, 2, 10), NewBatch("k1", "e1", 36, 4, 10))
	if len(m) != 1 || m[0].UpTo != 41 {
		t.Fatalf("gap+fill in one call: %+v", m)
	}
}

func testEpochs(t *testing.T, s RecordStore) {
	Enroll(t, s, "sz", "k1")
	commit(t, s, NewBatch("k1", "old", 1, 3, 20))
	m := commit(t, s, NewBatch("k1", "new", 1, 2, 20))
	if m[0] != (store.Watermark{DeviceID: "k1", Epoch: "new", UpTo: 2}) {
		t.Fatalf("new epoch watermark: %+v", m)
	}
	commit(t, s, NewBatch("k1", "old", 4, 1, 20)) // a late record of the old epoch
	wantMark(t, s, "k1", "old", 4)
	wantMark(t, s, "k1", "new", 2)
	rs := records(t, s, store.RecordFilter{DeviceID: "k1"})
	if want := span("old", 1, 4) + " " + span("new", 1, 2); seqs(rs) != want {
		t.Fatalf("device order = %s, want %s (epoch first seen, then seq)", seqs(rs), want)
	}
}

func testWatermarkOrder(t *testing.T, s RecordStore) {
	for _, d := range []string{"k1", "k2", "k3"} {
		Enroll(t, s, "sz", d)
	}
	m := commit(t, s,
		NewBatch("k3", "e", 1, 2, 10),
		NewBatch("k1", "e", 1, 1, 10),
		NewBatch("k3", "e", 3, 2, 10),
		NewBatch("k2", "e", 2, 1, 10), // gap
		NewBatch("k1", "f", 1, 1, 10),
	)
	want := []store.Watermark{{DeviceID: "k3", Epoch: "e", UpTo: 4}, {DeviceID: "k1", Epoch: "e", UpTo: 1},
		{DeviceID: "k2", Epoch: "e", UpTo: 0}, {DeviceID: "k1", Epoch: "f", UpTo: 1}}
	if !slices.Equal(m, want) {
		t.Fatalf("watermarks = %+v, want %+v", m, want)
	}
	if m := commit(t, s); len(m) != 0 {
		t.Fatalf("empty commit: %+v", m)
	}
}

func testListRecordsPaging(t *testing.T, s RecordStore) {
	Enroll(t, s, "sz", "k1")
	Enroll(t, s, "sz", "k2")
	commit(t, s, NewBatch("k1", "a", 1, 5, 10), NewBatch("k2", "a", 1, 5, 10))
	commit(t, s, NewBatch("k1", "b", 1, 5, 10), NewBatch("k1", "a", 6, 2, 10))
	var got []store.Record
	f := store.RecordFilter{DeviceID: "k1", Limit: 3}
	for range 10 {
		page := records(t, s, f)
		if len(page) == 0 {
			break
		}
		if len(page) > 3 {
			t.Fatalf("page of %d > limit 3", len(page))
		}
		got = append(got, page...)
		f.AfterID = page[len(page)-1].ID
	}
	if want := span("a", 1, 7) + " " + span("b", 1, 5); seqs(got) != want {
		t.Fatalf("paged device records = %s, want %s", seqs(got), want)
	}
	var all []store.Record
	f = store.RecordFilter{Limit: 4}
	for range 10 {
		page := records(t, s, f)
		if len(page) == 0 {
			break
		}
		all = append(all, page...)
		f.AfterID = page[len(page)-1].ID
	}
	if len(all) != 17 {
		t.Fatalf("hub-wide paging: %d records, want 17", len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i].ID <= all[i-1].ID {
			t.Fatalf("hub-wide list not in id order at %d", i)
		}
	}
}

func testHealth(t *testing.T, s RecordStore) {
	ctx := t.Context()
	Enroll(t, s, "sz", "k1")
	b := NewBatch("k1", "e", 1, 2, 10)
	b.RecvTS = T0.Add(time.Minute)
	b.Records[0].Effect.Health = json.RawMessage(`{"uptimeS":1}`)
	b.Records[1].Effect.Peripherals = json.RawMessage(`{"printer":"ok"}`)
	commit(t, s, b)
	d, _ := s.GetDevice(ctx, "k1")
	if string(d.Health) != `{"uptimeS":1}` || string(d.Peripherals) != `{"printer":"ok"}` ||
		!d.HealthAt.Equal(T0.Add(time.Minute)) || !d.PeriphAt.Equal(T0.Add(time.Minute)) {
		t.Fatalf("health %s at %v, peripherals %s at %v", d.Health, d.HealthAt, d.Peripherals, d.PeriphAt)
	}
	// A later heartbeat (seq 5) arrives before an older one (seq 3): the later one stays.
	late := NewBatch("k1", "e", 5, 1, 10)
	late.RecvTS = T0.Add(2 * time.Minute)
	late.Records[0].Effect.Health = json.RawMessage(`{"uptimeS":5}`)
	early := NewBatch("k1", "e", 3, 2, 10)
	early.RecvTS = T0.Add(3 * time.Minute)
	early.Records[0].Effect.Health = json.RawMessage(`{"uptimeS":3}`)
	commit(t, s, late)
	commit(t, s, early)
	wantMark(t, s, "k1", "e", 5)
	d, _ = s.GetDevice(ctx, "k1")
	if string(d.Health) != `{"uptimeS":5}` {
		t.Fatalf("health = %s, want the later record's", d.Health)
	}
}

func testConcurrency(t *testing.T, s RecordStore) {
	ctx := t.Context()
	const devices, batches, per = 4, 20, 10
	for i := range devices {
		Enroll(t, s, "sz", fmt.Sprintf("k%d", i))
	}
	var wg sync.WaitGroup
	// Two committers per device send the same batches (duplicates) in different orders, while
	// readers list and check watermarks.
	for i := range devices {
		id := fmt.Sprintf("k%d", i)
		for w := range 2 {
			wg.Go(func() {
				for j := range batches {
					k := j
					if w == 1 {
						k = batches - 1 - j
					}
					if _, err := s.CommitBatches(ctx, []store.Batch{NewBatch(id, "e", uint64(k*per+1), per, 100)}); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Go(func() {
			var last uint64
			for range batches {
				m, err := s.Watermark(ctx, id, "e")
				if err != nil || m < last {
					t.Errorf("watermark %d after %d (%v): went backwards", m, last, err)
					return
				}
				last = m
				if _, err := s.ListRecords(ctx, store.RecordFilter{DeviceID: id, Limit: 50}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for i := range devices {
		id := fmt.Sprintf("k%d", i)
		wantMark(t, s, id, "e", batches*per)
		if rs := records(t, s, store.RecordFilter{DeviceID: id}); seqs(rs) != span("e", 1, batches*per) {
			t.Fatalf("%s records: %s", id, seqs(rs))
		}
	}
}

// testLastSeen: a committed batch advances its device's last-seen to its receive time, and never
// backwards.
func testLastSeen(t *testing.T, s RecordStore) {
	Enroll(t, s, "sz", "k1")
	lastSeen := func() time.Time {
		t.Helper()
		d, err := s.GetDevice(t.Context(), "k1")
		if err != nil {
			t.Fatal(err)
		}
		return d.LastSeen
	}
	b := NewBatch("k1", "e1", 1, 2, 10)
	b.RecvTS = T0.Add(7 * time.Minute)
	commit(t, s, b)
	if got := lastSeen(); !got.Equal(T0.Add(7 * time.Minute)) {
		t.Fatalf("last seen after a batch = %v, want %v", got, T0.Add(7*time.Minute))
	}
	b = NewBatch("k1", "e1", 3, 1, 10)
	b.RecvTS = T0.Add(6 * time.Minute)
	commit(t, s, b)
	if got := lastSeen(); !got.Equal(T0.Add(7 * time.Minute)) {
		t.Fatalf("last seen moved backwards with an older batch: %v", got)
	}
}
