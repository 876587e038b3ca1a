package api

import (
	"strings"
	"testing"

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
