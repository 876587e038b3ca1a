package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/kioskfleet/kioskfleet/agent/bundles"
	"github.com/kioskfleet/kioskfleet/agent/journal"
	"github.com/kioskfleet/kioskfleet/agent/localapi"
	"github.com/kioskfleet/kioskfleet/agent/shell"
	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// openShell builds the transaction journal and the kiosk shell served beside the local device
// API (agent/shell): its devices and logins are the API's, observed for the journal and the
// citizen's session.
func (a *Agent) openShell(hc *http.Client) (localapi.Devices, error) {
	key := a.id.Signer()
	if key == nil {
		return nil, errors.New("agent: the kiosk shell needs the enrolled ECDSA device key to sign its journal")
	}
	ctx := context.Background()
	j, err := journal.Open(ctx, a.ob, journal.Options{Key: key})
	if err != nil {
		return nil, err
	}
	var hub shell.Hub
	var catalog shell.Catalog // nil: the shell's own services
	if a.id.HubURL != "" {
		c := &api.Client{BaseURL: a.id.HubURL, HTTP: hc}
		hub = &shell.HubClient{API: c, DeviceID: a.id.DeviceID, Key: key}
		catalog = &shell.AppCatalog{
			Listed:      func(ctx context.Context) (api.ChannelCatalog, error) { return c.ChannelCatalog(ctx, api.ChannelKiosk) },
			Peripherals: a.devs.Snapshot, Installed: a.installedApp, Guide: c.PublishedGuide, Every: catalogEvery,
			Log: a.log.With("component", "shell")}
	}
	a.shell, err = shell.New(shell.Config{
		Dir: filepath.Join(a.cfg.DataDir, "shell", "sessions"), VoiceDir: filepath.Join(a.cfg.DataDir, "shell", "voice"),
		DeviceID: a.id.DeviceID, Log: a.log.With("component", "shell"), Journal: j, Hub: hub, Catalog: catalog,
		Settings: func() (time.Duration, string) {
			a.mu.Lock()
			defer a.mu.Unlock()
			return a.settings.IdleTimeout.D, a.settings.HomeURL
		},
		EndConnections: func() int { return a.localAPI.EndSessions() },
	})
	if err != nil {
		return nil, err
	}
	return a.shell.Devices(a.devs), nil
}

// catalogEvery is how often the shell reads the hub's kiosk catalog (a memory read at the hub);
// peripherals gate its apps at every look, without the hub.
const catalogEvery = 15 * time.Second

// installedApp is where the kiosk's browser opens an installed kiosk bundle ("": not installed,
// or no apps listener).
func (a *Agent) installedApp(app string) string {
	if a.bundles == nil || a.appsLn == nil {
		return ""
	}
	if _, ok := a.bundles.Active()[app]; !ok {
		return ""
	}
	_, port, _ := net.SplitHostPort(a.appsLn.Addr().String())
	return bundles.Origin(app, port) + "/"
}

// shellSessions is the installer's SessionGuard on a kiosk with the shell: an app switches only
// between citizen sessions, and no session begins during the switch (shell.Hold).
type shellSessions struct{ a *Agent }

var _ bundles.SessionGuard = shellSessions{}

// Active implements bundles.SessionGuard.
func (g shellSessions) Active() bool { return g.a.CitizenSession() }

// WaitIdle implements bundles.SessionGuard.
func (g shellSessions) WaitIdle(ctx context.Context) (func(), error) {
	if g.a.shell == nil {
		return func() {}, nil
	}
	return g.a.shell.Hold(ctx)
}

// CitizenSession reports whether a citizen is using the kiosk now: restarts and updates wait.
func (a *Agent) CitizenSession() bool { return a.shell != nil && a.shell.Active() }

// cmdRestart restarts the agent once no citizen uses the kiosk: {"wait": "5m"} waits that long
// for the session to end (default: refuse at once). The command's result is recorded first; the
// agent then stops and starts again (kiosk-agent run re-executes itself).
func (a *Agent) cmdRestart(ctx context.Context, args json.RawMessage) (json.RawMessage, error) {
	var p struct {
		Wait string `json:"wait"`
	}
	if len(args) > 0 && string(args) != "null" {
		if err := json.Unmarshal(args, &p); err != nil {
			return nil, fmt.Errorf("restart: args must be {\"wait\": duration}: %w", err)
		}
	}
	wait := time.Duration(0)
	if p.Wait != "" {
		d, err := time.ParseDuration(p.Wait)
		if err != nil || d < 0 || d > time.Hour {
			return nil, fmt.Errorf("restart: wait %q: want a duration of at most 1h", p.Wait)
		}
		wait = d
	}
	if a.shell != nil && a.shell.Active() {
		wctx, cancel := context.WithTimeout(ctx, wait)
		err := a.shell.WaitIdle(wctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("restart refused: a citizen is using the kiosk (waited %s); the agent never restarts during a citizen's session: try again later or with {\"wait\": \"10m\"}", wait)
		}
	}
	a.restart.Store(true)
	return json.Marshal(map[string]any{"restarting": true, "waitedFor": wait.String()})
}

// RestartRequested reports whether Run returned because the restart command asked it to.
func (a *Agent) RestartRequested() bool { return a.restart.Load() }
