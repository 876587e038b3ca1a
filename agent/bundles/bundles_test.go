package bundles_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kioskfleet/kioskfleet/agent/bundles"
	"github.com/kioskfleet/kioskfleet/agent/bundles/bundlestest"
	"github.com/kioskfleet/kioskfleet/pkg/bundle"
	"github.com/kioskfleet/kioskfleet/pkg/tufmeta"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// kiosk is an agent's update side against a test repository.
type kiosk struct {
	t      *testing.T
	repo   *bundlestest.Repo
	src    *bundles.Source
	m      *bundles.Manager
	rec    *bundlestest.Recorder
	guard  *bundlestest.Guard
	health atomic.Pointer[string] // why health checks fail (nil: healthy)
	dir    string
}

type kioskOpt func(*bundles.Config, *bundles.SourceConfig)

func newKiosk(t *testing.T, repo *bundlestest.Repo, opts ...kioskOpt) *kiosk {
	k := &kiosk{t: t, repo: repo, rec: &bundlestest.Recorder{}, guard: bundlestest.NewGuard(), dir: t.TempDir()}
	sc := bundles.SourceConfig{RepoURL: repo.URL, Dir: filepath.Join(k.dir, "tuf"), Root: repo.Root1()}
	cfg := bundles.Config{Dir: filepath.Join(k.dir, "apps"), Records: k.rec, Guard: k.guard, AgentVersion: "0.5.0",
		Health: bundles.HealthFunc(func(context.Context, bundles.App) error {
			if why := k.health.Load(); why != nil {
				return errors.New(*why)
			}
			return nil
		})}
	for _, o := range opts {
		o(&cfg, &sc)
	}
	var err error
	if k.src, err = bundles.NewSource(sc); err != nil {
		t.Fatal(err)
	}
	cfg.Source = k.src
	if k.m, err = bundles.New(cfg); err != nil {
		t.Fatal(err)
	}
	return k
}

func (k *kiosk) unhealthy(msg string) { k.health.Store(&msg) }
func (k *kiosk) healthy()             { k.health.Store(nil) }

// run runs the manager until the test ends.
func (k *kiosk) run() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); k.m.Run(ctx) }()
	k.t.Cleanup(func() { cancel(); <-done })
}

// waitState waits until app is in state (and, if version is set, that version is the active
// or failed one).
func (k *kiosk) waitState(app, state, version string) wire.BundleStatus {
	k.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := k.m.Status().Bundles[app]
		if s.State == state && (version == "" || s.Active == version || s.Failed == version) {
			return s
		}
		if time.Now().After(deadline) {
			k.t.Fatalf("%s never %s (%s): %+v", app, state, version, s)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func manifest(v string) bundle.Manifest {
	return bundle.Manifest{App: "tax-print", Version: v, Services: []string{"Printer"}, Peripherals: []string{"document-printer"}}
}

func want(app, v string) wire.UpdateTargets {
	return wire.UpdateTargets{Bundles: map[string]string{app: v}}
}

// TestInstallServeAndRollBack: a signed bundle is fetched, verified, unpacked and activated, and
// served at its origin with its manifest known to the local API; a next version that fails its
// health check is rolled back to the one before, which keeps being served; asking for the old
// version again (a rollback by hand) takes it from the cache.
func TestInstallServeAndRollBack(t *testing.T) {
	repo := bundlestest.NewRepo(t)
	repo.AddBundle(manifest("1.0.0"), 50_000)
	k := newKiosk(t, repo)
	k.run()
	k.m.Want(want("tax-print", "1.0.0"))
	k.waitState("tax-print", wire.BundleActive, "1.0.0")

	srv := httptest.NewServer(k.m)
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	get := func(path string) (int, string, string) {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Host = "tax-print.localhost:" + port
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b), res.Header.Get("X-Kiosk-App")
	}
	if s, body, app := get("/"); s != 200 || !strings.Contains(body, "tax-print 1.0.0") || app != "tax-print@1.0.0" {
		t.Fatalf("entry page: %d %q %q", s, body, app)
	}
	if s, _, _ := get("/assets/"); s != 404 {
		t.Fatalf("directory listed: %d", s)
	}
	apps := k.m.Apps(port)
	if m, ok := apps.AppForOrigin(bundles.Origin("tax-print", port)); !ok || m.App != "tax-print" || m.Services[0] != "Printer" {
		t.Fatalf("local API manifest: %+v %v", m, ok)
	}
	if _, ok := apps.AppForOrigin(bundles.Origin("tax-print", "1")); ok {
		t.Fatal("an app at another port is let in")
	}
	if _, ok := apps.AppForOrigin(bundles.Origin("evil", port)); ok {
		t.Fatal("an app not installed is let in")
	}

	repo.AddBundle(manifest("1.1.0"), 50_000)
	k.unhealthy("the shell did not load it")
	k.m.Want(want("tax-print", "1.1.0"))
	s := k.waitState("tax-print", wire.BundleFailed, "1.1.0")
	if s.Active != "1.0.0" || !strings.Contains(s.Error, "the shell did not load it") {
		t.Fatalf("after a failed health check: %+v", s)
	}
	if _, body, _ := get("/"); !strings.Contains(body, "tax-print 1.0.0") {
		t.Fatalf("rolled back, but serving %q", body)
	}
	// The failed target is not tried again.
	k.healthy()
	k.m.Want(want("tax-print", "1.1.0"))
	time.Sleep(50 * time.Millisecond)
	if s := k.m.Status().Bundles["tax-print"]; s.State != wire.BundleFailed {
		t.Fatalf("a failed target tried again: %+v", s)
	}
	// A fixed 1.2.0 goes in; back to 1.0.0 by hand comes from the cache.
	repo.AddBundle(manifest("1.2.0"), 50_000)
	k.m.Want(want("tax-print", "1.2.0"))
	k.waitState("tax-print", wire.BundleActive, "1.2.0")
	bytesBefore, hitsBefore := k.src.Downloaded()
	k.m.Want(want("tax-print", "1.0.0"))
	k.waitState("tax-print", wire.BundleActive, "1.0.0")
	if b, hits := k.src.Downloaded(); b != bytesBefore || hits != hitsBefore+1 {
		t.Fatalf("rolling back downloaded %d bytes, %d cache hits", b-bytesBefore, hits-hitsBefore)
	}
	var kinds []string
	for _, e := range k.rec.Events(t) {
		kinds = append(kinds, e.Version+":"+e.Event)
	}
	if got := strings.Join(kinds, " "); got != "1.0.0:activated 1.1.0:rolled-back 1.2.0:activated 1.0.0:activated" {
		t.Fatalf("events: %s", got)
	}
}

// TestNoActivationDuringSession: a bundle staged while a citizen uses the kiosk waits for the
// session to end; no session starts while it switches.
func TestNoActivationDuringSession(t *testing.T) {
	repo := bundlestest.NewRepo(t)
	repo.AddBundle(manifest("1.0.0"), 10_000)
	k := newKiosk(t, repo)
	k.guard.Start()
	k.run()
	k.m.Want(want("tax-print", "1.0.0"))
	k.waitState("tax-print", wire.BundleWaitingIdle, "")
	time.Sleep(100 * time.Millisecond)
	if s := k.m.Status().Bundles["tax-print"]; s.Active != "" || len(k.m.Active()) != 0 {
		t.Fatalf("activated during a citizen session: %+v", s)
	}
	k.guard.End()
	k.waitState("tax-print", wire.BundleActive, "1.0.0")
	if k.guard.Waits.Load() == 0 {
		t.Fatal("never waited for the session")
	}
}

func TestMinAgentVersion(t *testing.T) {
	repo := bundlestest.NewRepo(t)
	m := manifest("2.0.0")
	m.MinAgent = "0.9.0"
	repo.AddBundle(m, 1000)
	k := newKiosk(t, repo)
	k.run()
	k.m.Want(want("tax-print", "2.0.0"))
	if s := k.waitState("tax-print", wire.BundleRefused, "2.0.0"); !strings.Contains(s.Error, "needs agent 0.9.0") {
		t.Fatalf("status: %+v", s)
	}
}

// TestResumedDownload: a download cut halfway goes on from where it stopped.
func TestResumedDownload(t *testing.T) {
	repo := bundlestest.NewRepo(t)
	archive := repo.AddBundle(manifest("1.0.0"), 400_000)
	repo.TruncateOnce(bundlestest.TargetPath(tufmeta.BundleTarget("tax-print", "1.0.0"), archive), 150_000)
	k := newKiosk(t, repo, func(c *bundles.Config, _ *bundles.SourceConfig) { c.Retry = 20 * time.Millisecond })
	k.run()
	k.m.Want(want("tax-print", "1.0.0"))
	k.waitState("tax-print", wire.BundleActive, "1.0.0")
	if repo.Ranges.Load() != 1 {
		t.Fatalf("%d range requests, want 1", repo.Ranges.Load())
	}
	if sent := repo.Bytes.Load(); sent > int64(len(archive))+1000 {
		t.Fatalf("served %d bytes for a %d-byte target: not resumed", sent, len(archive))
	}
}

func TestStateSurvivesRestart(t *testing.T) {
	repo := bundlestest.NewRepo(t)
	repo.AddBundle(manifest("1.0.0"), 1000)
	k := newKiosk(t, repo)
	k.run()
	k.m.Want(want("tax-print", "1.0.0"))
	k.waitState("tax-print", wire.BundleActive, "1.0.0")
	again, err := bundles.New(bundles.Config{Dir: filepath.Join(k.dir, "apps"), Source: k.src, Records: k.rec})
	if err != nil {
		t.Fatal(err)
	}
	if a := again.Active()["tax-print"]; a.Version != "1.0.0" || a.Manifest.Entry != "index.html" {
		t.Fatalf("after restart: %+v", a)
	}
	if _, err := os.Stat(filepath.Join(a(again).Dir, "index.html")); err != nil {
		t.Fatal(err)
	}
}

func a(m *bundles.Manager) bundles.App { return m.Active()["tax-print"] }
