package wire

import (
	"encoding/json"
	"strconv"

	"github.com/kioskfleet/kioskfleet/pkg/strictjson"
)

// AppendBatch appends the JSON encoding of b to dst. It is the agent's hot path: unlike
// json.Marshal it copies record bodies as they are instead of compacting them (it only checks that
// they are strict JSON, as DecodeBatch wants them). Fields outside their documented character sets
// fall back to json.Marshal, so the result is always valid JSON that DecodeBatch reads back as b.
// A body that is not strict JSON (strictjson) is an error.
func AppendBatch(dst []byte, b Batch) ([]byte, error) {
	fallback := !plain(b.Epoch)
	for i, r := range b.Records {
		if err := strictjson.Check(r.Body); err != nil {
			return dst, malformed("record %d (seq %d): body: %v", i, r.Seq, err)
		}
		fallback = fallback || !plain(r.Kind) || !plain(string(r.Class))
	}
	if fallback {
		m, err := json.Marshal(b)
		if err != nil {
			return dst, malformed("%v", err)
		}
		return append(dst, m...), nil
	}
	dst = append(dst, `{"v":`...)
	dst = strconv.AppendInt(dst, int64(b.V), 10)
	dst = append(dst, `,"epoch":"`...)
	dst = append(dst, b.Epoch...)
	dst = append(dst, `","records":[`...)
	for i, r := range b.Records {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"seq":`...)
		dst = strconv.AppendUint(dst, r.Seq, 10)
		dst = append(dst, `,"kind":"`...)
		dst = append(dst, r.Kind...)
		dst = append(dst, `","class":"`...)
		dst = append(dst, r.Class...)
		dst = append(dst, `","ts":`...)
		dst = strconv.AppendInt(dst, r.TS, 10)
		dst = append(dst, `,"body":`...)
		dst = append(dst, r.Body...)
		dst = append(dst, '}')
	}
	return append(dst, "]}"...), nil
}

// plain reports whether s needs no JSON escaping and is one of the protocol's token forms.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}
