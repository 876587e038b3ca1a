package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/agent/fleetsim"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/bundle"
	"github.com/kioskfleet/kioskfleet/pkg/tufmeta/tuftest"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// repo is a hub's update repository, started with offline keys made by fleetctl.
type repo struct {
	h    *hub
	keys string
}

// fleetctl runs the fleetctl binary against the hub as its bootstrap admin.
func (h *hub) fleetctl(args ...string) string {
	h.t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "fleetctl"), args...)
	cmd.Env = append(os.Environ(), "KF_HUB="+h.client.BaseURL, "KF_CA="+h.caFile, "KF_TOKEN="+h.client.Token)
	out, err := cmd.CombinedOutput()
	if err != nil {
		h.t.Fatalf("fleetctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func newRepo(t *testing.T, h *hub) *repo {
	r := &repo{h: h, keys: filepath.Join(t.TempDir(), "keys")}
	h.fleetctl("keys", "generate", "--dir", r.keys)
	h.fleetctl("keys", "init", "--dir", r.keys)
	if _, err := h.client.CreateDepartment(context.Background(), api.Department{ID: "tax", Name: "税务局"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.CreateApp(context.Background(), api.CreateApp{ID: "tax-print", Department: "tax", Kind: api.KindKioskBundle, Name: "完税证明打印"}); err != nil {
		t.Fatal(err)
	}
	return r
}

// publish uploads, reviews, signs and publishes a version of tax-print on the kiosk channel; it
// requires the peripheral classes given.
func (r *repo) publish(version string, size int, peripherals ...string) {
	t, c, ctx := r.h.t, r.h.client, context.Background()
	t.Helper()
	if _, err := c.CreateVersion(ctx, "tax-print", api.CreateVersion{Version: version}); err != nil {
		t.Fatal(err)
	}
	archive := tuftest.Bundle(t, bundle.Manifest{App: "tax-print", Version: version, Services: []string{"Printer"}, Peripherals: peripherals}, size)
	if _, err := c.UploadBundle(ctx, "tax-print", version, strings.NewReader(string(archive))); err != nil {
		t.Fatal(err)
	}
	for _, tr := range []api.Transition{{To: api.StateSubmitted}, {To: api.StateApproved}} {
		if _, err := c.Transition(ctx, "tax-print", version, tr); err != nil {
			t.Fatal(err)
		}
	}
	r.h.fleetctl("keys", "sign-bundle", "tax-print", version, "--dir", r.keys)
	if _, err := c.Transition(ctx, "tax-print", version, api.Transition{To: api.StatePublished, Channel: api.ChannelKiosk}); err != nil {
		t.Fatal(err)
	}
}

func (h *hub) rollout(id string) api.Rollout {
	h.t.Helper()
	r, err := h.client.Rollout(context.Background(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

// updates returns what a kiosk last reported of its updates.
func (h *hub) updates(id string) wire.UpdateStatus {
	h.t.Helper()
	st, err := h.client.State(context.Background(), id)
	if err != nil || st.Reported == nil {
		return wire.UpdateStatus{}
	}
	var doc struct {
		Updates wire.UpdateStatus `json:"updates"`
	}
	_ = json.Unmarshal(st.Reported.Doc, &doc)
	return doc.Updates
}

// served returns the version of tax-print a real agent's apps listener serves.
func served(t *testing.T, appsAddr string) string {
	req, _ := http.NewRequest("GET", "http://"+appsAddr+"/", nil)
	_, port, _ := strings.Cut(appsAddr, ":")
	req.Host = "tax-print.localhost:" + port
	res, err := (&http.Client{Timeout: 2 * time.Second}).Do(req)
	if err != nil {
		return ""
	}
	defer res.Body.Close()
	io.Copy(io.Discard, res.Body)
	_, v, _ := strings.Cut(res.Header.Get("X-Kiosk-App"), "@")
	return v
}

// TestRollout: five real agents and forty simulated kiosks (fleetsim, taking bundles with the
// agent's own TUF client) receive tax-print 1.0.0 in waves, one of the real agents only once its
// scripted citizen session ended and another only when it came online; then 1.1.0, which fails on
// 30% of the simulated kiosks, is aborted automatically at the threshold, and rolled back by hand
// to 1.0.0.
func TestRollout(t *testing.T) {
	h := newHub(t)
	h.site("sz-a")
	r := newRepo(t, h)
	r.publish("1.0.0", 300_000)
	r.publish("1.1.0", 300_000)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	type kiosk struct{ dir, id, apps string }
	var real []kiosk
	session := filepath.Join(t.TempDir(), "citizen-session")
	for i := range 5 {
		dir, id := h.enroll("sz-a")
		k := kiosk{dir: dir, id: id, apps: freeAddr(t)}
		real = append(real, k)
		if i == 4 {
			continue // offline: started later
		}
		args := []string{"--apps-addr", k.apps}
		if i == 0 {
			args = append(args, "--session-file", session)
		}
		startAgent(t, fmt.Sprintf("agent%d", i), dir, args...)
	}
	simDone := make(chan fleetsim.Result, 1)
	go func() {
		res, err := fleetsim.Run(ctx, fleetsim.Config{HubURL: h.client.BaseURL, HubCA: h.roots(), Token: h.client.Token, StateDir: t.TempDir(), Agents: 40,
			Duration: 10 * time.Minute, TakeBundles: true, FailRate: 0.3, FailVersion: "1.1.0"})
		if err != nil {
			t.Error(err)
		}
		simDone <- res
	}()
	waitFor(t, 60*time.Second, "44 kiosks online", func() bool {
		ds, err := h.client.ListDevices(ctx, api.DeviceQuery{Status: "online"})
		return err == nil && len(ds) == 44
	})

	// A citizen uses the kiosk of agent0 while 1.0.0 comes.
	if err := os.WriteFile(session, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ro, err := h.client.CreateRollout(ctx, api.RolloutSpec{Kind: api.RolloutBundle, App: "tax-print", Version: "1.0.0",
		Waves: []int{10, 50, 100}, Soak: "1s", MinDone: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if ro.Totals.Devices != 45 || ro.Waves[0].Counts.Devices != 5 || ro.Waves[0].Counts.Assigned != 5 || ro.Waves[1].Counts.Assigned != 0 {
		t.Fatalf("created: %+v", ro)
	}
	waitFor(t, 90*time.Second, "agent0's kiosk waiting for its citizen", func() bool {
		return h.updates(real[0].id).Bundles["tax-print"].State == wire.BundleWaitingIdle
	})
	time.Sleep(3 * time.Second) // the citizen takes a while; nothing may switch under them
	if st := h.updates(real[0].id).Bundles["tax-print"]; st.Active != "" || served(t, real[0].apps) != "" {
		t.Fatalf("activated during a citizen session: %+v", st)
	}
	if r := h.rollout(ro.ID); r.State != api.RolloutRunning {
		t.Fatalf("rollout while the session lasts: %+v", r)
	}
	os.Remove(session)
	waitFor(t, 120*time.Second, "1.0.0 on every online kiosk", func() bool {
		r := h.rollout(ro.ID)
		return r.State == api.RolloutCompleted && r.Totals.Updated == 44 && r.Totals.Offline == 1
	})
	ro = h.rollout(ro.ID)
	for i := 1; i < len(ro.Waves); i++ {
		if ro.Waves[i].StartedAt.Before(ro.Waves[i-1].DoneAt) {
			t.Errorf("wave %d started before wave %d was done: %+v", i+1, i, ro.Waves)
		}
	}
	if v := served(t, real[1].apps); v != "1.0.0" {
		t.Fatalf("agent1 serves %q", v)
	}
	// The offline kiosk returns and catches up.
	startAgent(t, "agent4", real[4].dir, "--apps-addr", real[4].apps)
	waitFor(t, 90*time.Second, "the returning kiosk caught up", func() bool { return h.rollout(ro.ID).Totals.Updated == 45 })
	if v := served(t, real[4].apps); v != "1.0.0" {
		t.Fatalf("agent4 serves %q", v)
	}

	// 1.1.0 fails on 30% of the simulated kiosks: aborted at the threshold.
	ro2, err := h.client.CreateRollout(ctx, api.RolloutSpec{Kind: api.RolloutBundle, App: "tax-print", Version: "1.1.0",
		Waves: []int{60, 100}, Soak: "1s", MinDone: 20, FailPercent: 5})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 120*time.Second, "1.1.0 aborted at the threshold", func() bool { return h.rollout(ro2.ID).State == api.RolloutAborted })
	ro2 = h.rollout(ro2.ID)
	if !strings.Contains(ro2.Reason, "automatic") || ro2.Totals.Failed == 0 || !ro2.Waves[1].StartedAt.IsZero() || ro2.Waves[1].Counts.Updated != 0 {
		t.Fatalf("aborted: %+v", ro2)
	}
	done := ro2.Totals.Updated + ro2.Totals.Failed
	if done < 20 || float64(ro2.Totals.Failed)*100 < 5*float64(done) {
		t.Fatalf("aborted at %d failed of %d done", ro2.Totals.Failed, done)
	}
	// Rolled back by hand: every kiosk reached runs 1.0.0 again.
	if _, err := h.client.RolloutAct(ctx, ro2.ID, api.RolloutAction{Action: "rollback", Reason: "receipts print blank"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 120*time.Second, "every kiosk reached back on 1.0.0", func() bool {
		r := h.rollout(ro2.ID)
		ds, err := h.client.RolloutDevices(ctx, ro2.ID)
		if err != nil || r.State != api.RolloutRolledBack {
			return false
		}
		for _, d := range ds {
			if d.State == api.DeviceReverting || d.State == api.DeviceAssigned {
				return false
			}
		}
		return true
	})
	for i, k := range real {
		if v := served(t, k.apps); v != "1.0.0" {
			t.Errorf("agent%d serves %q after the rollback", i, v)
		}
	}
	cancel()
	res := <-simDone
	t.Logf("fleetsim: %d taken, %d failed, %d refused, %d bytes", res.BundlesActive, res.BundlesFailed, res.BundlesRefused, res.BundleBytes)
	if res.BundlesFailed == 0 || res.BundlesRefused != 0 {
		t.Errorf("fleetsim: %+v", res)
	}
	st, err := h.client.UpdatesStatus(context.Background())
	if err != nil || st.Served.CacheMisses > 4 || st.Served.CacheHits == 0 {
		t.Errorf("the hub served targets from its store %d times (2 bundles): %+v, %v", st.Served.CacheMisses, st.Served, err)
	}
}

// TestAgentSelfUpdate: an agent running under the launcher is rolled out a broken agent version
// (it exits at once): the launcher falls back to the running one, which reports it, and the
// rollout counts it failed; then a good version, which the agent runs after its restart.
func TestAgentSelfUpdate(t *testing.T) {
	h := newHub(t)
	h.site("sz-a")
	r := newRepo(t, h)
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken-agent")
	os.WriteFile(broken, []byte("#!/bin/sh\necho this agent is broken >&2\nexit 1\n"), 0o755)
	good := filepath.Join(dir, "kiosk-agent-9.9.10")
	if out, err := exec.Command("go", "build", "-ldflags", "-X main.version=9.9.10", "-o", good, "../agent/cmd/kiosk-agent").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	h.fleetctl("keys", "sign-agent", "--file", broken, "--version", "9.9.9", "--dir", r.keys)
	h.fleetctl("keys", "sign-agent", "--file", good, "--version", "9.9.10", "--dir", r.keys)

	kdir, id := h.enroll("sz-a")
	start(t, "launcher", "kiosk-agent", "launch", "--data", kdir, "--health-timeout", "30s", "--",
		"--log-level", "debug", "--ack-timeout", "2s", "--max-backoff", "1s")
	ctx := context.Background()
	waitFor(t, 30*time.Second, "kiosk online", func() bool {
		d, err := h.client.Device(ctx, id)
		return err == nil && d.Device.Online
	})
	rollout := func(version string) api.Rollout {
		t.Helper()
		ro, err := h.client.CreateRollout(ctx, api.RolloutSpec{Kind: api.RolloutAgent, Version: version, Selector: api.Selector{IDs: []string{id}},
			Waves: []int{100}, Soak: "0s", MinDone: 1})
		if err != nil {
			t.Fatal(err)
		}
		return ro
	}
	ro := rollout("9.9.9")
	waitFor(t, 120*time.Second, "the broken agent counted failed, the rollout aborted", func() bool {
		r := h.rollout(ro.ID)
		return r.Totals.Failed == 1 && r.State == api.RolloutAborted // 1 of 1 failed: over the threshold
	})
	if st := h.updates(id).Agent; st.Failed != "9.9.9" || st.Running != "dev" || !strings.Contains(st.Error, "exited before it was healthy") {
		t.Fatalf("after the fall-back: %+v", st)
	}
	var fellBack bool
	for _, rec := range h.records(id, wire.KindBundleEvent) {
		fellBack = fellBack || strings.Contains(string(rec.Body), `"event":"fell-back"`)
	}
	if !fellBack {
		t.Fatal("no fell-back event recorded")
	}
	ro = rollout("9.9.10")
	waitFor(t, 120*time.Second, "the good agent running", func() bool { return h.rollout(ro.ID).Totals.Updated == 1 })
	d, err := h.client.Device(ctx, id)
	if err != nil || d.Device.AgentVersion != "9.9.10" {
		t.Fatalf("agent version %q, %v", d.Device.AgentVersion, err)
	}
	if cur, _ := os.ReadFile(filepath.Join(kdir, "agent", "current")); strings.TrimSpace(string(cur)) != "9.9.10" {
		t.Fatalf("launcher's current version %q", cur)
	}
}
