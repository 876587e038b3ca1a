package wire

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// strictBatch is the general decoder alone, the reference scanBatch must agree with.
func strictBatch(b []byte) (Batch, error) {
	var m Batch
	err := decode(b, &m)
	return m, err
}

func sameBatch(a, b Batch) error {
	if a.V != b.V || a.Epoch != b.Epoch || len(a.Records) != len(b.Records) {
		return fmt.Errorf("v %d/%d, epoch %q/%q, %d/%d records", a.V, b.V, a.Epoch, b.Epoch, len(a.Records), len(b.Records))
	}
	for i, r := range a.Records {
		s := b.Records[i]
		if r.Seq != s.Seq || r.Kind != s.Kind || r.Class != s.Class || r.TS != s.TS || !bytes.Equal(r.Body, s.Body) {
			return fmt.Errorf("record %d: %+v != %+v (bodies %q, %q)", i, r, s, r.Body, s.Body)
		}
	}
	return nil
}

// agentBatches are payloads as agents send them (AppendBatch), with bodies of every JSON shape.
func agentBatches(t testing.TB) [][]byte {
	bodies := []string{`{}`, `[]`, `null`, `true`, `false`, `0`, `-1.5e+10`, `"x"`, `{"p":"` + strings.Repeat("x", 192) + `"}`,
		`{"a":[1,2,{"b":null}],"c":"\u00e9\n\"q\"","d":-0.0,"e":1E-3}`, `{"name":"张三"}`, ` { "sp" : [ 1 , 2 ] } `}
	var out [][]byte
	for n := 1; n <= len(bodies); n++ {
		b := Batch{V: Version, Epoch: "0123456789abcdef-x"}
		for i := range n {
			kind := "journal"
			if i%3 == 2 {
				kind = KindHeartbeat
			}
			b.Records = append(b.Records, Record{Seq: 1<<63 + uint64(i), Kind: kind, Class: Business, TS: int64(-i) * 1764100000000,
				Body: []byte(bodies[i])})
		}
		p, err := AppendBatch(nil, b)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p, Encode(b))
	}
	return out
}

func TestScanBatchTakesAgentBatches(t *testing.T) {
	for _, p := range agentBatches(t) {
		got, ok := fastBatch(p)
		if !ok {
			t.Fatalf("the fast path deferred an agent's batch: %s", p)
		}
		want, err := strictBatch(p)
		if err != nil {
			t.Fatalf("strict decoder refused %s: %v", p, err)
		}
		if err := sameBatch(got, want); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}
}

// TestScanBatchDefers: what is not in the plain form goes to encoding/json, valid or not, and
// DecodeBatch answers as encoding/json does.
func TestScanBatchDefers(t *testing.T) {
	rec := `{"seq":1,"kind":"k","class":"t","ts":5,"body":{}}`
	for _, p := range []string{
		`{"V":1,"epoch":"e","records":[` + rec + `]}`,       // key case
		`{"v":1,"v":1,"epoch":"e","records":[` + rec + `]}`, // duplicate key
		`{"v":1,"epoch":"\u0065","records":[` + rec + `]}`,  // escape
		`{"v":1.0,"epoch":"e","records":[` + rec + `]}`,     // fraction
		`{"v":01,"epoch":"e","records":[` + rec + `]}`,      // leading zero
		`{"v":2,"epoch":"e","records":[` + rec + `]}`,       // version
		`{"v":1,"epoch":"e","records":[` + rec + `]}]`,      // trailing ]
		`{"v":1,"epoch":"e","records":[` + rec + `]} x`,     // trailing data
		`{"v":1,"epoch":"e","records":[` + rec + `],"x":1}`, // unknown key
		`{"v":1,"epoch":"e","records":[{"seq":1,"kind":"k","class":"t","ts":5e0,"body":{}}]}`,
		`{"v":1,"epoch":"e","records":[{"seq":-1,"kind":"k","class":"t","ts":5,"body":{}}]}`,
		`{"v":1,"epoch":"e","records":[{"seq":18446744073709551616,"kind":"k","class":"t","ts":5,"body":{}}]}`,
		`{"v":1,"epoch":"e","records":[{"seq":1,"kind":"k","class":"t","ts":9223372036854775808,"body":{}}]}`,
		`{"v":1,"epoch":"e","records":[{"seq":1,"kind":"k","class":"t","ts":5,"body":{"a":"` + "\x01" + `"}}]}`,
		`{"v":1,"epoch":"e","records":[{"seq":1,"kind":"k","class":"t","ts":5,"body":{"a":1,}}]}`,
		`{"v":1,"epoch":"e","records":[{"seq":1,"kind":"k","class":"t","ts":5,"body":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}]}`,
		`{"v":1,"epoch":"e","records":null}`,
		`{"v":1,"epoch":"e","records":[` + rec + `,]}`,
	} {
		if _, ok := scanBatch([]byte(p)); ok {
			t.Errorf("scanBatch took %s", p)
		}
		got, gerr := DecodeBatch([]byte(p))
		want, werr := strictBatch([]byte(p))
		if werr == nil {
			// The strict decoder alone does not validate; DecodeBatch must still agree with it.
			if gerr == nil {
				if err := sameBatch(got, want); err != nil {
					t.Errorf("%s: %v", p, err)
				}
			}
			continue
		}
		if gerr == nil || gerr.Error() != werr.Error() {
			t.Errorf("%s: DecodeBatch says %v, encoding/json %v", p, gerr, werr)
		}
	}
	// Still valid after the detour: a deep body is accepted.
	p := `{"v":1,"epoch":"e","records":[{"seq":1,"kind":"k","class":"t","ts":5,"body":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}]}`
	if _, err := DecodeBatch([]byte(p)); err != nil {
		t.Errorf("%s: %v", p, err)
	}
}

// TestFastBatchStrict: what strictjson refuses in a body, the fast path leaves to the general
// decoder, which refuses it.
func TestFastBatchStrict(t *testing.T) {
	for _, body := range []string{`{"a":1,"a":2}`, `{"seq":1,"SEQ":2}`, `{"a":{"b":1,"\u0062":2}}`, "\"\xff\"", `"\ud800"`} {
		p := []byte(`{"v":1,"epoch":"e","records":[{"seq":1,"kind":"k","class":"t","ts":5,"body":` + body + `}]}`)
		if _, ok := fastBatch(p); ok {
			t.Errorf("fastBatch took %q", p)
		}
		if _, err := DecodeBatch(p); err == nil {
			t.Errorf("DecodeBatch took %q", p)
		}
	}
}

// FuzzScanBatch: whatever the fast path accepts, the general decoder accepts with the same value.
func FuzzScanBatch(f *testing.F) {
	for _, p := range agentBatches(f) {
		f.Add(p)
	}
	f.Add([]byte(`{"v":1,"epoch":"e","records":[{"seq":1,"kind":"k","class":"t","ts":-0,"body":{"a":"\ud83d\ude00"}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := fastBatch(b)
		if !ok {
			return
		}
		want, err := strictBatch(b)
		if err != nil {
			t.Fatalf("the fast path took what the general decoder refuses (%v): %q", err, b)
		}
		if err := sameBatch(got, want); err != nil {
			t.Fatalf("%q: %v", b, err)
		}
	})
}

// TestScanStringEveryOffset puts each byte that ends or breaks a string at every offset of a long
// one: the eight-byte steps of scanner.string must stop at it as the byte loop would.
func TestScanStringEveryOffset(t *testing.T) {
	for _, c := range []byte{'"', '\\', 0x00, 0x1f, 0x20, 0x7f, 0x80, 0xff} {
		for at := range 40 {
			body := []byte(strings.Repeat("x", 40))
			body[at] = c
			p := []byte(`{"v":1,"epoch":"e","records":[{"seq":1,"kind":"k","class":"t","ts":5,"body":"` + string(body) + `"}]}`)
			got, gok := fastBatch(p)
			want, err := strictBatch(p)
			if gok && err != nil {
				t.Fatalf("byte %#x at %d: the fast path took what the general decoder refuses: %v", c, at, err)
			}
			if gok {
				if err := sameBatch(got, want); err != nil {
					t.Fatalf("byte %#x at %d: %v", c, at, err)
				}
			}
			if wantOK := c >= 0x20 && c < 0x80 && c != '"' && c != '\\'; gok != wantOK {
				t.Fatalf("byte %#x at %d: fastBatch ok %v, want %v", c, at, gok, wantOK)
			}
		}
	}
}

// FuzzScanAck: whatever the ack fast path accepts, the general decoder accepts with the same
// value; the hub's own acks take the fast path.
func FuzzScanAck(f *testing.F) {
	for _, a := range []AckMsg{{V: Version, Epoch: "0123456789abcdef-x", UpTo: 1<<64 - 1}, {V: Version, Epoch: "e"}} {
		p := Encode(a)
		if got, ok := fastAck(p); !ok || got != a {
			f.Fatalf("fastAck(%s) = %+v, %v: want %+v", p, got, ok, a)
		}
		f.Add(p)
	}
	for _, p := range []string{` {"upTo":5 , "v":1,"epoch":"e"} `, `{"v":1,"epoch":"e","upTo":5,"upto":6}`, `{"v":1,"UpTo":5}`,
		`{"v":1,"epoch":"\u0065","upTo":5}`, `{"v":1,"upTo":05}`, `{"v":1,"upTo":18446744073709551616}`, `{"v":2,"upTo":1}`} {
		f.Add([]byte(p))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := fastAck(b)
		if !ok {
			return
		}
		var want AckMsg
		if err := decode(b, &want); err != nil {
			t.Fatalf("the fast path took what the general decoder refuses (%v): %q", err, b)
		}
		if got != want {
			t.Fatalf("%q: fast %+v, general %+v", b, got, want)
		}
	})
}
