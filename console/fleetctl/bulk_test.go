package fleetctl

import "testing"

// TestBulkUsage: bulk's own flags are checked before the hub is asked, every problem at once
// (the hub's side: TestAgainstRealHub).
func TestBulkUsage(t *testing.T) {
	run(t, nil, nil, "bulk").want(t, ExitUsage, nil, []string{"needs a subcommand"})
	run(t, nil, nil, "bulk", "desired").want(t, ExitUsage, nil, []string{"--patch"})
	run(t, nil, nil, "bulk", "desired", "--patch", "[1]", "--region", "44x", "--status", "sad").
		want(t, ExitUsage, nil, []string{"--patch", `--region "44x"`, `--status "sad"`})
	run(t, nil, nil, "bulk", "command").want(t, ExitUsage, nil, []string{"missing NAME"})
	run(t, nil, nil, "bulk", "show").want(t, ExitUsage, nil, []string{"missing JOB"})
}
