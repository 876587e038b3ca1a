package bundles_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/agent/bundles"
)

// fakeAgent writes a small shell script standing in for an agent binary: it appends its version
// to log when started, then behaves: "good" says it is healthy and runs until stopped, "crash"
// exits at once, "hang" runs but never says it is healthy.
func fakeAgent(t *testing.T, dir, version, behave, log string) string {
	t.Helper()
	var body string
	switch behave {
	case "good": // exits when the test asks it to switch, as the agent does once it staged a version
		body = fmt.Sprintf(`echo ok > "$KF_AGENT_HEALTH_FILE"; trap 'exit 0' TERM; while :; do if [ -e %q ]; then rm -f %q; exit 0; fi; sleep 0.05; done`,
			filepath.Join(dir, "switch"), filepath.Join(dir, "switch"))
	case "crash":
		body = `exit 3`
	case "hang":
		body = `trap 'exit 0' TERM; while :; do sleep 0.05; done`
	}
	script := fmt.Sprintf("#!/bin/sh\necho \"%s $KF_AGENT_LAUNCHED\" >> %q\n%s\n", version, log, body)
	p := filepath.Join(dir, "versions", version, "kiosk-agent")
	if version == "fallback" {
		p = filepath.Join(dir, "fallback-agent")
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestLauncher: a new agent on trial becomes current once healthy; one that crashes, or never
// says it is healthy, is given up and the current one runs again, with the reason left for it
// to report.
func TestLauncher(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "started.log")
	fallback := fakeAgent(t, dir, "fallback", "good", log)
	fakeAgent(t, dir, "0.2.0", "good", log)
	fakeAgent(t, dir, "0.3.0", "crash", log)
	fakeAgent(t, dir, "0.4.0", "hang", log)
	l, err := bundles.NewLauncher(bundles.LauncherConfig{Dir: filepath.Join(dir), Fallback: fallback, Args: []string{"run"},
		HealthTimeout: 700 * time.Millisecond, StopTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- l.Run(ctx) }()
	defer func() { cancel(); <-done }()

	read := func(name string) string {
		b, _ := os.ReadFile(filepath.Join(dir, name))
		return strings.TrimSpace(string(b))
	}
	started := func() string {
		b, _ := os.ReadFile(log)
		return strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", "|")
	}
	eventually := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: never (current %q, next %q, failed %q, started %v)", what, read("current"), read("next"), read("failed"), started())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	eventually("the installed agent runs", func() bool { return started() != "" })

	// The running agent stages 0.2.0 and exits (as the agent does between sessions).
	stage := func(v string) {
		os.WriteFile(filepath.Join(dir, "next"), []byte(v+"\n"), 0o644)
		os.Remove(filepath.Join(dir, "failed"))
		os.WriteFile(filepath.Join(dir, "switch"), nil, 0o644)
	}
	stage("0.2.0")
	eventually("0.2.0 promoted", func() bool { return read("current") == "0.2.0" && read("next") == "" })

	stage("0.3.0")
	eventually("0.3.0 given up", func() bool { return strings.HasPrefix(read("failed"), "0.3.0: exited before it was healthy") })
	eventually("0.2.0 again", func() bool { return strings.HasSuffix(started(), "0.3.0 0.3.0|0.2.0 0.2.0") })
	if read("current") != "0.2.0" || read("next") != "" {
		t.Fatalf("after a crash on trial: current %q next %q", read("current"), read("next"))
	}

	stage("0.4.0")
	eventually("0.4.0 given up", func() bool { return strings.HasPrefix(read("failed"), "0.4.0: not healthy within") })
	eventually("0.2.0 again", func() bool { return strings.HasSuffix(started(), "0.4.0 0.4.0|0.2.0 0.2.0") })
	if read("current") != "0.2.0" {
		t.Fatalf("after a hang on trial: current %q", read("current"))
	}
	if got := started(); got != "fallback |0.2.0 0.2.0|0.3.0 0.3.0|0.2.0 0.2.0|0.4.0 0.4.0|0.2.0 0.2.0" {
		t.Fatalf("started: %s", got)
	}
}
