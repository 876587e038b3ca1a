// Package bundles installs the kiosk apps the hub assigns to this kiosk, and the agent's own new
// versions, from the hub's update repository (hub/updates, The Update Framework): it fetches
// each target (resumably, into a content-addressed cache), verifies it with the TUF client
// (source.go), unpacks it beside the running version, activates it atomically between citizen
// sessions (never during one: SessionGuard), checks that it works (HealthCheck: the kiosk shell
// loads it, its local-API handshake succeeds), and rolls back to the previous version when it
// does not. Each outcome is a record in the outbox (kind bundle.event) and part of the state the
// agent reports (wire.UpdateStatus), from which the hub's rollouts count successes and failures.
//
// The agent binary itself is a target too (selfupdate.go): staged like a bundle, switched to on
// restart by the launcher, which falls back to the previous binary when the new one does not
// report healthy.
package bundles

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/atomicfile"
	"github.com/kioskfleet/kioskfleet/pkg/bundle"
	"github.com/kioskfleet/kioskfleet/pkg/semver"
	"github.com/kioskfleet/kioskfleet/pkg/tufmeta"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// SessionGuard is the kiosk shell's view of citizen sessions (agent/shell implements it): an app
// is switched only while no citizen uses the kiosk.
type SessionGuard interface {
	// Active reports whether a citizen session is in progress.
	Active() bool
	// WaitIdle blocks until no citizen session is active, then holds new sessions off (the shell
	// shows a short notice) until release is called. The activation happens in between.
	WaitIdle(ctx context.Context) (release func(), err error)
}

// NoSessions is the SessionGuard of a kiosk without a shell: never a session.
type NoSessions struct{}

// Active implements SessionGuard.
func (NoSessions) Active() bool { return false }

// WaitIdle implements SessionGuard.
func (NoSessions) WaitIdle(context.Context) (func(), error) { return func() {}, nil }

// App is an installed version of a kiosk app.
type App struct {
	Name     string
	Version  string
	Dir      string // its unpacked files
	Manifest bundle.Manifest
}

// HealthCheck tells whether a newly activated app works; an error rolls it back.
type HealthCheck interface {
	Check(ctx context.Context, app App) error
}

// HealthFunc adapts a function to HealthCheck.
type HealthFunc func(ctx context.Context, app App) error

// Check implements HealthCheck.
func (f HealthFunc) Check(ctx context.Context, app App) error { return f(ctx, app) }

// Checks runs health checks in order; the first failure is the answer.
type Checks []HealthCheck

// Check implements HealthCheck.
func (cs Checks) Check(ctx context.Context, app App) error {
	for _, c := range cs {
		if err := c.Check(ctx, app); err != nil {
			return err
		}
	}
	return nil
}

// Recorder keeps a record for the hub (the agent's outbox).
type Recorder interface {
	Append(ctx context.Context, kind string, class wire.Class, body []byte) (uint64, error)
}

// Config configures a Manager.
type Config struct {
	Dir          string // apps are unpacked under it, one folder per app
	Source       *Source
	Guard        SessionGuard // nil: NoSessions
	Health       HealthCheck  // nil: none
	Records      Recorder
	AgentVersion string // a bundle needing a later agent is refused
	Platform     string // GOOS-GOARCH, for agent targets
	// AgentDir is the launcher's folder (selfupdate.go); "": the agent does not update itself.
	AgentDir string
	// Restart is called, between citizen sessions, once a new agent is staged: the agent should
	// exit so that the launcher starts the new one.
	Restart func()
	Log     *slog.Logger
	// Changed is called after every change of Status (the agent reports its state).
	Changed func()
	// Retry is the first wait after a failure to reach the repository (doubling to 5 min);
	// default 5 s.
	Retry        time.Duration
	HealthTimout time.Duration // for one health check; default 30 s
	Now          func() time.Time
}

// Manager installs apps and agent versions as the hub wants them. Create it with New, tell it
// what is wanted with Want, and run it with Run.
type Manager struct {
	cfg  Config
	log  *slog.Logger
	kick chan struct{}

	mu     sync.Mutex
	want   wire.UpdateTargets
	status wire.UpdateStatus
	state  state
	active map[string]App // by app name, for serving
}

// state is what the manager keeps on disk (Dir/state.json): per app, the previous version to
// roll back to and the targets that failed (never tried again).
type state struct {
	Apps  map[string]*appState `json:"apps"`
	Agent wire.AgentStatus     `json:"agent"`
}

type appState struct {
	Active, Previous       string            // versions
	ActiveDir, PreviousDir string            // unpacked folders, relative to Dir/APP
	Failed                 map[string]string `json:",omitempty"` // version -> sha256 that failed
	Status                 wire.BundleStatus
}

// New returns a Manager, with the apps installed before (Dir/state.json).
func New(cfg Config) (*Manager, error) {
	if cfg.Dir == "" || cfg.Source == nil || cfg.Records == nil {
		return nil, errors.New("bundles: Config needs Dir, Source and Records")
	}
	if cfg.Guard == nil {
		cfg.Guard = NoSessions{}
	}
	if cfg.Health == nil {
		cfg.Health = Checks{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Retry <= 0 {
		cfg.Retry = 5 * time.Second
	}
	if cfg.HealthTimout <= 0 {
		cfg.HealthTimout = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("bundles: %w", err)
	}
	m := &Manager{cfg: cfg, log: cfg.Log, kick: make(chan struct{}, 1), active: map[string]App{}}
	if err := m.load(); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Manager) statePath() string { return filepath.Join(m.cfg.Dir, "state.json") }

func (m *Manager) load() error {
	m.state = state{Apps: map[string]*appState{}}
	b, err := os.ReadFile(m.statePath())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("bundles: %w", err)
	}
	if err == nil {
		if err := json.Unmarshal(b, &m.state); err != nil {
			return fmt.Errorf("bundles: %s: %w", m.statePath(), err)
		}
	}
	if m.state.Apps == nil {
		m.state.Apps = map[string]*appState{}
	}
	m.status = wire.UpdateStatus{Bundles: map[string]wire.BundleStatus{}, Agent: m.state.Agent}
	for name, as := range m.state.Apps {
		if as.Active != "" {
			a, err := m.readApp(name, as.Active, as.ActiveDir)
			if err != nil {
				m.log.Error("installed app unreadable", "app", name, "version", as.Active, "err", err)
				continue
			}
			m.active[name] = a
		}
		m.status.Bundles[name] = as.Status
	}
	return nil
}

func (m *Manager) readApp(name, version, dir string) (App, error) {
	full := filepath.Join(m.cfg.Dir, name, dir)
	b, err := os.ReadFile(filepath.Join(full, bundle.ManifestName))
	if err != nil {
		return App{}, err
	}
	var man bundle.Manifest
	if err := json.Unmarshal(b, &man); err != nil {
		return App{}, err
	}
	if err := man.Check(); err != nil {
		return App{}, err
	}
	return App{Name: name, Version: version, Dir: full, Manifest: man}, nil
}

// save writes the state; the caller holds mu.
func (m *Manager) save() error {
	m.state.Agent = m.status.Agent
	b, err := json.MarshalIndent(m.state, "", " ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(m.statePath(), b, 0o600)
}

// Want sets what the hub wants installed (the desired state's "bundles" and "agent"); Run does
// it. Apps not named are left as they are.
func (m *Manager) Want(t wire.UpdateTargets) {
	m.mu.Lock()
	m.want = wire.UpdateTargets{Bundles: maps.Clone(t.Bundles), Agent: t.Agent}
	for app, v := range t.Bundles {
		st := m.status.Bundles[app]
		if st.Want != v {
			st.Want = v
			if st.Active != v && (st.State == "" || st.State == wire.BundleActive) {
				st.State = wire.BundlePending
			}
			m.status.Bundles[app] = st
		}
	}
	if t.Agent != "" {
		m.status.Agent.Want = t.Agent
	}
	m.mu.Unlock()
	m.wake()
}

func (m *Manager) wake() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// Status returns what is installed and how the last attempts went.
func (m *Manager) Status() wire.UpdateStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	return wire.UpdateStatus{Bundles: maps.Clone(m.status.Bundles), Agent: m.status.Agent}
}

// Active returns the installed apps, by name.
func (m *Manager) Active() map[string]App {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.active)
}

// Run installs what is wanted until ctx ends: at each Want, and again after a failure to reach
// the repository (with backoff). A target that failed its health check, or was refused, is not
// tried again; the hub's rollout sees it failed.
func (m *Manager) Run(ctx context.Context) error {
	backoff := m.cfg.Retry
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-m.kick:
		case <-retry:
		}
		retry = nil
		if err := m.pass(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			m.log.Warn("updates: will try again", "in", backoff, "err", err)
			retry = time.After(backoff)
			backoff = min(backoff*2, 5*time.Minute)
			continue
		}
		backoff = m.cfg.Retry
	}
}

// pass does what is wanted and not yet done; an error means "try again later".
func (m *Manager) pass(ctx context.Context) error {
	m.mu.Lock()
	want := m.want
	var todo []string
	for app, v := range want.Bundles {
		as := m.state.Apps[app]
		if as == nil || as.Active != v {
			todo = append(todo, app)
		}
	}
	agentTodo := want.Agent != "" && want.Agent != m.cfg.AgentVersion && m.status.Agent.Staged != want.Agent && m.status.Agent.Failed != want.Agent
	m.mu.Unlock()
	if len(todo) == 0 && !agentTodo {
		return nil
	}
	slices.Sort(todo)
	targets, err := m.cfg.Source.Refresh(ctx)
	if err != nil {
		if errors.Is(err, ErrRefused) {
			// Every bundle waiting is refused: the repository does not verify.
			for _, app := range todo {
				m.refused(ctx, app, want.Bundles[app], "", err)
			}
		}
		return err
	}
	var errs []error
	for _, app := range todo {
		if err := m.install(ctx, targets, app, want.Bundles[app]); err != nil {
			errs = append(errs, err)
		}
	}
	if agentTodo {
		if err := m.stageAgent(ctx, targets, want.Agent); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// install fetches, verifies, stages and activates one app version; an error means "try again".
func (m *Manager) install(ctx context.Context, targets *Targets, app, version string) error {
	name := tufmeta.BundleTarget(app, version)
	tf, custom, ok := targets.Lookup(name)
	if !ok {
		m.refused(ctx, app, version, "", fmt.Errorf("%w: %s is not a signed target", ErrRefused, name))
		return nil
	}
	sum := tufmeta.SHA256(tf)
	m.mu.Lock()
	as := m.appState(app)
	failedBefore := as.Failed[version] == sum
	m.mu.Unlock()
	if failedBefore {
		return nil // this very target failed here before: the hub's rollout knows
	}
	if custom.Kind != tufmeta.KindBundle || custom.App != app || custom.Version != version || custom.Manifest == nil {
		m.refused(ctx, app, version, sum, fmt.Errorf("%w: target %s describes %s %s@%s", ErrRefused, name, custom.Kind, custom.App, custom.Version))
		return nil
	}
	if mv := custom.Manifest.MinAgent; mv != "" && semver.Compare(m.cfg.AgentVersion, mv) < 0 {
		m.refused(ctx, app, version, sum, fmt.Errorf("%s needs agent %s or later; this is %s", name, mv, m.cfg.AgentVersion))
		return nil
	}
	m.setStatus(app, func(s *wire.BundleStatus) { s.State, s.Want, s.Error = wire.BundleDownloading, version, "" })
	path, hit, err := m.cfg.Source.Fetch(ctx, name, tf)
	if errors.Is(err, ErrRefused) {
		m.refused(ctx, app, version, sum, err)
		return nil
	}
	if err != nil {
		m.setStatus(app, func(s *wire.BundleStatus) { s.State, s.Error = wire.BundlePending, err.Error() })
		return err
	}
	archive, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	b, err := bundle.Read(archive)
	if err != nil || b.Manifest.App != app || b.Manifest.Version != version {
		m.refused(ctx, app, version, sum, fmt.Errorf("%w: %s: the signed archive is not a bundle of %s@%s: %v", ErrRefused, name, app, version, err))
		return nil
	}
	dir := version + "-" + sum[:12]
	full := filepath.Join(m.cfg.Dir, app, dir)
	if _, err := os.Stat(filepath.Join(full, bundle.ManifestName)); err != nil {
		os.RemoveAll(full) // a half unpacking of an earlier attempt
		if err := os.MkdirAll(filepath.Join(m.cfg.Dir, app), 0o700); err != nil {
			return err
		}
		if err := bundle.Unpack(archive, full); err != nil {
			return fmt.Errorf("bundles: stage %s: %w", name, err)
		}
	}
	m.log.Info("app staged", "app", app, "version", version, "cached", hit)
	m.setStatus(app, func(s *wire.BundleStatus) { s.State = wire.BundleStaged })
	return m.activate(ctx, App{Name: app, Version: version, Dir: full, Manifest: b.Manifest}, dir, sum)
}

// activate switches app to the staged version between citizen sessions, checks it, and rolls
// back when the check fails.
func (m *Manager) activate(ctx context.Context, a App, dir, sum string) error {
	m.setStatus(a.Name, func(s *wire.BundleStatus) { s.State = wire.BundleWaitingIdle })
	release, err := m.cfg.Guard.WaitIdle(ctx)
	if err != nil {
		return fmt.Errorf("bundles: wait for no citizen session: %w", err)
	}
	defer release()
	m.mu.Lock()
	if m.want.Bundles[a.Name] != a.Version { // the hub changed its mind meanwhile
		m.mu.Unlock()
		m.wake()
		return nil
	}
	as := m.appState(a.Name)
	prev := App{}
	if as.Active != "" {
		prev = m.active[a.Name]
	}
	prevVersion, prevDir := as.Active, as.ActiveDir
	as.Previous, as.PreviousDir = prevVersion, prevDir
	as.Active, as.ActiveDir = a.Version, dir
	m.active[a.Name] = a
	err = m.save()
	m.mu.Unlock()
	if err != nil {
		return err
	}
	if m.cfg.Changed != nil {
		m.cfg.Changed() // the app's manifest is served now: the local API knows it
	}
	hctx, cancel := context.WithTimeout(ctx, m.cfg.HealthTimout)
	herr := m.cfg.Health.Check(hctx, a)
	cancel()
	if herr == nil {
		m.event(ctx, wire.BundleEvent{App: a.Name, Version: a.Version, Event: wire.BundleActivated, From: prevVersion})
		m.setStatus(a.Name, func(s *wire.BundleStatus) {
			*s = wire.BundleStatus{Active: a.Version, Want: a.Version, State: wire.BundleActive, At: m.cfg.Now().UnixMilli()}
		})
		m.log.Info("app activated", "app", a.Name, "version", a.Version, "previous", prevVersion)
		m.prune(a.Name)
		return nil
	}
	// Roll back: the previous version (or none) is active again.
	m.event(ctx, wire.BundleEvent{App: a.Name, Version: a.Version, Event: wire.BundleRolledBack, From: prevVersion, Error: herr.Error()})
	m.mu.Lock()
	as.Active, as.ActiveDir, as.Previous, as.PreviousDir = prevVersion, prevDir, "", ""
	if as.Failed == nil {
		as.Failed = map[string]string{}
	}
	as.Failed[a.Version] = sum
	if prevVersion != "" {
		m.active[a.Name] = prev
	} else {
		delete(m.active, a.Name)
	}
	as.Status = wire.BundleStatus{Active: prevVersion, Want: a.Version, State: wire.BundleFailed, Failed: a.Version,
		Error: "health check: " + herr.Error(), At: m.cfg.Now().UnixMilli()}
	m.status.Bundles[a.Name] = as.Status
	err = m.save()
	m.mu.Unlock()
	m.log.Warn("app failed its health check: rolled back", "app", a.Name, "version", a.Version, "to", prevVersion, "err", herr)
	if m.cfg.Changed != nil {
		m.cfg.Changed()
	}
	return err
}

// refused records that a target was refused and is not installed.
func (m *Manager) refused(ctx context.Context, app, version, sum string, why error) {
	m.event(ctx, wire.BundleEvent{App: app, Version: version, Event: wire.BundleRefused, Error: why.Error()})
	m.mu.Lock()
	as := m.appState(app)
	if sum != "" {
		if as.Failed == nil {
			as.Failed = map[string]string{}
		}
		as.Failed[version] = sum
	}
	as.Status = wire.BundleStatus{Active: as.Active, Want: version, State: wire.BundleRefused, Failed: version, Error: why.Error(), At: m.cfg.Now().UnixMilli()}
	m.status.Bundles[app] = as.Status
	err := m.save()
	m.mu.Unlock()
	if err != nil {
		m.log.Error("updates: state not saved", "err", err)
	}
	m.log.Warn("update refused", "app", app, "version", version, "err", why)
	if m.cfg.Changed != nil {
		m.cfg.Changed()
	}
}

func (m *Manager) appState(app string) *appState {
	as := m.state.Apps[app]
	if as == nil {
		as = &appState{}
		m.state.Apps[app] = as
	}
	return as
}

func (m *Manager) setStatus(app string, f func(*wire.BundleStatus)) {
	m.mu.Lock()
	as := m.appState(app)
	s := m.status.Bundles[app]
	f(&s)
	s.At = m.cfg.Now().UnixMilli()
	as.Status, m.status.Bundles[app] = s, s
	m.mu.Unlock()
	if m.cfg.Changed != nil {
		m.cfg.Changed()
	}
}

// event appends a business record of what happened (the hub keeps it with the kiosk's records).
func (m *Manager) event(ctx context.Context, e wire.BundleEvent) {
	e.At = m.cfg.Now().UnixMilli()
	if _, err := m.cfg.Records.Append(ctx, wire.KindBundleEvent, wire.Business, wire.Encode(e)); err != nil && ctx.Err() == nil {
		m.log.Error("update event not recorded", "err", err)
	}
}

// prune removes unpacked versions of app other than the active and the previous one.
func (m *Manager) prune(app string) {
	m.mu.Lock()
	as := m.appState(app)
	keep := map[string]bool{as.ActiveDir: true, as.PreviousDir: true}
	m.mu.Unlock()
	entries, _ := os.ReadDir(filepath.Join(m.cfg.Dir, app))
	for _, e := range entries {
		if e.IsDir() && !keep[e.Name()] && !strings.HasPrefix(e.Name(), ".") {
			os.RemoveAll(filepath.Join(m.cfg.Dir, app, e.Name()))
		}
	}
}

// FileGuard is the SessionGuard of a kiosk whose shell tells sessions with a file: a citizen
// session is active while Path exists. While an app is switched the agent keeps Path+".updating",
// and such a shell starts no session while that exists.
type FileGuard struct {
	Path string
	Poll time.Duration // default 200 ms
}

// Active implements SessionGuard.
func (g FileGuard) Active() bool {
	_, err := os.Stat(g.Path)
	return err == nil
}

// WaitIdle implements SessionGuard.
func (g FileGuard) WaitIdle(ctx context.Context) (func(), error) {
	poll := cmpOr(g.Poll, 200*time.Millisecond)
	for g.Active() {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(poll):
		}
	}
	hold := g.Path + ".updating"
	if err := os.WriteFile(hold, nil, 0o600); err != nil {
		return nil, err
	}
	return func() { os.Remove(hold) }, nil
}

func cmpOr(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
