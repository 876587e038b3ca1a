package mask

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestJSON(t *testing.T) {
	for in, want := range map[string]string{
		// By field: the ID number keeps its region code, everything else under the field is hidden.
		`{"id_card":{"number":"11010519491231002X","name":"张三"},"kiosk":"k-1"}`: `{"id_card":{"number":"110105************","name":"**"},"kiosk":"k-1"}`,
		`{"visit":{"sfzh":"110105491231002","note":"ok"}}`:                      `{"visit":{"sfzh":"110105*********","note":"ok"}}`,
		`[{"idNumber":110105194912310021},{"holderName":null}]`:                 `[{"idNumber":"***"},{"holderName":null}]`,
		`{"ID-Card":[1,"a",{"x":true}],"after":1}`:                              `{"ID-Card":["***","*",{"x":"***"}],"after":1}`,
		// Not by looks: figures with many digits stay as they are, as do other fields.
		`{"host":{"cpuPercent":12.293682123456789,"since":1795723800000000000}}`: `{"host":{"cpuPercent":12.293682123456789,"since":1795723800000000000}}`,
		`{"number":"11010519491231002X"}`:                                        `{"number":"11010519491231002X"}`,
		` [ 1 , "a<b" ] `:                                                        `[1,"a<b"]`,
		`"x"`:                                                                    `"x"`,
		`{}`:                                                                     `{}`,
	} {
		got, ok := JSON([]byte(in))
		if !ok || string(got) != want {
			t.Errorf("JSON(%s) = %s %v, want %s", in, got, ok, want)
		}
	}
	for _, bad := range []string{``, `{`, `{"a" 1}`, `1 2`, `{} []`, `[1,]`, "\xff"} {
		if got, ok := JSON([]byte(bad)); ok {
			t.Errorf("JSON(%q) = %s, want refused", bad, got)
		}
	}
}

// FuzzJSON: valid JSON in, valid JSON of the same shape out, with no identity value left.
func FuzzJSON(f *testing.F) {
	for _, s := range []string{`{"id_card":{"number":"11010519491231002X","name":"张三"}}`, `[{"sfzh":[1,{"a":"b"}]},2,"x"]`,
		`{"a":{"b":[{"idno":"x"}]},"c":null}`, `{"x":1e400}`, `"\u0000"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := JSON(b)
		if ok != json.Valid(b) {
			t.Fatalf("ok %v for valid=%v input %q", ok, json.Valid(b), b)
		}
		if !ok {
			return
		}
		var out any
		d := json.NewDecoder(bytes.NewReader(got))
		d.UseNumber()
		if err := d.Decode(&out); err != nil {
			t.Fatalf("output %s is not JSON: %v", got, err)
		}
		var walk func(v any, hidden bool)
		walk = func(v any, hidden bool) {
			switch x := v.(type) {
			case map[string]any:
				for k, e := range x {
					walk(e, hidden || IsIdentityField(k))
				}
			case []any:
				for _, e := range x {
					walk(e, hidden)
				}
			case string:
				if hidden && strings.Trim(x[min(6, len(x)):], "*") != "" {
					t.Fatalf("identity value %q shown in %s", x, got)
				}
			case json.Number, bool:
				if hidden {
					t.Fatalf("identity value %v shown in %s", x, got)
				}
			}
		}
		walk(out, false)
	})
}
