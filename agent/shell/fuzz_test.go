package shell

import (
	"errors"
	"strings"
	"testing"

	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// FuzzCaseStream: whatever the hub's case stream holds, reading it never panics, and every event
// handed on is one of its data lines.
func FuzzCaseStream(f *testing.F) {
	f.Add("retry: 2000\n\nid: 3\nevent: case\ndata: {\"seq\":3,\"caseId\":\"case-1\",\"status\":\"accepted\"}\n\n: keep-alive\n\n")
	f.Add("data: {\"seq\":1}\ndata: \n\n")
	f.Add("data: not json\n\n")
	f.Add("data:" + strings.Repeat("x", 70_000) + "\n\n")
	f.Fuzz(func(t *testing.T, stream string) {
		stop := errors.New("stop")
		n := 0
		err := readCaseEvents(strings.NewReader(stream), func(ev api.CaseEvent) error {
			n++
			if !strings.Contains(stream, "data:") {
				t.Fatalf("event %+v from a stream without data", ev)
			}
			if n > 1000 {
				return stop
			}
			return nil
		})
		if err == nil {
			t.Fatal("a stream that ended read without an error")
		}
	})
}

// FuzzIDTokenSubject: any ID token, however malformed, gives a subject or none, never a panic.
func FuzzIDTokenSubject(f *testing.F) {
	f.Add("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJjX2FsaWNlIn0.sig")
	f.Add("a.b.c")
	f.Add("..")
	f.Fuzz(func(t *testing.T, tok string) {
		if sub := idTokenSubject(tok); sub != "" && strings.Count(tok, ".") != 2 {
			t.Fatalf("subject %q from %q", sub, tok)
		}
	})
}
