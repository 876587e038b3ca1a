package storetest

import (
	"fmt"
	"sync/atomic"
	"testing"

	"pgregory.net/rapid"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

var modelDevice atomic.Int64

// testCommitModel checks CommitBatches against a model: for random sequences of calls, each a
// random group of batches (arbitrary ranges of seqs, so duplicates, overlaps and gaps), the
// returned and stored watermark is the contiguous prefix of everything sent, and the device's
// records are exactly 1..watermark, once each, in order.
func testCommitModel(t *testing.T, s RecordStore) {
	rapid.Check(t, func(rt *rapid.T) {
		dev := fmt.Sprintf("m%d", modelDevice.Add(1))
		sent := map[uint64]bool{}
		var want uint64
		calls := rapid.IntRange(1, 6).Draw(rt, "calls")
		for range calls {
			n := rapid.IntRange(1, 4).Draw(rt, "batches")
			group := make([]store.Batch, n)
			for i := range group {
				from := rapid.Uint64Range(1, 40).Draw(rt, "from")
				size := rapid.IntRange(1, 12).Draw(rt, "size")
				group[i] = NewBatch(dev, "e", from, size, 16)
				for j := range size {
					sent[from+uint64(j)] = true
				}
			}
			for sent[want+1] {
				want++
			}
			m, err := s.CommitBatches(t.Context(), group)
			if err != nil {
				rt.Fatal(err)
			}
			if len(m) != 1 || m[0].UpTo != want {
				rt.Fatalf("watermarks %+v, want %d", m, want)
			}
		}
		rs, err := s.ListRecords(t.Context(), store.RecordFilter{DeviceID: dev})
		if err != nil {
			rt.Fatal(err)
		}
		if got := seqs(rs); want > 0 && got != span("e", 1, want) || want == 0 && got != "" {
			rt.Fatalf("records %s, want 1..%d", got, want)
		}
	})
}
