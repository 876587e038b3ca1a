package api

import (
	"fmt"
	"slices"
	"strings"

	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// CommandState is a command's place in its life cycle: queued -> delivered -> accepted ->
// succeeded | failed, or expired before the kiosk accepts it (docs/api.md). It is the state the
// agent reports over the sync protocol, shown as it is.
type CommandState = wire.CommandState

// Command states; Terminal reports the last three.
const (
	CommandQueued    = wire.CmdQueued
	CommandDelivered = wire.CmdDelivered
	CommandAccepted  = wire.CmdAccepted
	CommandSucceeded = wire.CmdSucceeded
	CommandFailed    = wire.CmdFailed
	CommandExpired   = wire.CmdExpired
)

// Names of the commands the kiosk agent runs.
const (
	CmdPing           = "ping"
	CmdDiagnostics    = "diagnostics"
	CmdJournal        = "journal"
	CmdPeripherals    = "peripherals"
	CmdPrintTestPage  = "print-test-page"
	CmdIDCardSelfTest = "idcard-selftest"
	CmdRestart        = "restart"
	CmdLogTail        = "log-tail"
)

// CommandSpec describes a command the kiosk agent runs: the one list fleetctl's help and checks,
// the console's command form and the agent's command handlers are made from.
type CommandSpec struct {
	Name    string
	Summary string // what it does and what it answers, one line
	Args    string // its arguments, e.g. `{"printer": ID}`; "" when it takes none
	// ArgsRequired: it refuses to run without Args.
	ArgsRequired bool
	// Attended: it needs someone at the kiosk (a card on the reader), so it is not offered as a
	// one-click action.
	Attended bool
}

// CommandSpecs lists every command the kiosk agent runs.
var CommandSpecs = []CommandSpec{
	{Name: CmdPing, Summary: "check that the kiosk answers: it replies pong with its clock and the args it got", Args: "any JSON"},
	{Name: CmdDiagnostics, Summary: "agent version and uptime, outbox, host figures, settings and link state, each with its unit"},
	{Name: CmdPeripherals, Summary: "the kiosk's peripherals and their status now"},
	{Name: CmdPrintTestPage, Summary: "print a test page and report the job's outcome", Args: `{"printer": ID}, default: the first printer`},
	{Name: CmdIDCardSelfTest, Summary: "read the card on the ID-card reader to prove it works (the holder's data is never reported)",
		Args: `{"reader": ID}, default: the first reader`, Attended: true},
	{Name: CmdRestart, Summary: "restart the agent once no citizen is using the kiosk (refused during a citizen's session unless it ends within wait)",
		Args: `{"wait": "5m"}, default: refuse at once`},
	{Name: CmdJournal, Summary: "write a business journal entry (to mark a visit, say); it answers the entry's sequence number",
		Args: "a JSON object, the entry", ArgsRequired: true},
	{Name: CmdLogTail, Summary: "stream the agent's log (personal data redacted) to the hub for a while: GET /devices/{id}/log shows it",
		Args: `{"for": "5m"} (at most 15m), default 5m; {"stop": true} ends it`},
}

// LookupCommand returns the command named name.
func LookupCommand(name string) (CommandSpec, bool) {
	i := slices.IndexFunc(CommandSpecs, func(c CommandSpec) bool { return c.Name == name })
	if i < 0 {
		return CommandSpec{}, false
	}
	return CommandSpecs[i], true
}

// CommandNames returns the names of CommandSpecs, in order.
func CommandNames() []string {
	n := make([]string, len(CommandSpecs))
	for i, c := range CommandSpecs {
		n[i] = c.Name
	}
	return n
}

// CheckCommand reports whether name is a command the agent runs, and otherwise says which are.
func CheckCommand(name string) error {
	if _, ok := LookupCommand(name); !ok {
		return fmt.Errorf("%q is not a command the kiosk agent runs (%s)", name, strings.Join(CommandNames(), ", "))
	}
	return nil
}
