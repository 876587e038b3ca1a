// Package mask hides personal data in the JSON the console and fleetctl show: the values of
// identity fields (an ID card in a kiosk assertion, an ID number or its holder's name in a
// journal entry, command output or a desired state) are masked wherever they appear; everything
// else is shown as it came. What is masked is decided by the field's name, never by what a value
// looks like: a figure with many digits (a CPU share, a timestamp) is not an ID number.
package mask

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"unicode/utf8"
)

// identityFields are the names (lower case, without '_' and '-') of JSON members whose value is a
// citizen's identity: the kiosk assertion's id_card (wire.IDCard), and the names Chinese
// government systems give the resident ID number (身份证号 sfzh, 证件号码 zjhm) and its holder.
var identityFields = map[string]bool{
	"idcard": true, "idnumber": true, "idno": true, "identitynumber": true, "identitycard": true,
	"citizenid": true, "residentid": true, "certno": true, "certnumber": true, "sfzh": true,
	"zjhm": true, "holder": true, "holdername": true, "cardholder": true,
}

// IsIdentityField reports whether a JSON member of this name holds identity data.
func IsIdentityField(name string) bool {
	n := strings.NewReplacer("_", "", "-", "").Replace(strings.ToLower(name))
	return identityFields[n]
}

// JSON returns raw, compacted, with the value of every identity field masked (all of it, when it
// is an object or array). Member order is kept. It returns false when raw is not one valid JSON
// value.
func JSON(raw []byte) ([]byte, bool) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var out bytes.Buffer
	type frame struct {
		object bool
		n      int  // members or elements written
		value  bool // object: the next token is a member's value
	}
	var stack []frame
	masked := -1 // stack depth below which every scalar is masked; -1: none
	maskNext := false
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil || (len(stack) == 0 && out.Len() > 0) { // a second top-level value
			return nil, false
		}
		closing := tok == json.Delim('}') || tok == json.Delim(']')
		if n := len(stack); n > 0 && !closing {
			f := &stack[n-1]
			switch {
			case f.object && f.value:
				out.WriteByte(':')
			case f.n > 0:
				out.WriteByte(',')
			}
		}
		hide := maskNext || masked >= 0
		maskNext = false
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				if hide && masked < 0 {
					masked = len(stack)
				}
				stack = append(stack, frame{object: t == '{'})
				out.WriteByte(byte(t))
				continue // the container counts once it is closed
			default:
				stack = stack[:len(stack)-1]
				if masked == len(stack) {
					masked = -1
				}
				out.WriteByte(byte(t))
			}
		case string:
			if f := top(stack); f != nil && f.object && !f.value {
				writeString(&out, t)
				f.value = true
				maskNext = masked < 0 && IsIdentityField(t)
				continue
			}
			if hide {
				t = maskString(t)
			}
			writeString(&out, t)
		default: // number, bool, null
			if hide && tok != nil {
				writeString(&out, "***")
			} else {
				b, _ := json.Marshal(t)
				out.Write(b)
			}
		}
		if f := top(stack); f != nil {
			f.n++
			f.value = false
		}
	}
	if len(stack) > 0 || out.Len() == 0 {
		return nil, false
	}
	return out.Bytes(), true
}

func top[F any](s []F) *F {
	if len(s) == 0 {
		return nil
	}
	return &s[len(s)-1]
}

func writeString(w *bytes.Buffer, s string) {
	e := json.NewEncoder(w)
	e.SetEscapeHTML(false)
	_ = e.Encode(s)
	w.Truncate(w.Len() - 1) // Encode's newline
}

// maskString keeps the region code (the first six digits) of an ID number (GB 11643: 17 digits
// and a check character, or the old 15 digits) and masks the rest; any other text is masked
// whole, keeping its length.
func maskString(s string) string {
	n := utf8.RuneCountInString(s)
	if (n == 18 || n == 15) && isDigits(s[:6]) {
		return s[:6] + strings.Repeat("*", n-6)
	}
	return strings.Repeat("*", min(n, 32))
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
