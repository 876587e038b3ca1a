package fleetsim

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kioskfleet/kioskfleet/agent/bundles"
	"github.com/kioskfleet/kioskfleet/pkg/tufmeta"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// taker makes a simulated kiosk take the apps its desired state names, as the agent does
// (agent/bundles): the hub's update repository refreshed and verified with the agent's TUF client,
// each app's target downloaded and checked against its signed length and hash (not kept), then
// the app reported active — or, for a FailRate share of the kiosks, failed, as if its health
// check had failed — in the reported state and a bundle.event record.
type taker struct {
	s        *sim
	id       string
	src      *bundles.Source
	failRate float64
	failOnly string // only this version fails ("": any)
	log      *slog.Logger
	stats    *takeStats

	mu      sync.Mutex
	want    wire.Desired // the newest desired state received
	applied int64        // its version, once taken
	status  wire.UpdateStatus
	kick    chan struct{}
}

type takeStats struct {
	active, failed, refused atomic.Int64
	bytes                   atomic.Int64
}

func newTaker(s *sim, id, hubURL string, hc *http.Client, stateDir string, failRate float64, failOnly string, stats *takeStats, log *slog.Logger) (*taker, error) {
	repo := strings.TrimRight(hubURL, "/") + "/tuf"
	src, err := bundles.NewSource(bundles.SourceConfig{RepoURL: repo, Dir: filepath.Join(stateDir, "tuf"), RootURL: repo + "/1.root.json", HTTP: hc, Discard: true})
	if err != nil {
		return nil, err
	}
	return &taker{s: s, id: id, src: src, failRate: failRate, failOnly: failOnly, stats: stats, log: log,
		status: wire.UpdateStatus{Bundles: map[string]wire.BundleStatus{}, Agent: wire.AgentStatus{Running: "fleetsim"}},
		kick:   make(chan struct{}, 1)}, nil
}

// stateVersion is the desired-state version the kiosk runs (link.Config.StateVersion).
func (t *taker) stateVersion() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.applied
}

// onDesired takes a desired state from the hub (link.Config.OnDesired).
func (t *taker) onDesired(_ context.Context, d wire.Desired) {
	t.mu.Lock()
	if d.Version > t.want.Version {
		t.want = d
	}
	t.mu.Unlock()
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// fails decides, the same way every time for a kiosk and version, whether the app fails here.
func (t *taker) fails(app, version string) bool {
	if t.failOnly != "" && version != t.failOnly {
		return false
	}
	h := sha256.Sum256([]byte(t.id + "/" + app + "@" + version))
	return float64(binary.BigEndian.Uint64(h[:8])>>11)/float64(1<<53) < t.failRate
}

// run takes each desired state in turn until ctx ends.
func (t *taker) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.kick:
		}
		t.mu.Lock()
		d := t.want
		t.mu.Unlock()
		if d.Version == 0 {
			continue
		}
		err := t.take(ctx, d)
		if err != nil && ctx.Err() == nil {
			t.log.Debug("fleetsim: updates: will try again", "err", err)
			time.AfterFunc(2*time.Second, func() {
				select {
				case t.kick <- struct{}{}:
				default:
				}
			})
		}
	}
}

// take installs what d asks for (as far as a simulated kiosk does) and reports it.
func (t *taker) take(ctx context.Context, d wire.Desired) error {
	var doc struct {
		Bundles map[string]string `json:"bundles"`
	}
	_ = json.Unmarshal(d.Doc, &doc)
	var todo []string
	t.mu.Lock()
	for app, v := range doc.Bundles {
		if st := t.status.Bundles[app]; st.Active != v && st.Failed != v {
			todo = append(todo, app)
		}
	}
	t.mu.Unlock()
	var errs []error
	if len(todo) > 0 {
		targets, err := t.src.Refresh(ctx)
		if err != nil {
			return err
		}
		for _, app := range todo {
			if err := t.install(ctx, targets, app, doc.Bundles[app]); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	t.mu.Lock()
	t.applied = d.Version
	status := wire.UpdateStatus{Bundles: maps.Clone(t.status.Bundles), Agent: t.status.Agent}
	t.mu.Unlock()
	var reported map[string]json.RawMessage
	if json.Unmarshal(d.Doc, &reported) != nil || reported == nil {
		reported = map[string]json.RawMessage{}
	}
	reported["updates"] = wire.Encode(status)
	_, err := t.s.ob.Append(ctx, wire.KindReported, wire.Business, wire.Encode(wire.Reported{Version: d.Version, Doc: wire.Encode(reported)}))
	return err
}

func (t *taker) install(ctx context.Context, targets *bundles.Targets, app, version string) error {
	name := tufmeta.BundleTarget(app, version)
	now := time.Now().UnixMilli()
	set := func(st wire.BundleStatus, e wire.BundleEvent) error {
		t.mu.Lock()
		prev := t.status.Bundles[app].Active
		if st.Active == "" {
			st.Active = prev
		}
		t.status.Bundles[app] = st
		t.mu.Unlock()
		e.App, e.Version, e.From, e.At = app, version, prev, now
		_, err := t.s.ob.Append(ctx, wire.KindBundleEvent, wire.Business, wire.Encode(e))
		return err
	}
	tf, _, ok := targets.Lookup(name)
	if !ok {
		t.stats.refused.Add(1)
		return set(wire.BundleStatus{Want: version, State: wire.BundleRefused, Failed: version, Error: name + " is not a signed target", At: now},
			wire.BundleEvent{Event: wire.BundleRefused, Error: "not a signed target"})
	}
	if _, _, err := t.src.Fetch(ctx, name, tf); err != nil {
		if errors.Is(err, bundles.ErrRefused) {
			t.stats.refused.Add(1)
			return set(wire.BundleStatus{Want: version, State: wire.BundleRefused, Failed: version, Error: err.Error(), At: now},
				wire.BundleEvent{Event: wire.BundleRefused, Error: err.Error()})
		}
		return err
	}
	t.stats.bytes.Add(tf.Length)
	if t.fails(app, version) {
		t.stats.failed.Add(1)
		why := fmt.Sprintf("health check: simulated failure (fleetsim --fail-rate %g)", t.failRate)
		return set(wire.BundleStatus{Want: version, State: wire.BundleFailed, Failed: version, Error: why, At: now},
			wire.BundleEvent{Event: wire.BundleRolledBack, Error: why})
	}
	t.stats.active.Add(1)
	return set(wire.BundleStatus{Active: version, Want: version, State: wire.BundleActive, At: now}, wire.BundleEvent{Event: wire.BundleActivated})
}
