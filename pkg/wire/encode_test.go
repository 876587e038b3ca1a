package wire

import (
	"bytes"
	"encoding/json"
	"testing"
)

func FuzzAppendBatch(f *testing.F) {
	f.Add("e1", uint64(1), "heartbeat", "t", int64(5), []byte(`{"a":1}`))
	f.Add("E/1", uint64(2), "k\"", "b", int64(-1), []byte(` [1, 2] `))
	f.Add("e", uint64(3), "x", "b", int64(0), []byte(`not json`))
	f.Fuzz(func(t *testing.T, epoch string, seq uint64, kind, class string, ts int64, body []byte) {
		b := Batch{V: Version, Epoch: epoch, Records: []Record{{Seq: seq, Kind: kind, Class: Class(class), TS: ts, Body: body}}}
		got, err := AppendBatch(nil, b)
		if !json.Valid(body) {
			if err == nil {
				t.Fatalf("invalid body accepted: %q", body)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if !json.Valid(got) {
			t.Fatalf("AppendBatch produced invalid JSON: %s", got)
		}
		var x, y any
		if err := json.Unmarshal(got, &x); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(Encode(b), &y); err != nil {
			t.Fatal(err)
		}
		gx, _ := json.Marshal(x)
		gy, _ := json.Marshal(y)
		if !bytes.Equal(gx, gy) {
			t.Fatalf("AppendBatch differs from json.Marshal:\n%s\n%s", got, Encode(b))
		}
	})
}

func TestAppendBatchRoundTrip(t *testing.T) {
	b := Batch{V: Version, Epoch: "0123abcd", Records: []Record{
		{Seq: 7, Kind: "journal", Class: Business, TS: 1764100000000, Body: []byte(`{"x":"中文"}`)},
		{Seq: 8, Kind: "heartbeat", Class: Telemetry, TS: 1764100000001, Body: []byte(`{}`)},
	}}
	enc, err := AppendBatch(nil, b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeBatch(enc)
	if err != nil || len(got.Records) != 2 || got.Records[0].Seq != 7 || string(got.Records[0].Body) != `{"x":"中文"}` {
		t.Fatalf("round trip: %+v %v", got, err)
	}
}

func BenchmarkAppendBatch(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 192)
	body = append(append([]byte(`{"p":"`), body...), `"}`...)
	recs := make([]Record, 100)
	for i := range recs {
		recs[i] = Record{Seq: uint64(i + 1), Kind: "journal", Class: Business, TS: 1764100000000, Body: body}
	}
	batch := Batch{V: Version, Epoch: "0123456789abcdef", Records: recs}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = AppendBatch(buf[:0], batch)
	}
}
