package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCheck(t *testing.T) {
	many := func(n int, last string) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			b.WriteString(`"k` + strings.Repeat("x", i) + `":1,`)
		}
		return b.String() + last + "}"
	}
	for in, want := range map[string]error{
		`{}`: nil, `[]`: nil, `0`: nil, `-0.5e+10`: nil, `"é\u00e9\ud83d\ude00"`: nil, ` {"a":[1,{"a":2}],"b":null} `: nil,
		`{"a":{"b":1},"c":{"b":2}}`: nil, `{"A\u0301":1,"\u00c1":2}`: nil, many(40, `"other":2`): nil, `{"\\":1,"\/":2}`: nil,

		"\"\xff\"": ErrInvalidUTF8, "{\"a\":\"\xc3\"}": ErrInvalidUTF8, "{\"\xed\xa0\x80\":1}": ErrInvalidUTF8,
		`"\ud800"`: ErrLoneSurrogate, `"\udc00x"`: ErrLoneSurrogate, `{"\ud83dx":1}`: ErrLoneSurrogate, `"\ud800\u0041"`: ErrLoneSurrogate,

		`{"a":1,"a":2}`: ErrDuplicateKey, `{"a":1,"\u0061":2}`: ErrDuplicateKey, `{"seq":1,"SEQ":2}`: ErrDuplicateKey,
		`[{"x":{"y":[{"k":1,"k":1}]}}]`: ErrDuplicateKey, many(40, `"kxxx":2`): ErrDuplicateKey, many(40, `"KXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX":2`): ErrDuplicateKey,
		`{"k":1,"\u212a":2}`: ErrDuplicateKey, // KELVIN SIGN folds to k, as encoding/json matches it

		``: ErrSyntax, `{`: ErrSyntax, `{"a"}`: ErrSyntax, `{"a":1,}`: ErrSyntax, `[1,]`: ErrSyntax, `01`: ErrSyntax, `1.`: ErrSyntax,
		`1e`: ErrSyntax, `tru`: ErrSyntax, `{} {}`: ErrSyntax, "\"a\tb\"": ErrSyntax, `"\x"`: ErrSyntax, `"\u12"`: ErrSyntax,
		`nul`: ErrSyntax, `{"a":1 "b":2}`: ErrSyntax, `'a'`: ErrSyntax,
		strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1): ErrTooDeep,
	} {
		err := Check([]byte(in))
		if !errors.Is(err, want) || (want == nil) != (err == nil) {
			t.Errorf("Check(%.60q) = %v, want %v", in, err, want)
		}
		var e *Error
		if err != nil && (!errors.As(err, &e) || e.Offset < 0 || e.Offset > len(in)) {
			t.Errorf("Check(%.60q): %v is no *Error with an offset in the input", in, err)
		}
	}
	err := Check([]byte(`{"id":"a", "id":"b"}`))
	if err == nil || err.Error() != `duplicate key at byte 11: "id"` {
		t.Errorf("message %q", err)
	}
	if err := Check([]byte(`{"name":1,"Name":2}`)); err == nil || !strings.Contains(err.Error(), `"name" and "Name" differ only in case`) {
		t.Errorf("message %q", err)
	}
	if err := Check([]byte("{\"a\":\"ok\xff\"}")); err == nil || err.Error() != "invalid UTF-8 at byte 8" {
		t.Errorf("message %q", err)
	}
}

func TestNoAllocations(t *testing.T) {
	b := []byte(`{"v":1,"epoch":"e1","records":[{"seq":1,"kind":"k","class":"t","ts":5,"body":{"a":[1,2,{"b":"c"}]}}]}`)
	if n := testing.AllocsPerRun(100, func() { _ = Check(b) }); n != 0 {
		t.Errorf("%v allocations per Check of a small batch", n)
	}
}

var surrogateEscape = regexp.MustCompile(`\\u[dD][89a-fA-F]`)

// reference finds duplicate keys (equal under strings.EqualFold) with encoding/json's tokenizer.
func reference(b []byte) (dup bool, err error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	type frame struct {
		object bool
		keys   []string
		key    bool // the next string token is a key
	}
	var stack []*frame
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				if top != nil && top.object {
					top.key = true
				}
				stack = append(stack, &frame{object: v == '{', key: v == '{'})
			default:
				stack = stack[:len(stack)-1]
			}
			continue
		case string:
			if top != nil && top.object && top.key {
				for _, k := range top.keys {
					if strings.EqualFold(k, v) {
						return true, nil
					}
				}
				top.keys = append(top.keys, v)
				top.key = false
				continue
			}
		}
		if top != nil && top.object {
			top.key = true
		}
	}
}

// FuzzCheck compares Check with encoding/json: what Check accepts is valid UTF-8 JSON without
// duplicates; valid UTF-8 JSON without duplicates or surrogate escapes is accepted; a refusal for
// a duplicate is a real duplicate.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{`{"a":1,"b":[true,false,null,"x"]}`, `{"a":1,"A":2}`, `{"a":{"a":{"a":1}}}`, "\"\xff\"",
		`"\ud83d\ude00"`, `"\ud800"`, `[1e5,-0.1,{"\u0061":1,"a":2}]`, `{"k":1,"\u212a":2}`, `{} x`, `{"x`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		err := Check(b)
		valid := json.Valid(b) && utf8.Valid(b)
		if err == nil && !valid {
			t.Fatalf("accepted %q, which is no valid UTF-8 JSON", b)
		}
		if !valid {
			return
		}
		dup, rerr := reference(b)
		if rerr != nil {
			t.Fatalf("reference tokenizer on valid JSON %q: %v", b, rerr)
		}
		switch {
		case errors.Is(err, ErrDuplicateKey) && !dup:
			t.Fatalf("%q: %v, but the reference finds no duplicate", b, err)
		case err == nil && dup:
			t.Fatalf("%q accepted, but the reference finds a duplicate", b)
		case err != nil && !dup && !surrogateEscape.Match(b) && !errors.Is(err, ErrTooDeep):
			t.Fatalf("%q refused: %v", b, err)
		}
	})
}

// BenchmarkCheck checks a typical uplink batch: 100 records of 200-byte bodies.
func BenchmarkCheck(b *testing.B) {
	body := `{"p":"` + strings.Repeat("x", 192) + `"}`
	var sb strings.Builder
	sb.WriteString(`{"v":1,"epoch":"0123456789abcdef","records":[`)
	for i := range 100 {
		if i > 0 {
			sb.WriteString(",")
		}
		sb.WriteString(`{"seq":1,"kind":"journal","class":"b","ts":1764100000000,"body":` + body + `}`)
	}
	sb.WriteString("]}")
	p := []byte(sb.String())
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		if err := Check(p); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/100, "ns/record")
}
