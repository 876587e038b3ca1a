package bulk

import (
	"bytes"
	"encoding/json"
	"reflect"
)

// mergePatch applies a JSON merge patch (RFC 7396 §2) to a JSON object: a member of the patch
// that is null removes the member, an object is merged into the member recursively, anything
// else replaces it. Both must be JSON objects (the desired state is one; check ensures the patch
// is). The result's members are sorted by name.
func mergePatch(target, patch json.RawMessage) (json.RawMessage, error) {
	var t, p map[string]json.RawMessage
	if err := json.Unmarshal(target, &t); err != nil || t == nil {
		t = map[string]json.RawMessage{} // RFC 7396 §2: a target that is not an object is replaced by {}
	}
	if err := json.Unmarshal(patch, &p); err != nil {
		return nil, err
	}
	for k, v := range p {
		switch {
		case bytes.Equal(bytes.TrimSpace(v), []byte("null")):
			delete(t, k)
		case isObject(v):
			m, err := mergePatch(t[k], v)
			if err != nil {
				return nil, err
			}
			t[k] = m
		default:
			t[k] = v
		}
	}
	return json.Marshal(t)
}

func isObject(v json.RawMessage) bool {
	v = bytes.TrimSpace(v)
	return len(v) > 0 && v[0] == '{'
}

// sameJSON reports whether a and b are the same JSON value (members in any order, numbers by
// their text).
func sameJSON(a, b json.RawMessage) bool {
	var x, y any
	da, db := json.NewDecoder(bytes.NewReader(a)), json.NewDecoder(bytes.NewReader(b))
	da.UseNumber()
	db.UseNumber()
	return da.Decode(&x) == nil && db.Decode(&y) == nil && reflect.DeepEqual(x, y)
}
