package fleetctl

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type result struct {
	code           int
	stdout, stderr string
}

// run runs fleetctl in-process with env as its environment (KF_HUB and KF_TOKEN default to the
// fake hub and its token unless env sets them, even to "").
func run(t *testing.T, h *fakeHub, env map[string]string, args ...string) result {
	t.Helper()
	vars := map[string]string{"KF_TOKEN": testToken}
	if h != nil {
		vars["KF_HUB"] = h.srv.URL
	}
	for k, v := range env {
		vars[k] = v
	}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, Env{
		Stdin: strings.NewReader(vars["<stdin>"]), Stdout: &out, Stderr: &errb,
		Getenv:   func(k string) string { return vars[k] },
		Now:      func() time.Time { return now },
		Location: time.FixedZone("CST", 8*3600), // Asia/Shanghai, where the hub's clock is UTC
		HTTP:     &http.Client{Transport: tr},
	})
	t.Logf("fleetctl %s -> %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out.String(), errb.String())
	return result{code, out.String(), errb.String()}
}

func (r result) want(t *testing.T, code int, stdout, stderr []string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit code %d, want %d", r.code, code)
	}
	for _, s := range stdout {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("stdout lacks %q:\n%s", s, r.stdout)
		}
	}
	for _, s := range stderr {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr lacks %q:\n%s", s, r.stderr)
		}
	}
}

// line returns the line of out that starts with prefix.
func line(t *testing.T, out, prefix string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	t.Fatalf("no line starting with %q", prefix)
	return ""
}

func TestDevicesListTable(t *testing.T) {
	h := newFakeHub(t)
	r := run(t, h, nil, "devices", "list")
	r.want(t, 0, []string{"ID", "SITE", "REGION", "STATUS", "LAST SEEN", "AGENT", "HEALTH", "FAULTS"}, nil)
	for prefix, cells := range map[string][]string{
		"kf-7c2a9e": {"sz-futian-1", "440304", "online", "12s ago", "0.1.0", "cpu 12%", "mem 20%", "disk 21G free (33%)", "receipt: paper-out"},
		"kf-0b11d3": {"offline", "3h ago", "0.0.9", "disk 1.0G free (2%)", "outbox 420", "scanner: disconnected"},
		"kf-9e0001": {"revoked", "never", " ?"},
	} {
		l := line(t, r.stdout, prefix)
		for _, c := range cells {
			if !strings.Contains(l, c) {
				t.Errorf("row %q lacks %q", l, c)
			}
		}
	}
	if l := line(t, r.stdout, "kf-7c2a9e"); strings.Contains(l, "idcard") {
		t.Errorf("healthy peripheral listed as a fault: %q", l)
	}
	if got := strings.Count(r.stdout, "\n"); got != 4 {
		t.Errorf("%d lines, want header + 3", got)
	}
}

func TestDevicesListFiltersAsQuery(t *testing.T) {
	h := newFakeHub(t)
	r := run(t, h, nil, "devices", "list", "--site", "sz-futian-1", "--region", "4403", "--status", "online")
	r.want(t, 0, []string{"kf-7c2a9e"}, nil)
	if strings.Contains(r.stdout, "kf-0b11d3") || strings.Contains(r.stdout, "kf-9e0001") {
		t.Error("filtered-out device listed")
	}
	reqs := h.requestsTo("GET", "/api/v1/devices")
	if len(reqs) != 1 || reqs[0].Query != "region=4403&site=sz-futian-1&status=online" {
		t.Fatalf("requests %+v, want one with region, site and status", reqs)
	}
	run(t, h, nil, "devices", "list", "--status", "offline").want(t, 0, []string{"kf-0b11d3"}, nil)
	if reqs := h.requestsTo("GET", "/api/v1/devices"); reqs[1].Query != "status=offline" {
		t.Errorf("query %q, want status=offline", reqs[1].Query)
	}
}

func TestDevicesListJSONIsTheAPIBody(t *testing.T) {
	h := newFakeHub(t)
	r := run(t, h, nil, "devices", "list", "-o", "json")
	r.want(t, 0, nil, nil)
	var got api.Devices
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("stdout is not api.Devices JSON: %v", err)
	}
	if len(got.Devices) != len(h.devices) {
		t.Fatalf("%d devices, want %d", len(got.Devices), len(h.devices))
	}
	for i, d := range got.Devices {
		w := h.devices[i]
		if d.ID != w.ID || !d.LastSeen.Equal(w.LastSeen) || d.Online != w.Online || compact(d.Health, 1e6) != compact(w.Health, 1e6) ||
			compact(d.Peripherals, 1e6) != compact(w.Peripherals, 1e6) {
			t.Errorf("device %d: got %+v, want %+v", i, d, w)
		}
	}
	// An empty list is [] (docs/api.md), not null.
	r = run(t, h, nil, "devices", "list", "--site", "nowhere", "-o", "json")
	if !strings.Contains(r.stdout, `"devices": []`) {
		t.Errorf("empty list printed as %q", r.stdout)
	}
}

func TestDevicesShow(t *testing.T) {
	h := newFakeHub(t)
	r := run(t, h, nil, "devices", "show", "kf-7c2a9e")
	r.want(t, 0, []string{
		"Device:", "kf-7c2a9e", "sz-futian-1 (region 440304)", "online since 2026-11-26 04:01:00 +08:00 (14m ago)",
		"Last seen:", "(12s ago)", "serial 3f9a0c", "(in 335d)",
		"Health (30s ago)", "cpu:", "12.5%", "disk free:", "21G of 64G (33%)", "uptime:", "2h15m23s",
		"Peripherals (3m ago)", "receipt-printer", "KF-80", "FAULT", "paper-out", "paper empty", "idcard",
		"desired", "v4", "reported", "v3", `error: printer profile "escpos-80" unknown`,
		"DRIFT: desired v4, kiosk reports v3 and an error", `"receipt": "escpos-80"`,
		"Recent commands:", "cmd_0002", "failed", "paper out", "cmd_0001",
	}, nil)
	if l := line(t, r.stdout, "  idcard"); strings.Contains(l, "FAULT") {
		t.Errorf("idcard flagged: %q", l)
	}

	r = run(t, h, nil, "devices", "show", "kf-7c2a9e", "-o", "json")
	var det api.DeviceDetail
	if err := json.Unmarshal([]byte(r.stdout), &det); err != nil || !det.Drift || det.Desired.Version != 4 || len(det.Commands) != 2 {
		t.Errorf("JSON detail %+v (%v)", det, err)
	}

	run(t, h, nil, "devices", "show", "kf-9e0001").want(t, 0, []string{"REVOKED", "no heartbeat yet", "unreadable (", ": 42", "desired", "none"}, nil)
}

func TestNotFoundSurfacesTheAPIError(t *testing.T) {
	h := newFakeHub(t)
	r := run(t, h, nil, "devices", "show", "kf-nope")
	r.want(t, ExitNotFound, nil, []string{`fleetctl: show device kf-nope: not_found (HTTP 404): device "kf-nope" not found`})
	if r.stdout != "" {
		t.Errorf("stdout %q on error", r.stdout)
	}
	run(t, h, nil, "commands", "show", "cmd_nope").want(t, ExitNotFound, nil, []string{`command "cmd_nope" not found`})
	run(t, h, nil, "records", "kf-nope").want(t, ExitNotFound, nil, []string{"not_found"})
}

func TestUnauthorized(t *testing.T) {
	h := newFakeHub(t)
	r := run(t, h, map[string]string{"KF_TOKEN": "wrong"}, "devices", "list")
	r.want(t, ExitUnauthorized, nil, []string{"unauthorized", "missing or invalid bearer token"})
	if strings.Contains(r.stderr, "wrong") {
		t.Error("stderr shows the token")
	}
	run(t, h, map[string]string{"KF_TOKEN": ""}, "sites", "list").
		want(t, ExitUnauthorized, nil, []string{"no token given: use --token, --token-file, KF_TOKEN or KF_TOKEN_FILE"})
}

func TestOtherAPIErrorsExitOne(t *testing.T) {
	h := newFakeHub(t)
	run(t, h, nil, "commands", "send", "kf-7c2a9e", "diagnostics", "--ttl", "300h").
		want(t, ExitError, nil, []string{"bad_request (HTTP 400): invalid request: ttl: want a duration between 1s and 168h0m0s, got \"300h\"\n"})
	run(t, h, nil, "commands", "send", "kf-9e0001", "diagnostics").
		want(t, ExitError, nil, []string{"bad_request", `device kf-9e0001 is revoked`})

	proxy := newFakeHub(t)
	proxy.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "upstream hub unreachable", http.StatusBadGateway)
	})
	run(t, proxy, nil, "sites", "list").want(t, ExitError, nil, []string{"Bad Gateway", "upstream hub unreachable"})

	strict := newFakeHub(t)
	strict.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		strict.fail(w, http.StatusBadRequest, "bad_request", "invalid site", "id", "region")
	})
	run(t, strict, nil, "sites", "create", "--id", "x", "--name", "X", "--region", "440304").
		want(t, ExitError, nil, []string{"create site x: bad_request (HTTP 400): invalid site\n  invalid: id\n  invalid: region\n"})

	run(t, nil, map[string]string{"KF_HUB": "http://127.0.0.1:1"}, "health").want(t, ExitError, nil, []string{"connection refused"})
}

func TestRevoke(t *testing.T) {
	h := newFakeHub(t)
	run(t, h, nil, "devices", "revoke", "kf-7c2a9e").want(t, 0, []string{"device kf-7c2a9e revoked"}, nil)
	if n := len(h.requestsTo("POST", "/api/v1/devices/kf-7c2a9e/revoke")); n != 1 {
		t.Errorf("%d revoke requests", n)
	}
	run(t, h, nil, "devices", "list", "--site", "sz-futian-1").want(t, 0, []string{"revoked"}, nil)
	run(t, h, nil, "devices", "revoke", "kf-0b11d3", "-o", "json").want(t, 0, []string{`"id": "kf-0b11d3"`, `"revoked": true`}, nil)
}

func TestSites(t *testing.T) {
	h := newFakeHub(t)
	r := run(t, h, nil, "sites", "create", "--id", "sz-nanshan-3", "--name", "Nanshan Service Hall", "--region", "440305", "--address", "Nanhai Ave 2")
	r.want(t, 0, []string{"sz-nanshan-3", "Nanshan Service Hall", "440305", "Nanhai Ave 2"}, nil)
	reqs := h.requestsTo("POST", "/api/v1/sites")
	var sent fleet.Site
	if len(reqs) != 1 || json.Unmarshal([]byte(reqs[0].Body), &sent) != nil ||
		sent != (fleet.Site{ID: "sz-nanshan-3", Name: "Nanshan Service Hall", Region: "440305", Address: "Nanhai Ave 2"}) {
		t.Errorf("sent %+v", reqs)
	}
	run(t, h, nil, "sites", "list").want(t, 0, []string{"NAME", "sz-futian-1", "Futian Citizen Service Centre", "sz-nanshan-3"}, nil)
	run(t, h, nil, "sites", "list", "-o", "json").want(t, 0, []string{`"sites": [`, `"region": "440305"`}, nil)

	run(t, h, nil, "sites", "create", "--id", "sz-futian-1", "--name", "x", "--region", "440304").
		want(t, ExitError, nil, []string{"conflict", `site "sz-futian-1" exists`})

	r = run(t, h, nil, "sites", "create", "--region", "44")
	r.want(t, ExitUsage, nil, []string{"--id is required", "--name is required", `--region "44": want a six-digit`})
	if n := len(h.requestsTo("POST", "/api/v1/sites")); n != 2 {
		t.Errorf("%d create requests: an invalid command line reached the hub", n)
	}
}

func TestTokensCreate(t *testing.T) {
	h := newFakeHub(t)
	r := run(t, h, nil, "tokens", "create", "--site", "sz-futian-1", "--ttl", "2h")
	r.want(t, 0, []string{"tok_01", "sz-futian-1", "2026-11-26 06:15:00 +08:00", "kfe_4q9Zr-s3cret",
		"  kiosk-agent enroll --hub " + h.srv.URL + " --token kfe_4q9Zr-s3cret\n"},
		[]string{"loopback address"})
	if reqs := h.requestsTo("POST", "/api/v1/enrollment-tokens"); len(reqs) != 1 || reqs[0].Body != `{"siteId":"sz-futian-1","ttl":"2h"}` {
		t.Errorf("sent %+v", reqs)
	}
	run(t, h, nil, "tokens", "create", "--site", "nowhere").want(t, ExitError, nil, []string{"create enrollment token for site nowhere: bad_request (HTTP 400): siteId: no site \"nowhere\""})
	run(t, h, nil, "tokens", "create", "--ttl", "soon").want(t, ExitUsage, nil, []string{"--site is required", `--ttl "soon"`})
	run(t, h, nil, "tokens", "create", "--site", "sz-futian-1", "-o", "json").want(t, 0, []string{`"token": "kfe_4q9Zr-s3cret"`}, nil)
}

func TestCommandsSendWait(t *testing.T) {
	for _, tc := range []struct {
		name   string
		code   int
		states []api.CommandState
		out    []string
	}{
		{"print-test-page", 0, []api.CommandState{api.CommandQueued, api.CommandDelivered, api.CommandAccepted, api.CommandSucceeded}, []string{`"pages": 1`}},
		{"idcard-selftest", ExitCommandFailed, []api.CommandState{api.CommandQueued, api.CommandDelivered, api.CommandFailed}, nil},
		{"diagnostics", ExitCommandFailed, []api.CommandState{api.CommandQueued, api.CommandExpired}, nil},
		{"peripherals", ExitCommandFailed, []api.CommandState{api.CommandQueued}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newFakeHub(t)
			wait := "10s" // generous: the fake hub answers each poll at once until the end
			if tc.name == "peripherals" {
				wait = "400ms"
			}
			r := run(t, h, nil, "commands", "send", "kf-7c2a9e", tc.name, "--args", `{"printer":"receipt"}`, "--wait", wait)
			if r.code != tc.code {
				t.Errorf("exit code %d, want %d", r.code, tc.code)
			}
			var seen []api.CommandState
			for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
				if f := strings.Fields(l); len(f) >= 3 && f[1] == "cmd_0003" {
					seen = append(seen, api.CommandState(f[2]))
				}
			}
			if !reflect.DeepEqual(seen, tc.states) {
				t.Errorf("transitions %v, want %v", seen, tc.states)
			}
			for _, s := range tc.out {
				if !strings.Contains(r.stdout, s) {
					t.Errorf("stdout lacks %q", s)
				}
			}
			polls := h.requestsTo("GET", "/api/v1/commands/cmd_0003")
			if len(polls) == 0 {
				t.Fatal("never polled")
			}
			for _, p := range polls {
				if !strings.HasPrefix(p.Query, "wait=") {
					t.Errorf("poll without wait=: %q", p.Query)
				}
			}
			switch tc.name {
			case "idcard-selftest":
				r.want(t, tc.code, nil, []string{"command cmd_0003 failed: no card on the reader"})
			case "diagnostics":
				r.want(t, tc.code, nil, []string{"command cmd_0003 expired: not accepted before its expiry"})
			case "peripherals":
				r.want(t, tc.code, nil, []string{"command cmd_0003 still queued after --wait 400ms", "fleetctl commands show cmd_0003"})
				if len(polls) > 3 {
					t.Errorf("%d polls in 400ms: the long poll was not used", len(polls))
				}
			}
			if reqs := h.requestsTo("POST", "/api/v1/devices/kf-7c2a9e/commands"); len(reqs) != 1 ||
				reqs[0].Body != `{"name":"`+tc.name+`","args":{"printer":"receipt"},"ttl":"1h"}` {
				t.Errorf("sent %+v", reqs)
			}
		})
	}
}

func TestCommandsSendJSON(t *testing.T) {
	h := newFakeHub(t)
	r := run(t, h, nil, "commands", "send", "kf-7c2a9e", "print-test-page", "--wait", "5s", "-o", "json")
	r.want(t, 0, nil, []string{"cmd_0003  queued", "cmd_0003  succeeded"})
	var c fleet.Command
	if err := json.Unmarshal([]byte(r.stdout), &c); err != nil || c.State != api.CommandSucceeded || compact(c.Output, 100) != `{"pages":1,"printer":"receipt"}` {
		t.Errorf("stdout %q is not the final command (%v)", r.stdout, err)
	}
	r = run(t, h, nil, "commands", "send", "kf-7c2a9e", "diagnostics", "--ttl", "10m", "-o", "json")
	r.want(t, 0, []string{`"state": "queued"`, `"id": "cmd_0004"`}, nil)
	if n := len(h.requestsTo("GET", "/api/v1/commands/cmd_0004")); n != 0 {
		t.Errorf("followed without --wait (%d polls)", n)
	}
	run(t, h, nil, "commands", "send", "kf-7c2a9e", "diagnostics").want(t, 0, []string{"command cmd_0005 (diagnostics) queued for kf-7c2a9e"}, nil)
}

func TestCommandsSendWaitRidesOutAHubRestart(t *testing.T) {
	h := newFakeHub(t)
	h.failPolls = 2
	r := run(t, h, nil, "commands", "send", "kf-7c2a9e", "print-test-page", "--wait", "10s")
	r.want(t, 0, []string{"cmd_0003  succeeded"}, []string{"following command cmd_0003: Service Unavailable (HTTP 503): hub restarting; retrying"})
	if strings.Count(r.stderr, "retrying") != 1 {
		t.Error("retry reported more than once")
	}

	// A client error is not retried.
	h2 := newFakeHub(t)
	h2.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			h2.reply(w, http.StatusAccepted, fleet.Command{ID: "cmd_gone", State: api.CommandQueued})
			return
		}
		h2.fail(w, http.StatusNotFound, "not_found", `command "cmd_gone" not found`)
	})
	run(t, h2, nil, "commands", "send", "kf-7c2a9e", "ping", "--wait", "10s").want(t, ExitNotFound, nil, []string{"follow command cmd_gone: not_found"})
}

func TestCommandsSendWaitInterrupted(t *testing.T) {
	h := newFakeHub(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hub := h.srv.Config.Handler
	h.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/v1/commands/") {
			cancel() // Ctrl-C while fleetctl follows the command
		}
		hub.ServeHTTP(w, r)
	})
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	var errb bytes.Buffer
	code := Run(ctx, []string{"commands", "send", "kf-7c2a9e", "peripherals", "--wait", "30s"}, Env{
		Stderr: &errb, HTTP: &http.Client{Transport: tr},
		Getenv: func(k string) string { return map[string]string{"KF_HUB": h.srv.URL, "KF_TOKEN": testToken}[k] },
	})
	if code != ExitError || !strings.Contains(errb.String(), "stopped following command cmd_0003, which goes on") {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
}

func TestCommandsShowAndList(t *testing.T) {
	h := newFakeHub(t)
	run(t, h, nil, "commands", "show", "cmd_0002").want(t, 0, []string{"cmd_0002", "print-test-page", "failed", "paper out", "Expires:"}, nil)
	if reqs := h.requestsTo("GET", "/api/v1/commands/cmd_0002"); len(reqs) != 1 || reqs[0].Query != "" {
		t.Errorf("get sent %+v: must not long-poll", reqs)
	}
	r := run(t, h, nil, "commands", "list", "kf-7c2a9e")
	r.want(t, 0, []string{"STATE", "cmd_0002", "10m ago", "cmd_0001", "succeeded"}, nil)
	if strings.Index(r.stdout, "cmd_0002") > strings.Index(r.stdout, "cmd_0001") {
		t.Error("not newest first")
	}
	run(t, h, nil, "commands", "list", "kf-0b11d3", "-o", "json").want(t, 0, []string{`"commands": []`}, nil)
	r = run(t, h, nil, "commands", "list", "kf-7c2a9e", "--limit", "1")
	if !strings.Contains(r.stdout, "cmd_0002") || strings.Contains(r.stdout, "cmd_0001") {
		t.Error("--limit 1 not applied")
	}
	if reqs := h.requestsTo("GET", "/api/v1/devices/kf-7c2a9e/commands"); reqs[len(reqs)-1].Query != "limit=1" {
		t.Errorf("sent %+v", reqs)
	}
	run(t, h, nil, "commands", "list", "kf-7c2a9e", "--limit", "0").want(t, ExitUsage, nil, []string{`--limit "0"`})
}

func TestState(t *testing.T) {
	h := newFakeHub(t)
	run(t, h, nil, "state", "show", "kf-7c2a9e").want(t, 0, []string{"DRIFT: desired v4, kiosk reports v3 and an error", "reported doc:"}, nil)

	doc := filepath.Join(t.TempDir(), "kiosk.json")
	if err := os.WriteFile(doc, []byte(`{"printer":{"receipt":"escpos-58"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, h, nil, "state", "set", "kf-7c2a9e", "--doc", "@"+doc).want(t, 0, []string{"desired state of kf-7c2a9e is now v5"}, nil)
	if reqs := h.requestsTo("PUT", "/api/v1/devices/kf-7c2a9e/desired"); len(reqs) != 1 || reqs[0].Body != `{"doc":{"printer":{"receipt":"escpos-58"}}}` {
		t.Errorf("sent %+v", reqs)
	}
	run(t, h, map[string]string{"<stdin>": `{"idle":"60s"}`}, "state", "set", "kf-0b11d3", "--doc", "@-", "-o", "json").
		want(t, 0, []string{`"version": 1`, `"idle": "60s"`}, nil)
	run(t, h, nil, "state", "get", "kf-0b11d3", "-o", "json").want(t, 0, []string{`"drift": true`}, nil)

	run(t, h, nil, "state", "set", "kf-7c2a9e", "--doc", "[1,2]").want(t, ExitUsage, nil, []string{"--doc: must be a JSON object"})
	run(t, h, nil, "state", "set", "kf-7c2a9e", "--doc", "{oops").want(t, ExitUsage, nil, []string{"--doc: not valid JSON"})
	run(t, h, nil, "state", "set", "kf-7c2a9e").want(t, ExitUsage, nil, []string{"--doc is required"})
	run(t, h, nil, "state", "set", "kf-7c2a9e", "--doc", "@/nonexistent.json").want(t, ExitUsage, nil, []string{"no such file"})
}

func TestRecords(t *testing.T) {
	h := newFakeHub(t)
	r := run(t, h, nil, "records", "list", "kf-7c2a9e", "--kind", "alert", "--after", "1000", "--limit", "1")
	r.want(t, 0, []string{"1001", "e1", "501", "alert", "2026-11-26 04:14:50.200 +08:00", `{"code":"paper-low"`}, []string{"more may follow: --after 1001"})
	if reqs := h.requestsTo("GET", "/api/v1/devices/kf-7c2a9e/records"); len(reqs) != 1 || reqs[0].Query != "after=1000&kind=alert&limit=1" {
		t.Errorf("sent %+v", reqs)
	}
	r = run(t, h, nil, "records", "kf-7c2a9e", "-o", "json")
	var recs api.Records
	if err := json.Unmarshal([]byte(r.stdout), &recs); err != nil || len(recs.Records) != 5 || recs.Next != 1004 {
		t.Errorf("JSON records %+v (%v)", recs, err)
	}
	if strings.Contains(r.stderr, "more may follow") {
		t.Error("a short page announced more")
	}
	// The old spelling lists too; "records" alone asks for a subcommand.
	run(t, h, nil, "records", "kf-7c2a9e", "--kind", "alert").want(t, 0, []string{"1001", "1003"}, nil)
	run(t, h, nil, "records").want(t, ExitUsage, nil, []string{"needs a subcommand: list"})
	run(t, h, nil, "records", "a", "b").want(t, ExitUsage, nil, []string{`unexpected argument "b"`})
}

func TestHealth(t *testing.T) {
	h := newFakeHub(t)
	run(t, h, nil, "health").want(t, 0, []string{"Status:", "ok", "0.1.0", "sqlite", "127.0.0.1:8883"}, nil)
	h.mu.Lock()
	h.health.Status = "degraded"
	h.mu.Unlock()
	run(t, h, nil, "health").want(t, ExitError, []string{"degraded"}, []string{"is degraded"})
	run(t, h, nil, "health", "-o", "json").want(t, ExitError, []string{`"status": "degraded"`}, nil)
}

func TestInvalidFlagsReportedAtOnce(t *testing.T) {
	h := newFakeHub(t)
	r := run(t, h, map[string]string{"KF_HUB": "hub.example:8080"}, "records", "list", "kf-7c2a9e",
		"--kind", "Bad Kind", "--after", "-1", "--limit", "5000", "-o", "yaml", "--timeout", "soon")
	r.want(t, ExitUsage, nil, []string{
		`--kind "Bad Kind"`, `--after "-1"`, `--limit "5000": want a whole number from 1 to 1000`,
		`KF_HUB "hub.example:8080"`, `-o "yaml": want table or json`, `--timeout "soon": not a duration`,
		"Run 'fleetctl records list --help' for usage.",
	})
	r = run(t, h, nil, "commands", "send", "kf-7c2a9e", "Reboot!", "--args", "{", "--ttl", "0s", "--wait", "x")
	r.want(t, ExitUsage, nil, []string{`NAME: "Reboot!" is not a command the kiosk agent runs (ping, diagnostics,`, "--args: not valid JSON", `--ttl "0s": must be at least 1s`, `--wait "x"`})
	h.mu.Lock()
	n := len(h.requests)
	h.mu.Unlock()
	if n != 0 {
		t.Errorf("%d requests reached the hub from invalid command lines", n)
	}

	run(t, h, nil, "devices", "show").want(t, ExitUsage, nil, []string{"missing ID"})
	run(t, h, nil, "devices", "show", "a", "b").want(t, ExitUsage, nil, []string{`unexpected argument "b"`})
	run(t, h, nil, "devices", "lst").want(t, ExitUsage, nil, []string{`unknown command "lst"`})
	run(t, h, nil, "devices", "list", "--bogus").want(t, ExitUsage, nil, []string{"unknown flag: --bogus"})
	run(t, h, nil).want(t, ExitUsage, nil, []string{"needs a subcommand"})
	run(t, h, nil, "--help").want(t, 0, []string{"Exit codes:", "KF_TOKEN_FILE"}, nil)
}

func TestHubAndTokenPrecedence(t *testing.T) {
	h := newFakeHub(t)
	tokFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokFile, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Flags beat the environment.
	run(t, h, map[string]string{"KF_HUB": "http://127.0.0.1:1", "KF_TOKEN": "wrong"}, "sites", "list", "--hub", h.srv.URL, "--token", testToken).
		want(t, 0, []string{"sz-futian-1"}, nil)
	run(t, h, map[string]string{"KF_TOKEN": "wrong"}, "sites", "list", "--token-file", tokFile).want(t, 0, []string{"sz-futian-1"}, nil)
	// KF_TOKEN beats KF_TOKEN_FILE; KF_TOKEN_FILE is used alone.
	run(t, h, map[string]string{"KF_TOKEN_FILE": "/nonexistent"}, "sites", "list").want(t, 0, nil, nil)
	run(t, h, map[string]string{"KF_TOKEN": "", "KF_TOKEN_FILE": tokFile}, "sites", "list").want(t, 0, []string{"sz-futian-1"}, nil)
	// The default hub is used without flag or environment (asked of a transport that answers
	// itself, so that nothing on this machine's port 8080 is touched).
	var asked []string
	code := Run(context.Background(), []string{"health"}, Env{
		Getenv: func(string) string { return "" },
		HTTP: &http.Client{Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
			asked = append(asked, r.URL.String())
			return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader(`{"status":"ok"}`)), Request: r}, nil
		})},
	})
	if code != 0 || len(asked) != 1 || asked[0] != DefaultHub+"/api/v1/health" {
		t.Errorf("exit %d, asked %v, want %s/api/v1/health", code, asked, DefaultHub)
	}

	run(t, h, nil, "sites", "list", "--token", "x", "--token-file", tokFile).want(t, ExitUsage, nil, []string{"give one, not both"})
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, nil, 0o600)
	run(t, h, map[string]string{"KF_TOKEN": "", "KF_TOKEN_FILE": empty}, "sites", "list").want(t, ExitUsage, nil, []string{"KF_TOKEN_FILE: ", "want one token"})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
