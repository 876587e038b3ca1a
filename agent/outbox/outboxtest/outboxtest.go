// Package outboxtest is the conformance suite every outbox.Outbox implementation passes.
package outboxtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/agent/outbox"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// Factory opens a new, empty outbox with opts; the suite closes it (Close must be idempotent).
type Factory func(t *testing.T, opts outbox.Options) outbox.Outbox

// Clock is a settable device clock for Options.Now.
type Clock struct{ ms atomic.Int64 }

// NewClock returns a clock set to t.
func NewClock(t time.Time) *Clock { c := &Clock{}; c.ms.Store(t.UnixMilli()); return c }

// Now returns the clock's time.
func (c *Clock) Now() time.Time { return time.UnixMilli(c.ms.Load()) }

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) { c.ms.Add(d.Milliseconds()) }

// Run runs the conformance suite against the implementation open returns.
func Run(t *testing.T, open Factory) {
	mk := func(t *testing.T, opts outbox.Options) outbox.Outbox {
		t.Helper()
		ob := open(t, opts)
		t.Cleanup(func() { ob.Close() })
		return ob
	}
	t.Run("Empty", func(t *testing.T) { testEmpty(t, mk(t, outbox.Options{})) })
	t.Run("AppendAndPending", func(t *testing.T) { testAppendPending(t, mk(t, outbox.Options{})) })
	t.Run("BatchIsAtomic", func(t *testing.T) { testBatch(t, mk(t, outbox.Options{})) })
	t.Run("Invalid", func(t *testing.T) { testInvalid(t, mk(t, outbox.Options{})) })
	t.Run("Ack", func(t *testing.T) { testAck(t, mk(t, outbox.Options{})) })
	t.Run("EvictTelemetry", func(t *testing.T) {
		testEvict(t, mk(t, outbox.Options{MaxBytes: 8 << 10, AlertReserve: 1 << 10}))
	})
	t.Run("FullRefusesBusiness", func(t *testing.T) {
		testFull(t, mk(t, outbox.Options{MaxBytes: 8 << 10, AlertReserve: 1 << 10}))
	})
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, mk(t, outbox.Options{})) })
	t.Run("Notify", func(t *testing.T) { testNotify(t, mk(t, outbox.Options{})) })
	t.Run("Stats", func(t *testing.T) {
		clk := NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
		testStats(t, mk(t, outbox.Options{Now: clk.Now}), clk)
	})
	t.Run("Closed", func(t *testing.T) {
		ob := mk(t, outbox.Options{})
		if err := ob.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := ob.Append(t.Context(), "x", wire.Business, []byte(`{}`)); !errors.Is(err, outbox.ErrClosed) {
			t.Fatalf("Append after Close: %v, want ErrClosed", err)
		}
	})
}

// Body returns a JSON body of about n bytes tagged with i.
func Body(i, n int) []byte {
	pad := max(0, n-20)
	b, _ := json.Marshal(map[string]any{"i": i, "p": string(make([]byte, pad))})
	return b
}

// Contiguous fails t unless recs have seqs from, from+1, ... without gaps.
func Contiguous(t testing.TB, recs []wire.Record, from uint64) {
	t.Helper()
	for i, r := range recs {
		if r.Seq != from+uint64(i) {
			t.Fatalf("record %d has seq %d, want %d (gap or disorder)", i, r.Seq, from+uint64(i))
		}
	}
}

// All returns every pending record.
func All(t testing.TB, ob outbox.Outbox) []wire.Record {
	t.Helper()
	var out []wire.Record
	var after uint64
	for {
		recs, err := ob.Pending(context.Background(), after, 500)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			return out
		}
		out = append(out, recs...)
		after = recs[len(recs)-1].Seq
	}
}

func mustAppend(t testing.TB, ob outbox.Outbox, kind string, class wire.Class, body []byte) uint64 {
	t.Helper()
	seq, err := ob.Append(context.Background(), kind, class, body)
	if err != nil {
		t.Fatalf("Append %s: %v", kind, err)
	}
	return seq
}

func testEmpty(t *testing.T, ob outbox.Outbox) {
	e := ob.Epoch()
	if _, err := wire.DecodeAck(wire.Encode(wire.AckMsg{V: wire.Version, Epoch: e})); err != nil {
		t.Fatalf("epoch %q is not valid on the wire: %v", e, err)
	}
	if n := ob.NextSeq(); n != 1 {
		t.Fatalf("NextSeq = %d, want 1", n)
	}
	if recs := All(t, ob); len(recs) != 0 {
		t.Fatalf("empty outbox has %d pending", len(recs))
	}
	if s := ob.Stats(); s.Depth != 0 || s.Bytes != 0 || s.Full || s.OldestAge != 0 {
		t.Fatalf("empty stats %+v", s)
	}
}

func testAppendPending(t *testing.T, ob outbox.Outbox) {
	for i := 1; i <= 10; i++ {
		class := wire.Telemetry
		if i%2 == 0 {
			class = wire.Business
		}
		if seq := mustAppend(t, ob, "k"+fmt.Sprint(i), class, Body(i, 30)); seq != uint64(i) {
			t.Fatalf("Append %d returned seq %d", i, seq)
		}
	}
	if n := ob.NextSeq(); n != 11 {
		t.Fatalf("NextSeq = %d, want 11", n)
	}
	recs := All(t, ob)
	if len(recs) != 10 {
		t.Fatalf("%d pending, want 10", len(recs))
	}
	Contiguous(t, recs, 1)
	for i, r := range recs {
		n := i + 1
		if r.Kind != "k"+fmt.Sprint(n) || string(r.Body) != string(Body(n, 30)) || r.TS == 0 {
			t.Fatalf("record %d = %+v", n, r)
		}
		if want := map[bool]wire.Class{true: wire.Business, false: wire.Telemetry}[n%2 == 0]; r.Class != want {
			t.Fatalf("record %d class %q, want %q", n, r.Class, want)
		}
	}
	recs, err := ob.Pending(t.Context(), 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 {
		t.Fatalf("Pending(5, 3) returned %d", len(recs))
	}
	Contiguous(t, recs, 6)
	if recs, _ := ob.Pending(t.Context(), 10, 5); len(recs) != 0 {
		t.Fatalf("Pending after the last seq returned %d", len(recs))
	}
}

func testBatch(t *testing.T, ob outbox.Outbox) {
	mustAppend(t, ob, "a", wire.Business, []byte(`1`))
	first, err := ob.AppendBatch(t.Context(), []outbox.Entry{
		{Kind: "b", Class: wire.Business, Body: []byte(`{"x":1}`)},
		{Kind: "c", Class: wire.Telemetry, Body: []byte(`[2]`)},
		{Kind: "d", Class: wire.Business, Body: []byte(`"s"`)},
	})
	if err != nil || first != 2 {
		t.Fatalf("AppendBatch = %d, %v; want 2", first, err)
	}
	_, err = ob.AppendBatch(t.Context(), []outbox.Entry{
		{Kind: "e", Class: wire.Business, Body: []byte(`{}`)},
		{Kind: "f", Class: wire.Business, Body: []byte(`{bad`)},
	})
	if !errors.Is(err, outbox.ErrInvalid) {
		t.Fatalf("batch with a bad body: %v, want ErrInvalid", err)
	}
	if _, err := ob.AppendBatch(t.Context(), nil); !errors.Is(err, outbox.ErrInvalid) {
		t.Fatalf("empty batch: %v, want ErrInvalid", err)
	}
	recs := All(t, ob)
	if len(recs) != 4 || ob.NextSeq() != 5 {
		t.Fatalf("after a refused batch: %d pending, NextSeq %d; want 4, 5", len(recs), ob.NextSeq())
	}
	Contiguous(t, recs, 1)
}

func testInvalid(t *testing.T, ob outbox.Outbox) {
	for _, c := range []struct {
		kind  string
		class wire.Class
		body  string
	}{
		{"ok", wire.Business, `{"a":`},
		{"ok", wire.Business, ``},
		{"ok", wire.Business, `{} {}`},
		{"ok", wire.Business, "\xff"},
		{"", wire.Business, `{}`},
		{"Bad", wire.Business, `{}`},
		{"a/b", wire.Business, `{}`},
		{"ok", "x", `{}`},
		{"ok", wire.Telemetry, `"` + string(make([]byte, wire.MaxRecordBytes)) + `"`},
	} {
		_, err := ob.Append(t.Context(), c.kind, c.class, []byte(c.body))
		if !errors.Is(err, outbox.ErrInvalid) {
			t.Errorf("Append(%q, %q, %.20q) = %v, want ErrInvalid", c.kind, c.class, c.body, err)
		}
	}
	if ob.NextSeq() != 1 || ob.Stats().Depth != 0 {
		t.Fatalf("invalid appends changed the outbox: %+v", ob.Stats())
	}
}

func testAck(t *testing.T, ob outbox.Outbox) {
	ctx := t.Context()
	for i := 1; i <= 10; i++ {
		mustAppend(t, ob, "k", wire.Business, Body(i, 10))
	}
	if err := ob.Ack(ctx, ob.Epoch(), 4); err != nil {
		t.Fatal(err)
	}
	recs := All(t, ob)
	if len(recs) != 6 {
		t.Fatalf("after ack 4: %d pending", len(recs))
	}
	Contiguous(t, recs, 5)
	if err := ob.Ack(ctx, "other-epoch", 9); err != nil {
		t.Fatalf("ack for another epoch: %v, want ignored", err)
	}
	if err := ob.Ack(ctx, ob.Epoch(), 11); !errors.Is(err, outbox.ErrAckAhead) {
		t.Fatalf("ack above the last seq: %v, want ErrAckAhead", err)
	}
	if err := ob.Ack(ctx, ob.Epoch(), 2); err != nil {
		t.Fatalf("stale ack: %v", err)
	}
	if n := len(All(t, ob)); n != 6 {
		t.Fatalf("ignored acks deleted records: %d pending, want 6", n)
	}
	if err := ob.Ack(ctx, ob.Epoch(), 10); err != nil {
		t.Fatal(err)
	}
	if n, s := len(All(t, ob)), ob.Stats(); n != 0 || s.Depth != 0 || s.Bytes != 0 || s.OldestAge != 0 {
		t.Fatalf("after acking all: %d pending, stats %+v", n, s)
	}
	if seq := mustAppend(t, ob, "k", wire.Business, []byte(`{}`)); seq != 11 {
		t.Fatalf("seq after acking everything = %d, want 11", seq)
	}
}

func testEvict(t *testing.T, ob outbox.Outbox) {
	const n = 40
	for i := 1; i <= n; i++ {
		mustAppend(t, ob, "tele", wire.Telemetry, Body(i, 200))
		if i%10 == 0 {
			mustAppend(t, ob, "biz", wire.Business, Body(i, 50))
		}
	}
	s := ob.Stats()
	if s.Evicted == 0 || s.Bytes > s.MaxBytes || s.Full || s.Refused != 0 {
		t.Fatalf("stats after overfilling with telemetry: %+v", s)
	}
	recs := All(t, ob)
	if len(recs) != n+n/10 || int64(len(recs)) != s.Depth {
		t.Fatalf("%d pending (depth %d), want %d: eviction must keep tombstones", len(recs), s.Depth, n+n/10)
	}
	Contiguous(t, recs, 1)
	var tombs, live int
	for _, r := range recs {
		switch r.Kind {
		case outbox.KindEvicted:
			if live > 0 {
				t.Fatalf("tombstone at seq %d after live telemetry: not oldest-first", r.Seq)
			}
			var ts outbox.Tombstone
			if err := json.Unmarshal(r.Body, &ts); err != nil || ts.Kind != "tele" || ts.Bytes <= 0 {
				t.Fatalf("tombstone body %s: %v", r.Body, err)
			}
			tombs++
		case "tele":
			live++
		case "biz":
			if r.Class != wire.Business {
				t.Fatalf("biz record class %q", r.Class)
			}
		default:
			t.Fatalf("unexpected kind %q", r.Kind)
		}
	}
	if uint64(tombs) != s.Evicted || live == 0 {
		t.Fatalf("%d tombstones, %d live, stats %+v", tombs, live, s)
	}
}

func testFull(t *testing.T, ob outbox.Outbox) {
	ctx := t.Context()
	for i := 0; i < 5; i++ {
		mustAppend(t, ob, "tele", wire.Telemetry, Body(i, 300))
	}
	var err error
	var biz int
	for biz = 0; biz < 1000; biz++ {
		if _, err = ob.Append(ctx, "biz", wire.Business, Body(biz, 200)); err != nil {
			break
		}
	}
	if !errors.Is(err, outbox.ErrFull) {
		t.Fatalf("business appends never refused (%d): %v", biz, err)
	}
	s := ob.Stats()
	if !s.Full || s.Refused != 1 || s.Evicted != 5 || s.Bytes > s.MaxBytes {
		t.Fatalf("stats at the cap: %+v (want full, refused 1, 5 evicted)", s)
	}
	if _, err := ob.Append(ctx, "tele", wire.Telemetry, Body(0, 100)); !errors.Is(err, outbox.ErrFull) {
		t.Fatalf("telemetry with nothing to evict: %v, want ErrFull", err)
	}
	recs := All(t, ob)
	Contiguous(t, recs, 1)
	last := recs[len(recs)-1]
	var a wire.Alert
	if last.Kind != wire.KindAlert || last.Class != wire.Business || json.Unmarshal(last.Body, &a) != nil || a.Code != outbox.AlertFull {
		t.Fatalf("last record %+v %s, want an %s alert", last, last.Body, outbox.AlertFull)
	}
	if n := countBiz(recs); n != biz {
		t.Fatalf("%d business records pending, %d appended: business was evicted", n, biz)
	}
	// Command results may use the reserve.
	mustAppend(t, ob, wire.KindCmdResult, wire.Business, []byte(`{"id":"c1","state":"accepted"}`))
	if err := ob.Ack(ctx, ob.Epoch(), last.Seq); err != nil {
		t.Fatal(err)
	}
	if s := ob.Stats(); s.Full {
		t.Fatalf("still full after acking everything: %+v", s)
	}
	recs = All(t, ob)
	if len(recs) != 2 || recs[1].Kind != wire.KindAlert || !json.Valid(recs[1].Body) {
		t.Fatalf("after ack: %+v, want the cmd.result and an %s alert", recs, outbox.AlertCleared)
	}
	if err := json.Unmarshal(recs[1].Body, &a); err != nil || a.Code != outbox.AlertCleared {
		t.Fatalf("alert %s, want %s", recs[1].Body, outbox.AlertCleared)
	}
	mustAppend(t, ob, "biz", wire.Business, Body(0, 200))
}

func countBiz(recs []wire.Record) int {
	n := 0
	for _, r := range recs {
		if r.Kind == "biz" {
			n++
		}
	}
	return n
}

func testConcurrent(t *testing.T, ob outbox.Outbox) {
	const workers, per = 16, 40
	var wg sync.WaitGroup
	seqs := make([][]uint64, workers)
	errs := make(chan error, workers+1)
	for w := range workers {
		wg.Go(func() {
			for i := range per {
				var seq uint64
				var err error
				if i%4 == 3 {
					seq, err = ob.AppendBatch(context.Background(), []outbox.Entry{
						{Kind: "w", Class: wire.Business, Body: Body(w*1000+i, 10)},
						{Kind: "w2", Class: wire.Business, Body: Body(w*1000+i, 10)}})
				} else {
					seq, err = ob.Append(context.Background(), "w", wire.Business, Body(w*1000+i, 10))
				}
				if err != nil {
					errs <- err
					return
				}
				seqs[w] = append(seqs[w], seq)
			}
		})
	}
	wg.Go(func() { // a concurrent reader and acker
		deadline := time.Now().Add(10 * time.Second)
		for ob.NextSeq() < 100 && time.Now().Before(deadline) {
			if _, err := ob.Pending(context.Background(), 0, 10); err != nil {
				errs <- err
				return
			}
			time.Sleep(time.Millisecond)
		}
		if err := ob.Ack(context.Background(), ob.Epoch(), 50); err != nil {
			errs <- err
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	total := uint64(workers * (per + per/4))
	if n := ob.NextSeq(); n != total+1 {
		t.Fatalf("NextSeq = %d, want %d", n, total+1)
	}
	seen := map[uint64]bool{}
	for _, ss := range seqs {
		for _, s := range ss {
			if seen[s] {
				t.Fatalf("seq %d returned twice", s)
			}
			seen[s] = true
		}
	}
	recs := All(t, ob)
	if len(recs) != int(total)-50 {
		t.Fatalf("%d pending, want %d", len(recs), total-50)
	}
	Contiguous(t, recs, 51)
}

func testNotify(t *testing.T, ob outbox.Outbox) {
	select {
	case <-ob.Notify():
		t.Fatal("notified before any append")
	default:
	}
	mustAppend(t, ob, "k", wire.Telemetry, []byte(`{}`))
	select {
	case <-ob.Notify():
	case <-time.After(5 * time.Second):
		t.Fatal("no notification after Append")
	}
}

func testStats(t *testing.T, ob outbox.Outbox, clk *Clock) {
	mustAppend(t, ob, "a", wire.Telemetry, []byte(`{"x":1}`))
	clk.Advance(time.Minute)
	mustAppend(t, ob, "b", wire.Business, []byte(`{"y":2}`))
	clk.Advance(time.Minute)
	s := ob.Stats()
	want := int64(2*outbox.RecordOverhead + 2 + 14)
	if s.Depth != 2 || s.Bytes != want || s.OldestAge != 2*time.Minute {
		t.Fatalf("stats %+v, want depth 2, bytes %d, oldest 2m", s, want)
	}
	if err := ob.Ack(t.Context(), ob.Epoch(), 1); err != nil {
		t.Fatal(err)
	}
	if s := ob.Stats(); s.Depth != 1 || s.OldestAge != time.Minute {
		t.Fatalf("stats after ack %+v", s)
	}
}
