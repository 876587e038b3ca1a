package fleetctl

import (
	"encoding/json"
	"github.com/kioskfleet/kioskfleet/pkg/proctest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
)

// TestAgainstRealHub runs fleetctl against a real fleet-hub process with one real kiosk-agent
// enrolled through fleetctl's own token: the contract test between fleetctl, docs/api.md and the
// hub. The binaries are built from this tree (nothing of the hub is imported).
func TestAgainstRealHub(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs fleet-hub and kiosk-agent; skipped with -short")
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/", "../../hub/cmd/fleet-hub", "../../agent/cmd/kiosk-agent")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build fleet-hub and kiosk-agent: %v\n%s", err, out)
	}
	data := t.TempDir()
	httpAddr, mqttAddr := proctest.FreeAddr(t), proctest.FreeAddr(t)
	proctest.Start(t, filepath.Join(bin, "fleet-hub"), "--data", filepath.Join(data, "hub"), "--http-addr", httpAddr, "--mqtt-addr", mqttAddr)
	env := map[string]string{"KF_HUB": "https://" + httpAddr, "KF_TOKEN": "", "KF_TOKEN_FILE": filepath.Join(data, "hub", "bootstrap-token"),
		"KF_CA": filepath.Join(data, "hub", "ca", "ca.crt")}
	fc := func(args ...string) result { t.Helper(); return run(t, nil, env, args...) }

	proctest.Eventually(t, 30*time.Second, "hub healthy", func() bool { return fc("health").code == 0 })
	fc("sites", "create", "--id", "sz-futian-1", "--name", "Futian Citizen Service Centre", "--region", "440304").want(t, 0, []string{"sz-futian-1"}, nil)
	fc("sites", "create", "--id", "sz-futian-1", "--name", "again", "--region", "440304").want(t, ExitError, nil, []string{"conflict (HTTP 409)"})
	fc("sites", "create", "--id", "-x", "--name", "X", "--region", "000000").want(t, ExitError, nil, []string{"bad_request (HTTP 400)", "id:", "region:"})

	r := fc("tokens", "create", "--site", "sz-futian-1", "--ttl", "1h")
	r.want(t, 0, []string{"pinning the hub CA sha256:", "kiosk-agent enroll --hub https://" + httpAddr + " --token kfe_"}, nil)
	enroll := strings.Fields(line(t, r.stdout, "  kiosk-agent enroll"))
	agentData := filepath.Join(data, "agent")
	if out, err := exec.Command(filepath.Join(bin, "kiosk-agent"), append(enroll[1:], "--data", agentData, "--model", "KF-K200")...).CombinedOutput(); err != nil {
		t.Fatalf("the printed enroll line failed: %v\n%s", err, out)
	}
	fc("tokens", "create", "--site", "nowhere").want(t, ExitError, nil, []string{"bad_request"})
	proctest.Start(t, filepath.Join(bin, "kiosk-agent"), "run", "--data", agentData, "--max-backoff", "1s")

	var dev fleet.Device
	proctest.Eventually(t, 30*time.Second, "kiosk online with a heartbeat", func() bool {
		var l api.Devices
		r := fc("devices", "list", "--status", "online", "-o", "json")
		if json.Unmarshal([]byte(r.stdout), &l) != nil || len(l.Devices) != 1 || len(l.Devices[0].Health) == 0 {
			return false
		}
		dev = l.Devices[0]
		return true
	})
	fc("devices", "list", "--region", "4403").want(t, 0, []string{dev.ID, "sz-futian-1", "online", "cpu "}, nil)
	if r := fc("devices", "list", "--region", "11"); strings.Contains(r.stdout, dev.ID) {
		t.Error("region filter not applied by the hub")
	}

	fc("commands", "send", dev.ID, "ping", "--args", `{"n":1}`, "--wait", "20s").want(t, 0, []string{"succeeded", `"pong": true`}, nil)
	// A kiosk without --devices runs the peripheral commands too, and says why they fail.
	fc("commands", "send", dev.ID, "print-test-page", "--wait", "20s").want(t, ExitCommandFailed, nil, []string{"failed: print-test-page: this kiosk has no peripherals configured"})
	fc("commands", "list", dev.ID, "--limit", "1").want(t, 0, []string{"print-test-page"}, nil)
	fc("commands", "send", dev.ID, "diagnostics", "--wait", "20s").want(t, 0, []string{"succeeded", `"agentUptimeSeconds":`, `"oldestAgeSeconds":`, `"cpuPercent":`}, nil)
	// A log tail: asked for, followed until it ends by itself at its deadline, read again later.
	fc("devices", "logs", dev.ID, "--for", "3s", "-f").want(t, 0, []string{"INFO  log tail started"},
		[]string{"log tail requested: command c-", "log tail of " + dev.ID + " ended"})
	fc("devices", "logs", dev.ID).want(t, 0, []string{"log tail started"}, nil)
	fc("devices", "logs", dev.ID, "--for", "1h").want(t, ExitUsage, nil, []string{"--for \"1h\": want a duration from 1s to 15m"})

	fc("state", "set", dev.ID, "--doc", `{"heartbeatInterval":"20s"}`).want(t, 0, []string{"is now v1"}, nil)
	proctest.Eventually(t, 20*time.Second, "state applied", func() bool {
		var s api.State
		r := fc("state", "show", dev.ID, "-o", "json")
		return json.Unmarshal([]byte(r.stdout), &s) == nil && !s.Drift && s.Reported != nil && s.Reported.Version == 1
	})
	fc("devices", "show", dev.ID).want(t, 0, []string{"online since", "Health (", "in sync at v1", "ping", "succeeded"}, nil)

	// A bulk change: the dry run prints the line that acts on what it counted; the job follows
	// the kiosk until it reports the new version; the same key again starts nothing more.
	r = fc("bulk", "desired", "--patch", `{"logLevel":"debug"}`, "--region", "4403")
	r.want(t, 0, []string{dev.ID, "1 kiosks match; nothing done yet", `fleetctl bulk desired --patch '{"logLevel":"debug"}' --region 4403 --count 1`}, nil)
	fc("bulk", "desired", "--patch", `{"logLevel":"debug"}`, "--region", "4403", "--count", "2", "--key", "test-key-0001").
		want(t, ExitError, nil, []string{"count_changed (HTTP 409)"})
	r = fc("bulk", "desired", "--patch", `{"logLevel":"debug"}`, "--region", "4403", "--count", "1", "--key", "test-key-0001", "--wait", "20s")
	r.want(t, 0, []string{"desired on 1 kiosks, done", "acked 1, failed 0"}, nil)
	jobID := strings.TrimSuffix(strings.Fields(line(t, r.stdout, "job "))[1], ":")
	fc("bulk", "desired", "--patch", `{"logLevel":"debug"}`, "--region", "4403", "--count", "1", "--key", "test-key-0001").
		want(t, 0, []string{"job " + jobID + " (already started by an earlier run with this key)"}, nil)
	fc("bulk", "show", jobID).want(t, 0, []string{dev.ID, "acked", `"region":"4403"`}, nil)
	fc("bulk", "list").want(t, 0, []string{jobID, "done"}, nil)
	fc("state", "show", dev.ID).want(t, 0, []string{`"logLevel": "debug"`, `"heartbeatInterval": "20s"`}, nil)
	fc("records", "list", dev.ID, "--kind", "heartbeat", "--limit", "1").want(t, 0, []string{"heartbeat"}, nil)

	fc("devices", "show", "k-0000000000000000").want(t, ExitNotFound, nil, []string{"not_found (HTTP 404)"})
	run(t, nil, map[string]string{"KF_HUB": env["KF_HUB"], "KF_CA": env["KF_CA"], "KF_TOKEN": "kfa_wrong"}, "devices", "list").
		want(t, ExitUnauthorized, nil, []string{"unauthorized (HTTP 401)"})
	// Without the hub's CA, fleetctl does not talk to it; with a file that is no CA, it says so.
	run(t, nil, map[string]string{"KF_HUB": env["KF_HUB"], "KF_TOKEN_FILE": env["KF_TOKEN_FILE"]}, "devices", "list").
		want(t, ExitError, nil, []string{"certificate signed by unknown authority"})
	fc("devices", "list", "--ca", env["KF_TOKEN_FILE"]).want(t, ExitUsage, nil, []string{"--ca: " + env["KF_TOKEN_FILE"] + ": no PEM certificate in it"})

	fc("devices", "revoke", dev.ID).want(t, 0, []string{"revoked"}, nil)
	fc("devices", "list").want(t, 0, []string{"revoked"}, nil)
	fc("commands", "send", dev.ID, "ping").want(t, ExitError, nil, []string{"revoked"})
	// The session the revocation cut is in the kiosk's presence history, with its reason.
	proctest.Eventually(t, 10*time.Second, "revoked session in the presence history", func() bool {
		return strings.Contains(fc("devices", "presence", dev.ID).stdout, "revoked")
	})
	fc("devices", "presence", dev.ID, "--limit", "1").want(t, 0, []string{"ENDED", "REASON", "revoked", "offline since"}, nil)
	fc("devices", "presence", dev.ID, "--limit", "0").want(t, ExitUsage, nil, []string{"--limit 0: want 1 to 200"})

	// Retire by filter: a dry run prints the line that retires exactly what it counted.
	fc("devices", "retire").want(t, ExitUsage, nil, []string{"name the kiosks to retire"})
	r = fc("devices", "retire", "--model", "KF-K200")
	r.want(t, 0, []string{dev.ID, "1 kiosks match; nothing retired yet", "fleetctl devices retire --model KF-K200 --count 1"}, nil)
	fc("devices", "retire", "--model", "KF-K200", "--count", "2").want(t, ExitError, nil, []string{"count_changed (HTTP 409)", "1 kiosks match now, not the 2 expected"})
	fc("devices", "retire", "--model", "KF-K200", "--count", "1").want(t, 0, []string{"1 kiosks retired"}, nil)
	if r := fc("devices", "list"); strings.Contains(r.stdout, dev.ID) {
		t.Errorf("a retired kiosk is still listed:\n%s", r.stdout)
	}
	fc("devices", "list", "--status", "retired").want(t, 0, []string{dev.ID, "retired"}, nil)
	fc("devices", "retire", "--model", "KF-K200").want(t, 0, []string{"nothing to retire"}, nil)
}
