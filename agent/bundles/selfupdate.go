package bundles

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/atomicfile"
	"github.com/kioskfleet/kioskfleet/pkg/tufmeta"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// The agent updates itself like an app, but switches on restart: the new binary is verified and
// staged in the launcher's folder (AgentDir), named as the next version to run; the running agent
// then exits between citizen sessions, and the launcher (kiosk-agent launch, what the service
// manager runs) starts the new binary on trial. If it does not report healthy in time — it
// exits, hangs or never reaches the hub — the launcher stops it, marks the version failed and
// starts the previous binary again, which reports the fall-back.
//
// The launcher's folder:
//
//	versions/VERSION/kiosk-agent   the binaries installed
//	current                        the version that runs (none: the launcher's own binary)
//	next                           a version staged, tried at the next start
//	failed                         "VERSION: why": a version that failed its trial, to report
//	health/                        where a started agent says it is healthy (KF_AGENT_HEALTH_FILE)

// Environment the launcher gives the agent it starts.
const (
	EnvHealthFile = "KF_AGENT_HEALTH_FILE" // write this file once healthy
	EnvLaunched   = "KF_AGENT_LAUNCHED"    // the version the launcher thinks it started
)

// stageAgent fetches and verifies the agent's target of version and stages it for the next
// start; Config.Restart is then called between citizen sessions.
func (m *Manager) stageAgent(ctx context.Context, targets *Targets, version string) error {
	if m.cfg.AgentDir == "" {
		m.setAgent(func(s *wire.AgentStatus) {
			s.Failed, s.Error = version, "this agent does not run under the launcher (kiosk-agent launch): it cannot switch"
		})
		return nil
	}
	name := tufmeta.AgentTarget(version, m.cfg.Platform)
	tf, custom, ok := targets.Lookup(name)
	if !ok || custom.Kind != tufmeta.KindAgent || custom.Version != version {
		m.agentRefused(ctx, version, fmt.Errorf("%w: %s is not a signed agent target", ErrRefused, name))
		return nil
	}
	path, _, err := m.cfg.Source.Fetch(ctx, name, tf)
	if errors.Is(err, ErrRefused) {
		m.agentRefused(ctx, version, err)
		return nil
	}
	if err != nil {
		return err
	}
	bin := filepath.Join(m.cfg.AgentDir, "versions", version, "kiosk-agent")
	if err := copyFile(path, bin, 0o700); err != nil {
		return fmt.Errorf("bundles: stage agent %s: %w", version, err)
	}
	if err := atomicfile.WriteFile(filepath.Join(m.cfg.AgentDir, "next"), []byte(version+"\n"), 0o600); err != nil {
		return err
	}
	m.setAgent(func(s *wire.AgentStatus) { s.Staged, s.Error = version, "" })
	m.event(ctx, wire.BundleEvent{App: AgentApp, Version: version, Event: wire.BundleStagedEvt, From: m.cfg.AgentVersion})
	m.log.Info("agent staged: switching at the next start", "version", version)
	if m.cfg.Restart == nil {
		return nil
	}
	release, err := m.cfg.Guard.WaitIdle(ctx)
	if err != nil {
		return err
	}
	defer release()
	m.cfg.Restart()
	return nil
}

// AgentApp names the agent in bundle events.
const AgentApp = "kiosk-agent"

func (m *Manager) agentRefused(ctx context.Context, version string, why error) {
	m.setAgent(func(s *wire.AgentStatus) { s.Failed, s.Error = version, why.Error() })
	m.event(ctx, wire.BundleEvent{App: AgentApp, Version: version, Event: wire.BundleRefused, Error: why.Error()})
}

func (m *Manager) setAgent(f func(*wire.AgentStatus)) {
	m.mu.Lock()
	f(&m.status.Agent)
	err := m.save()
	m.mu.Unlock()
	if err != nil {
		m.log.Error("updates: state not saved", "err", err)
	}
	if m.cfg.Changed != nil {
		m.cfg.Changed()
	}
}

// AgentStarted is called once by a starting agent: it records the version running and, if the
// launcher fell back from a failed version, reports it.
func (m *Manager) AgentStarted(ctx context.Context) {
	m.setAgent(func(s *wire.AgentStatus) {
		s.Running = m.cfg.AgentVersion
		if s.Staged == m.cfg.AgentVersion {
			s.Staged = ""
		}
	})
	if m.cfg.AgentDir == "" {
		return
	}
	file := filepath.Join(m.cfg.AgentDir, "failed")
	b, err := os.ReadFile(file)
	if err != nil {
		return
	}
	version, why, _ := strings.Cut(strings.TrimSpace(string(b)), ": ")
	m.setAgent(func(s *wire.AgentStatus) { s.Failed, s.Staged, s.Error = version, "", why })
	m.event(ctx, wire.BundleEvent{App: AgentApp, Version: version, Event: wire.BundleFellBack, From: m.cfg.AgentVersion, Error: why})
	m.log.Warn("the new agent failed its trial: the launcher went back to this one", "failed", version, "why", why)
	os.Remove(file)
}

func copyFile(from, to string, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		return err
	}
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := to + ".tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, to)
}

// LauncherConfig configures a Launcher.
type LauncherConfig struct {
	Dir      string   // the launcher's folder (see above)
	Fallback string   // the binary to run while no version is installed (the launcher's own)
	Args     []string // the agent's arguments ("run", "--data", ...)
	Env      []string // added to the launcher's environment
	// HealthTimeout is how long a version on trial has to report healthy (default 2 min).
	HealthTimeout time.Duration
	// StopTimeout is how long a stopped agent has before it is killed (default 15 s).
	StopTimeout    time.Duration
	Stdout, Stderr io.Writer
	Log            *slog.Logger
}

// Launcher runs the agent and switches between its versions (kiosk-agent launch).
type Launcher struct {
	cfg LauncherConfig
	log *slog.Logger
}

// NewLauncher returns a Launcher.
func NewLauncher(cfg LauncherConfig) (*Launcher, error) {
	if cfg.Dir == "" || cfg.Fallback == "" {
		return nil, errors.New("bundles: LauncherConfig needs Dir and Fallback")
	}
	if cfg.HealthTimeout <= 0 {
		cfg.HealthTimeout = 2 * time.Minute
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 15 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Join(cfg.Dir, "health"), 0o700); err != nil {
		return nil, err
	}
	return &Launcher{cfg: cfg, log: cfg.Log}, nil
}

func (l *Launcher) read(name string) string {
	b, _ := os.ReadFile(filepath.Join(l.cfg.Dir, name))
	return strings.TrimSpace(string(b))
}

func (l *Launcher) binary(version string) string {
	if version == "" {
		return l.cfg.Fallback
	}
	return filepath.Join(l.cfg.Dir, "versions", version, "kiosk-agent")
}

// Run starts the agent and keeps it running until ctx ends (then stops it): a staged version on
// trial first, the current one otherwise, restarting it when it exits (with a growing pause).
func (l *Launcher) Run(ctx context.Context) error {
	pause := time.Second
	for ctx.Err() == nil {
		version, trial := l.read("current"), false
		if next := l.read("next"); next != "" {
			version, trial = next, true
		}
		started := time.Now()
		err := l.runOnce(ctx, version, trial)
		if ctx.Err() != nil {
			return nil
		}
		wait := 100 * time.Millisecond // a clean exit (to switch) or a fall-back: start at once
		if err != nil {
			// It crashed: start it again, waiting longer each time it crashes soon after starting.
			l.log.Warn("launcher: agent stopped", "version", orDev(version), "err", err)
			if time.Since(started) > time.Minute {
				pause = time.Second
			}
			wait, pause = pause, min(pause*2, 30*time.Second)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
	return nil
}

func orDev(v string) string {
	if v == "" {
		return "(installed)"
	}
	return v
}

// runOnce runs one agent process until it exits (or ctx ends); on trial it promotes the version
// once healthy, or falls back.
func (l *Launcher) runOnce(ctx context.Context, version string, trial bool) error {
	health := filepath.Join(l.cfg.Dir, "health", fmt.Sprintf("%s.%d", orDev(version), time.Now().UnixNano()))
	cmd := exec.Command(l.binary(version), l.cfg.Args...)
	cmd.Env = append(append(os.Environ(), l.cfg.Env...), EnvHealthFile+"="+health, EnvLaunched+"="+version)
	cmd.Stdout, cmd.Stderr = l.cfg.Stdout, l.cfg.Stderr
	// The agent must not outlive its launcher: a launcher killed (-9, the OOM killer) and started
	// again would otherwise run a second agent on the same data. Linux signals the child when the
	// thread that started it ends, which Go does only for a goroutine that locked its thread.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		if trial {
			l.fallBack(version, fmt.Sprintf("does not start: %v", err))
			return nil
		}
		return err
	}
	defer os.Remove(health)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	l.log.Info("launcher: agent started", "version", orDev(version), "pid", cmd.Process.Pid, "trial", trial)
	if trial {
		deadline := time.NewTimer(l.cfg.HealthTimeout)
		defer deadline.Stop()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
	trial:
		for {
			select {
			case err := <-exited:
				l.fallBack(version, fmt.Sprintf("exited before it was healthy: %v", err))
				return nil
			case <-deadline.C:
				l.stop(cmd, exited)
				l.fallBack(version, fmt.Sprintf("not healthy within %s", l.cfg.HealthTimeout))
				return nil
			case <-ctx.Done():
				l.stop(cmd, exited)
				return nil
			case <-tick.C:
				if _, err := os.Stat(health); err == nil {
					break trial
				}
			}
		}
		l.promote(version)
	}
	select {
	case err := <-exited:
		return err
	case <-ctx.Done():
		l.stop(cmd, exited)
		return nil
	}
}

// stop asks the agent to stop (SIGTERM), and kills it after StopTimeout.
func (l *Launcher) stop(cmd *exec.Cmd, exited <-chan error) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(l.cfg.StopTimeout):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// promote makes a version on trial the current one, keeping the one before as previous.
func (l *Launcher) promote(version string) {
	if prev := l.read("current"); prev != "" {
		_ = atomicfile.WriteFile(filepath.Join(l.cfg.Dir, "previous"), []byte(prev+"\n"), 0o600)
	}
	if err := atomicfile.WriteFile(filepath.Join(l.cfg.Dir, "current"), []byte(version+"\n"), 0o600); err != nil {
		l.log.Error("launcher: cannot make the new version current", "version", version, "err", err)
		return
	}
	os.Remove(filepath.Join(l.cfg.Dir, "next"))
	l.log.Info("launcher: new agent healthy: it is the current version now", "version", version)
}

// fallBack gives up a version on trial: the current one runs again and reports why.
func (l *Launcher) fallBack(version, why string) {
	os.Remove(filepath.Join(l.cfg.Dir, "next"))
	_ = atomicfile.WriteFile(filepath.Join(l.cfg.Dir, "failed"), []byte(version+": "+why+"\n"), 0o600)
	l.log.Error("launcher: new agent failed its trial: back to the current version", "version", version, "why", why, "current", orDev(l.read("current")))
}

// Healthy is what a started agent calls once it works (connected to its hub): it writes the file
// the launcher waits for, if it was started by one.
func Healthy() {
	if f := os.Getenv(EnvHealthFile); f != "" {
		_ = os.WriteFile(f, []byte("ok\n"), 0o600)
	}
}
