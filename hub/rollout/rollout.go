// Package rollout gives a signed kiosk app version, or agent version, to selected kiosks in
// waves (1% / 10% / 50% / 100% by default) with a soak time between them, and stops by itself
// when too many fail (by default when at least 5% of at least 20 kiosks done failed); operators
// pause, resume, abort and roll back by hand.
//
// A kiosk gets the version through its desired state (the hub's existing per-kiosk mechanism,
// keys "bundles" and "agent", wire.UpdateTargets): a kiosk offline during its wave gets it when
// it returns. How it went comes back in its reported state (key "updates", wire.UpdateStatus),
// which each Step reads to count updated and failed kiosks.
package rollout

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/semver"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

var (
	// ErrInvalid marks a rollout that cannot be (HTTP 400).
	ErrInvalid = store.ErrInvalid
	// ErrConflict marks an action the rollout's state does not allow, or a second rollout of an
	// app (HTTP 409).
	ErrConflict = errors.New("rollout: conflict")
)

// Store is what rollouts use.
type Store interface {
	store.Rollouts
	store.Devices
	store.State
	store.Catalog
}

// Dispatcher pushes a kiosk's desired state to it if it is connected.
type Dispatcher interface {
	PushDesired(ctx context.Context, deviceID string)
}

// Targets tells whether a target is signed (hub/updates).
type Targets interface {
	// AgentSigned reports whether some platform's binary of an agent version is signed.
	AgentSigned(ctx context.Context, version string) (bool, error)
}

// Config configures an Engine.
type Config struct {
	Store    Store
	Dispatch Dispatcher
	Targets  Targets
	Log      *slog.Logger
	Now      func() time.Time
	Tick     time.Duration // how often Run steps the rollouts; default 2 s
}

// Engine runs rollouts.
type Engine struct {
	cfg Config
	log *slog.Logger
}

// New returns an Engine.
func New(cfg Config) (*Engine, error) {
	if cfg.Store == nil || cfg.Dispatch == nil {
		return nil, errors.New("rollout: Config needs a Store and a Dispatcher")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 2 * time.Second
	}
	return &Engine{cfg: cfg, log: cfg.Log}, nil
}

func (e *Engine) now() time.Time { return e.cfg.Now().UTC() }

// spec is a RolloutSpec with its defaults applied and checked.
type spec struct {
	api.RolloutSpec
	soak time.Duration
}

// progress is what a rollout keeps of its waves.
type progress struct {
	Started []time.Time `json:"started"`
	Done    []time.Time `json:"done"`
	Pending int         `json:"pending"` // kiosks assigned or reverting: Step keeps following them
}

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

func (e *Engine) check(s *api.RolloutSpec) (spec, error) {
	var p []string
	switch s.Kind {
	case api.RolloutBundle:
		if s.App == "" {
			p = append(p, "app: required for a bundle")
		}
	case api.RolloutAgent:
		s.App = "kiosk-agent"
	default:
		p = append(p, fmt.Sprintf("kind %q: want bundle or agent", s.Kind))
	}
	if !semver.Valid(s.Version) {
		p = append(p, fmt.Sprintf("version %q: a semantic version", s.Version))
	}
	if len(s.Waves) == 0 {
		s.Waves = []int{1, 10, 50, 100}
	}
	for i, w := range s.Waves {
		if w < 1 || w > 100 || (i > 0 && w <= s.Waves[i-1]) {
			p = append(p, fmt.Sprintf("waves %v: increasing percentages from 1 to 100", s.Waves))
			break
		}
	}
	if len(s.Waves) > 0 && s.Waves[len(s.Waves)-1] != 100 {
		p = append(p, fmt.Sprintf("waves %v: the last is 100", s.Waves))
	}
	if s.Soak == "" {
		s.Soak = "10m"
	}
	soak, err := time.ParseDuration(s.Soak)
	if err != nil || soak < 0 || soak > 7*24*time.Hour {
		p = append(p, fmt.Sprintf("soak %q: a duration from 0s to 168h", s.Soak))
	}
	if s.MinDone == 0 {
		s.MinDone = 20
	}
	if s.FailPercent == 0 {
		s.FailPercent = 5
	}
	if s.MinDone < 1 || s.FailPercent <= 0 || s.FailPercent > 100 {
		p = append(p, "minDone: at least 1; failPercent: above 0, at most 100")
	}
	if r := s.Selector.Region; r != "" && (len(r) > 6 || strings.Trim(r, "0123456789") != "") {
		p = append(p, fmt.Sprintf("selector.region %q: a GB/T 2260 code prefix", r))
	}
	if len(p) > 0 {
		return spec{}, invalid("%s", strings.Join(p, "; "))
	}
	return spec{RolloutSpec: *s, soak: soak}, nil
}

// Create starts a rollout: the target must be there to take (a bundle published on the kiosk
// channel, hence signed; a signed agent version), no other rollout of the app may be running,
// and the selector must select kiosks. They are shuffled (deterministically, by rollout and
// kiosk ID) into the waves, and the first wave is given the version at once.
func (e *Engine) Create(ctx context.Context, who string, req api.RolloutSpec) (api.Rollout, error) {
	sp, err := e.check(&req)
	if err != nil {
		return api.Rollout{}, err
	}
	if err := e.checkTarget(ctx, sp); err != nil {
		return api.Rollout{}, err
	}
	active, err := e.cfg.Store.ListRollouts(ctx, api.RolloutRunning, api.RolloutPaused)
	if err != nil {
		return api.Rollout{}, err
	}
	for _, r := range active {
		if r.Kind == sp.Kind && r.App == sp.App {
			return api.Rollout{}, fmt.Errorf("%w: rollout %s of %s is %s: finish or abort it first", ErrConflict, r.ID, r.App, r.State)
		}
	}
	devs, err := e.selectDevices(ctx, sp.Selector)
	if err != nil {
		return api.Rollout{}, err
	}
	if len(devs) == 0 {
		return api.Rollout{}, invalid("the selector selects no kiosk in service")
	}
	now := e.now()
	id := "ro-" + now.Format("20060102-150405") + "-" + shortHash(sp.App+sp.Version+now.String())
	slices.SortFunc(devs, func(a, b store.Device) int { return cmp.Compare(rank(id, a.ID), rank(id, b.ID)) })
	rds := make([]store.RolloutDevice, len(devs))
	bounds := waveBounds(sp.Waves, len(devs))
	for i, d := range devs {
		w := 0
		for i >= bounds[w] {
			w++
		}
		prev, err := e.running(ctx, d, sp.Kind, sp.App)
		if err != nil {
			return api.Rollout{}, err
		}
		rds[i] = store.RolloutDevice{DeviceID: d.ID, Wave: w, Previous: prev, State: api.DeviceWaiting, UpdatedAt: now}
	}
	specJSON, _ := json.Marshal(sp.RolloutSpec)
	pr, _ := json.Marshal(progress{Started: make([]time.Time, len(sp.Waves)), Done: make([]time.Time, len(sp.Waves))})
	r := store.Rollout{ID: id, Kind: sp.Kind, App: sp.App, Version: sp.Version, State: api.RolloutRunning, Spec: specJSON, Progress: pr,
		CreatedBy: who, CreatedAt: now, UpdatedAt: now}
	if err := e.cfg.Store.CreateRollout(ctx, r, rds); err != nil {
		return api.Rollout{}, err
	}
	e.log.Info("rollout created", "rollout", id, "kind", sp.Kind, "app", sp.App, "version", sp.Version, "kiosks", len(devs), "waves", sp.Waves, "by", who)
	if err := e.Step(ctx, id); err != nil {
		return api.Rollout{}, err
	}
	return e.Get(ctx, id)
}

func (e *Engine) checkTarget(ctx context.Context, sp spec) error {
	if sp.Kind == api.RolloutAgent {
		if e.cfg.Targets == nil {
			return invalid("no update repository")
		}
		ok, err := e.cfg.Targets.AgentSigned(ctx, sp.Version)
		if err != nil {
			return err
		}
		if !ok {
			return invalid("agent %s is not a signed target: fleetctl keys sign-agent --version %s", sp.Version, sp.Version)
		}
		return nil
	}
	a, err := e.cfg.Store.GetApp(ctx, sp.App)
	if err != nil {
		return err
	}
	if a.Kind != api.KindKioskBundle {
		return invalid("app %s is a %s, not a kiosk bundle", a.ID, a.Kind)
	}
	v, err := e.cfg.Store.GetVersion(ctx, sp.App, sp.Version)
	if err != nil {
		return err
	}
	if st := v.Releases[api.ChannelKiosk]; v.State != api.StateApproved || (st != api.StatePublished && st != api.StateListed) {
		return fmt.Errorf("%w: %s@%s is not published on the kiosk channel (it is %s there): only a published, hence signed, bundle is rolled out",
			ErrConflict, sp.App, sp.Version, cmp.Or(st, v.State))
	}
	return nil
}

// selectDevices returns the kiosks in service the selector selects.
func (e *Engine) selectDevices(ctx context.Context, sel api.Selector) ([]store.Device, error) {
	devs, err := e.cfg.Store.ListDevices(ctx, store.DeviceFilter{IDs: sel.IDs, SiteID: sel.Site, Region: sel.Region, Model: sel.Model})
	if err != nil {
		return nil, err
	}
	devs = slices.DeleteFunc(devs, func(d store.Device) bool { return d.Revoked })
	if sel.Tag != "" {
		tags, err := e.cfg.Store.Tags(ctx)
		if err != nil {
			return nil, err
		}
		devs = slices.DeleteFunc(devs, func(d store.Device) bool { return !slices.Contains(tags[d.ID], sel.Tag) })
	}
	return devs, nil
}

// running returns the version of app (or of the agent) the kiosk reported running.
func (e *Engine) running(ctx context.Context, d store.Device, kind, app string) (string, error) {
	st, err := e.reported(ctx, d.ID)
	if err != nil {
		return "", err
	}
	if kind == api.RolloutAgent {
		return cmp.Or(st.Agent.Running, d.AgentVersion), nil
	}
	return st.Bundles[app].Active, nil
}

// reported returns what the kiosk last reported of its updates.
func (e *Engine) reported(ctx context.Context, id string) (wire.UpdateStatus, error) {
	var doc struct {
		Updates wire.UpdateStatus `json:"updates"`
	}
	r, err := e.cfg.Store.GetReported(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return doc.Updates, nil
	}
	if err != nil {
		return doc.Updates, err
	}
	_ = json.Unmarshal(r.Doc, &doc) // a kiosk reporting something else reports no updates
	return doc.Updates, nil
}

// rank orders kiosks for the waves: a hash of the rollout and kiosk IDs.
func rank(rollout, device string) uint64 {
	h := sha256.Sum256([]byte(rollout + "/" + device))
	return binary.BigEndian.Uint64(h[:8])
}

func shortHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return fmt.Sprintf("%x", h[:3])
}

// waveBounds returns, for each wave, the number of kiosks in it and the waves before: the
// cumulative percentage of n, rounded up, and at least one more kiosk per wave while there are.
func waveBounds(waves []int, n int) []int {
	b := make([]int, len(waves))
	for i, p := range waves {
		b[i] = int(math.Ceil(float64(p) * float64(n) / 100))
		if i > 0 {
			b[i] = max(b[i], min(b[i-1]+1, n))
		}
	}
	b[len(b)-1] = n
	return b
}
