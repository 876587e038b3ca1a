package wire

import (
	"strings"
	"testing"
)

// BenchmarkDecodeBatch decodes a 100-record batch of 200-byte bodies, the hub's hot path.
func BenchmarkDecodeBatch(b *testing.B) {
	body := []byte(`{"p":"` + strings.Repeat("x", 192) + `"}`)
	recs := make([]Record, 100)
	for i := range recs {
		recs[i] = Record{Seq: uint64(i + 1), Kind: "journal", Class: Business, TS: 1764100000000, Body: body}
	}
	p := Encode(Batch{V: Version, Epoch: "0123456789abcdef", Records: recs})
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeBatch(p); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/100, "ns/record")
}
