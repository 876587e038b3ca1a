package rollup

import (
	"fmt"
	"math"
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

func FuzzDecodeSketch(f *testing.F) {
	var s Sketch
	s.Add(1)
	s.Add(2)
	f.Add(s.Encode())
	f.Add([]byte{1, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeSketch(b)
		if err != nil {
			return
		}
		s2, err := DecodeSketch(s.Encode())
		if err != nil || s2.Count() != s.Count() {
			t.Fatalf("round trip: %v, %d != %d", err, s2.Count(), s.Count())
		}
		s.Add(99)
		_ = s.Count()
	})
}
