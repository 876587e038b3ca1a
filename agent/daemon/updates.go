package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/kioskfleet/kioskfleet/agent/bundles"
	"github.com/kioskfleet/kioskfleet/pkg/semver"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// The kiosk apps and agent versions the hub assigns (desired state "bundles" and "agent"),
// installed by agent/bundles from the hub's update repository, and served to the kiosk's
// browser on the apps listener (Config.AppsAddr), each app at http://APP.localhost:PORT.

// openUpdates makes the update side of the agent (it needs the hub's address from enrollment).
func (a *Agent) openUpdates() error {
	if a.id.HubURL == "" {
		return nil
	}
	var root []byte
	if a.cfg.TUFRoot != "" {
		b, err := os.ReadFile(a.cfg.TUFRoot)
		if err != nil {
			return fmt.Errorf("agent: --tuf-root: %w", err)
		}
		root = b
	}
	repo := strings.TrimRight(a.id.HubURL, "/") + "/tuf"
	hc := a.id.HTTPClient() // trusts only the hub CA pinned at enrollment
	hc.Timeout = 30 * time.Second
	src, err := bundles.NewSource(bundles.SourceConfig{RepoURL: repo, Dir: filepath.Join(a.cfg.DataDir, "tuf"), Root: root,
		RootURL: repo + "/1.root.json", HTTP: hc})
	if err != nil {
		return err
	}
	agentDir := ""
	if _, launched := os.LookupEnv(bundles.EnvLaunched); launched {
		agentDir = filepath.Join(a.cfg.DataDir, "agent")
	}
	guard := a.cfg.Sessions
	if guard == nil {
		guard = shellSessions{a} // the shell, once openLocalAPI made it; without one, never a session
	}
	a.bundles, err = bundles.New(bundles.Config{Dir: filepath.Join(a.cfg.DataDir, "apps"), Source: src, Guard: guard,
		Health: a.appHealth(), Records: a.ob, AgentVersion: a.cfg.Version, Platform: runtime.GOOS + "-" + runtime.GOARCH,
		AgentDir: agentDir, Restart: a.switchAgent, Log: a.log.With("component", "bundles"), Changed: a.updatesChanged})
	if err != nil {
		return err
	}
	if !LocalAPIOff(a.cfg.AppsAddr) {
		ln, err := net.Listen("tcp", a.cfg.AppsAddr)
		if err != nil {
			return fmt.Errorf("agent: apps listener: %w", err)
		}
		a.appsLn = ln
		a.apps = &http.Server{Handler: a.bundles, ReadHeaderTimeout: 10 * time.Second}
	}
	return nil
}

// appHealth is what a newly activated app must pass: its entry page is served, the local device
// API lets it in with its manifest's services, and whatever the shell checks (Config.AppHealth).
func (a *Agent) appHealth() bundles.HealthCheck {
	var cs bundles.Checks
	cs = append(cs, bundles.HealthFunc(func(ctx context.Context, app bundles.App) error {
		if a.appsLn == nil {
			return nil // not served here: nothing to load
		}
		if err := (bundles.EntryCheck{Addr: a.appsLn.Addr().String()}).Check(ctx, app); err != nil {
			return err
		}
		if a.localLn == nil {
			return nil
		}
		_, port, _ := net.SplitHostPort(a.appsLn.Addr().String())
		return bundles.HandshakeCheck{Addr: a.localLn.Addr().String(), AppsPort: port}.Check(ctx, app)
	}))
	if a.cfg.AppHealth != nil {
		cs = append(cs, a.cfg.AppHealth)
	}
	return cs
}

// AppsAddr returns the address kiosk apps are served on ("" when off).
func (a *Agent) AppsAddr() string {
	if a.appsLn == nil {
		return ""
	}
	return a.appsLn.Addr().String()
}

// Bundles returns the agent's app installer (nil before enrollment gave it a hub).
func (a *Agent) Bundles() *bundles.Manager { return a.bundles }

// runUpdates runs the installer and the apps listener until ctx ends, and tells the launcher the
// agent is healthy once it reached the hub.
func (a *Agent) runUpdates(ctx context.Context) {
	if a.bundles == nil {
		return
	}
	a.bundles.AgentStarted(ctx)
	a.wantUpdates()
	done := make(chan struct{})
	go func() { defer close(done); _ = a.bundles.Run(ctx) }()
	if a.apps != nil {
		go func() { _ = a.apps.Serve(a.appsLn) }()
		a.log.Info("kiosk apps served", "addr", a.AppsAddr())
	}
	go a.healthyOnceConnected(ctx)
	<-ctx.Done()
	if a.apps != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = a.apps.Shutdown(sctx)
		cancel()
	}
	<-done
}

func (a *Agent) healthyOnceConnected(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		if a.link.Connected() {
			bundles.Healthy()
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// wantUpdates tells the installer what the applied desired state asks for.
func (a *Agent) wantUpdates() {
	if a.bundles == nil {
		return
	}
	a.mu.Lock()
	s := a.settings
	a.mu.Unlock()
	a.bundles.Want(wire.UpdateTargets{Bundles: s.Bundles, Agent: s.Agent})
}

// updatesChanged reports the new state of the updates (at most once a second while they change).
func (a *Agent) updatesChanged() {
	select {
	case a.report <- struct{}{}:
	default:
	}
}

// reportUpdates sends the reported state when the installer changed, at most once a second.
func (a *Agent) reportUpdates(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.report:
		}
		a.reportState(ctx, "")
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// switchAgent ends Run so that the launcher starts the staged agent.
func (a *Agent) switchAgent() {
	a.log.Info("restarting to switch to the staged agent")
	if a.stop != nil {
		a.stop()
	}
}

// withUpdates adds the installer's status to a reported document (key "updates").
func (a *Agent) withUpdates(doc json.RawMessage) json.RawMessage {
	if a.bundles == nil {
		return doc
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(doc, &m); err != nil || m == nil {
		m = map[string]json.RawMessage{}
	}
	m["updates"] = wire.Encode(a.bundles.Status())
	return wire.Encode(m)
}

// checkUpdateTargets checks the desired state's "bundles" and "agent".
func checkUpdateTargets(bundles map[string]string, agent string) error {
	var errs []error
	for app, v := range bundles {
		if len(app) < 2 || len(app) > 64 || strings.Trim(app, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
			errs = append(errs, fmt.Errorf("bundles: app %q: 2-64 of a-z, 0-9 and '-'", app))
		}
		if !semver.Valid(v) {
			errs = append(errs, fmt.Errorf("bundles: %s: version %q is not a semantic version", app, v))
		}
	}
	if agent != "" && !semver.Valid(agent) {
		errs = append(errs, fmt.Errorf("agent: version %q is not a semantic version", agent))
	}
	return errors.Join(errs...)
}
