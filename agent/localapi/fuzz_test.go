package localapi_test

import (
	"encoding/json"
	"errors"
	"regexp"
	"testing"

	"github.com/kioskfleet/kioskfleet/agent/localapi"
)

// The decoder reads what any page sends: whatever the bytes, it returns a command with a usable
// requestId, name and object payload, or a refusal that says how to answer, and never panics.
// Seeds: testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"header":{"name":"Common.Status","requestId":1,"type":"command","version":"1.0"},"payload":{}}`))
	f.Add([]byte(`{"header":{"name":"Printer.PrintNative","requestId":9007199254740992,"type":"command","version":"1.3","timeout":5000},"payload":{"data":"JVBERi0="}}`))
	name := regexp.MustCompile(`^[A-Z][A-Za-z0-9]*\.[A-Z][A-Za-z0-9]*$`)
	f.Fuzz(func(t *testing.T, b []byte) {
		cmd, err := localapi.Decode(b)
		if err != nil {
			var de *localapi.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %T %v", err, err)
			}
			if (de.Status == "") == (de.Code == "") || de.Reason == "" || de.RequestID < 0 || (de.Status == "" && de.RequestID == 0) {
				t.Fatalf("refusal %+v", de)
			}
			if de.Name != "" && !name.MatchString(de.Name) {
				t.Fatalf("refusal echoes name %q", de.Name)
			}
			return
		}
		var obj map[string]json.RawMessage
		if cmd.RequestID <= 0 || !name.MatchString(cmd.Name) || cmd.Timeout < 0 || json.Unmarshal(cmd.Payload, &obj) != nil {
			t.Fatalf("accepted %+v", cmd)
		}
	})
}
