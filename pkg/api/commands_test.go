package api

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

func TestCommandSpecs(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range CommandSpecs {
		if !wire.ValidKind(c.Name) || seen[c.Name] || c.Summary == "" || (c.ArgsRequired && c.Args == "") {
			t.Errorf("bad spec %+v (duplicate: %v)", c, seen[c.Name])
		}
		seen[c.Name] = true
		if err := CheckCommand(c.Name); err != nil {
			t.Error(err)
		}
	}
	err := CheckCommand("reboot")
	if err == nil || !strings.Contains(err.Error(), `"reboot" is not a command`) || !strings.Contains(err.Error(), "ping, diagnostics") {
		t.Errorf("CheckCommand(reboot) = %v", err)
	}
	if c, ok := LookupCommand(CmdJournal); !ok || !c.ArgsRequired {
		t.Errorf("journal: %+v %v", c, ok)
	}
}

func TestParseLogTail(t *testing.T) {
	for args, want := range map[string]time.Duration{"": LogTailDefault, "null": LogTailDefault, `{}`: LogTailDefault,
		`{"for":"90s"}`: 90 * time.Second, `{"for":"15m"}`: LogTailMax, `{"stop":true}`: 0} {
		if d, err := ParseLogTail(json.RawMessage(args)); err != nil || d != want {
			t.Errorf("ParseLogTail(%s) = %v, %v; want %v", args, d, err, want)
		}
	}
	for args, msg := range map[string]string{`{"for":"16m"}`: "1s to 15m", `{"for":"500ms"}`: "1s to 15m", `{"for":"soon"}`: "1s to 15m",
		`{"for":"5m","stop":true}`: "together", `[1]`: `{"for": "5m"} or {"stop": true}`} {
		if _, err := ParseLogTail(json.RawMessage(args)); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("ParseLogTail(%s) = %v, want an error saying %q", args, err, msg)
		}
	}
}
