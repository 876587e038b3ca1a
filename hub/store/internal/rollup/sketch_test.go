package rollup

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// TestSketchExactSmall: up to SparseMax distinct hashes, however added, merged and encoded, the
// count is exact.
func TestSketchExactSmall(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ids := rapid.SliceOf(rapid.IntRange(0, 300)).Draw(t, "ids")
		split := rapid.IntRange(0, len(ids)).Draw(t, "split")
		var a, b Sketch
		want := map[int]bool{}
		for i, id := range ids {
			h := Hash(fmt.Sprint("p", id))
			if i < split {
				a.Add(h)
			} else {
				b.Add(h)
			}
			want[id] = true
		}
		a2, err := DecodeSketch(a.Encode())
		if err != nil {
			t.Fatal(err)
		}
		a2.Merge(b)
		got := a2.Count()
		if len(want) <= SparseMax && got != int64(len(want)) {
			t.Fatalf("count %d, want %d", got, len(want))
		}
		if len(want) > SparseMax && got <= SparseMax {
			t.Fatalf("count %d for %d distinct", got, len(want))
		}
	})
}

// TestSketchLarge: beyond SparseMax the estimate stays within 5 %.
func TestSketchLarge(t *testing.T) {
	for _, n := range []int{300, 2000, 50000, 400000} {
		var s Sketch
		for i := range n {
			s.Add(Hash(fmt.Sprint("citizen-", i)))
			if i%3 == 0 {
				s.Add(Hash(fmt.Sprint("citizen-", i/2))) // duplicates change nothing
			}
		}
		s2, err := DecodeSketch(s.Encode())
		if err != nil {
			t.Fatal(err)
		}
		if e := math.Abs(float64(s2.Count()-int64(n))) / float64(n); e > 0.05 {
			t.Errorf("n=%d: estimate %d (error %.1f%%)", n, s2.Count(), 100*e)
		}
	}
}

// MergeEncoded merges stored bytes as Merge merges the decoded sketch, sparse and dense alike.
func TestMergeEncoded(t *testing.T) {
	small, large := Sketch{}, Sketch{}
	for i := range uint64(100) {
		small.Add(i*0x9e3779b97f4a7c15 + 1)
	}
	for i := range uint64(5000) {
		large.Add(i*0xbf58476d1ce4e5b9 + 3)
	}
	for _, into := range []Sketch{{}, small, large} {
		for _, o := range []Sketch{{}, small, large} {
			want, got := into, into
			want.sparse, got.sparse = slices.Clone(into.sparse), slices.Clone(into.sparse)
			want.dense, got.dense = slices.Clone(into.dense), slices.Clone(into.dense)
			want.Merge(o)
			if err := got.MergeEncoded(o.Encode()); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Encode(), want.Encode()) {
				t.Errorf("%d into %d: MergeEncoded gave count %d, Merge %d", o.Count(), into.Count(), got.Count(), want.Count())
			}
		}
	}
	if err := small.MergeEncoded([]byte{1, 1, 0}); err != ErrCorrupt {
		t.Errorf("corrupt dense bytes: %v, want ErrCorrupt", err)
	}
}

func FuzzDecodeSketch(f *testing.F) {
	var s Sketch
	s.Add(1)
	s.Add(2)
	f.Add(s.Encode())
	f.Add([]byte{1, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		// MergeEncoded takes exactly the bytes DecodeSketch takes, and merges the same sketch.
		var into Sketch
		into.Add(7)
		s, err := DecodeSketch(b)
		if errM := into.MergeEncoded(b); (errM == nil) != (err == nil) {
			t.Fatalf("MergeEncoded: %v, DecodeSketch: %v", errM, err)
		}
		if err != nil {
			if into.Count() != 1 {
				t.Fatalf("corrupt bytes changed the sketch: count %d", into.Count())
			}
			return
		}
		want := Sketch{}
		want.Add(7)
		want.Merge(s)
		if into.Count() != want.Count() {
			t.Fatalf("MergeEncoded count %d, Merge %d", into.Count(), want.Count())
		}
		s2, err := DecodeSketch(s.Encode())
		if err != nil || s2.Count() != s.Count() {
			t.Fatalf("round trip: %v, %d != %d", err, s2.Count(), s.Count())
		}
		s.Add(99)
		_ = s.Count()
	})
}
