package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// Run steps every rollout that is going on, or still has kiosks to follow, every Tick until ctx
// ends.
func (e *Engine) Run(ctx context.Context) {
	t := time.NewTicker(e.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rs, err := e.cfg.Store.ListRollouts(ctx)
		if err != nil {
			if ctx.Err() == nil {
				e.log.Error("rollouts: list", "err", err)
			}
			continue
		}
		for _, r := range rs {
			if !following(r) {
				continue
			}
			if err := e.Step(ctx, r.ID); err != nil && ctx.Err() == nil && !errors.Is(err, store.ErrStale) {
				e.log.Error("rollout step failed", "rollout", r.ID, "err", err)
			}
		}
	}
}

// following reports whether Step has something to do for r.
func following(r store.Rollout) bool {
	if r.State == api.RolloutRunning || r.State == api.RolloutPaused {
		return true
	}
	var p progress
	_ = json.Unmarshal(r.Progress, &p)
	return p.Pending > 0
}

// Step looks at a rollout once: it reads what its assigned kiosks reported, aborts it when too
// many failed, and gives the version to the next wave once the current one is done and has
// soaked. Replicas may step at once: a rollout's update is checked against its revision.
func (e *Engine) Step(ctx context.Context, id string) error {
	e.step.Lock()
	defer e.step.Unlock()
	r, err := e.cfg.Store.GetRollout(ctx, id)
	if err != nil {
		return err
	}
	var sp api.RolloutSpec
	if err := json.Unmarshal(r.Spec, &sp); err != nil {
		return fmt.Errorf("rollout %s: spec: %w", id, err)
	}
	s, err := e.check(&sp)
	if err != nil {
		return err
	}
	var p progress
	if err := json.Unmarshal(r.Progress, &p); err != nil {
		return fmt.Errorf("rollout %s: progress: %w", id, err)
	}
	devs, err := e.cfg.Store.RolloutDevices(ctx, id)
	if err != nil {
		return err
	}
	now := e.now()
	changed, err := e.observe(ctx, r, devs, now)
	if err != nil {
		return err
	}
	if err := e.cfg.Store.UpdateRolloutDevices(ctx, id, changed); err != nil {
		return err
	}
	for _, c := range changed {
		i := slices.IndexFunc(devs, func(d store.RolloutDevice) bool { return d.DeviceID == c.DeviceID })
		devs[i] = c
	}
	before := r
	if r.State == api.RolloutRunning || r.State == api.RolloutPaused {
		c := count(devs, nil)
		if done := c.Updated + c.Failed; done >= s.MinDone && float64(c.Failed)*100 >= s.FailPercent*float64(done) {
			reason := fmt.Sprintf("automatic: %d of %d kiosks done failed (%.1f%%, the limit is %g%% of at least %d)",
				c.Failed, done, float64(c.Failed)*100/float64(done), s.FailPercent, s.MinDone)
			if err := e.withdraw(ctx, r, devs, now); err != nil {
				return err
			}
			r.State, r.Reason = api.RolloutAborted, reason
			e.log.Warn("rollout aborted", "rollout", id, "reason", reason)
		}
	}
	if r.State == api.RolloutRunning {
		if err := e.advance(ctx, &r, s, &p, devs, now); err != nil {
			return err
		}
	}
	p.Pending = 0
	devs, err = e.cfg.Store.RolloutDevices(ctx, id)
	if err != nil {
		return err
	}
	for _, d := range devs {
		if d.State == api.DeviceAssigned || d.State == api.DeviceReverting {
			p.Pending++
		}
	}
	r.Progress, _ = json.Marshal(p)
	if r.State == before.State && r.Wave == before.Wave && string(r.Progress) == string(before.Progress) && r.Reason == before.Reason {
		return nil
	}
	r.UpdatedAt = now
	_, err = e.cfg.Store.UpdateRollout(ctx, r)
	return err
}

// advance starts the current wave, or, once its online kiosks are done and it has soaked, the
// next; after the last, the rollout is completed.
func (e *Engine) advance(ctx context.Context, r *store.Rollout, s spec, p *progress, devs []store.RolloutDevice, now time.Time) error {
	for r.State == api.RolloutRunning {
		w := r.Wave
		if p.Started[w].IsZero() {
			if err := e.assign(ctx, r, devs, w, now); err != nil {
				return err
			}
			p.Started[w] = now
			e.log.Info("rollout wave started", "rollout", r.ID, "wave", w+1, "percent", s.Waves[w])
			return nil
		}
		if p.Done[w].IsZero() {
			waiting, err := e.awaited(ctx, devs, w, p.Started[w], now)
			if err != nil {
				return err
			}
			for _, d := range devs {
				if d.Wave <= w && waiting[d.DeviceID] && d.State == api.DeviceAssigned {
					return nil // a kiosk of the wave is still on its way
				}
			}
			p.Done[w] = now
		}
		if now.Sub(p.Done[w]) < s.soak {
			return nil
		}
		if w == len(s.Waves)-1 {
			r.State = api.RolloutCompleted
			e.log.Info("rollout completed", "rollout", r.ID)
			return nil
		}
		r.Wave++
	}
	return nil
}

// restartGrace is how long a wave waits for a kiosk that went offline after the wave started:
// it took the assignment and is most likely restarting into it (an agent update always does).
// Without it, the restart itself ended the wave before the kiosk could say it failed.
const restartGrace = 2 * time.Minute

// awaited returns which kiosks of waves up to w the wave waits for: the online ones, and those
// seen since the wave started (at started) within restartGrace. A kiosk offline since before
// the wave never holds it up; it takes the version when it comes back.
func (e *Engine) awaited(ctx context.Context, devs []store.RolloutDevice, w int, started, now time.Time) (map[string]bool, error) {
	return e.kiosks(ctx, devs, w, func(d store.Device) bool {
		return d.Online || !d.LastSeen.Before(started) && now.Sub(d.LastSeen) < restartGrace
	})
}

// online returns which kiosks of waves up to w are online.
func (e *Engine) online(ctx context.Context, devs []store.RolloutDevice, w int) (map[string]bool, error) {
	return e.kiosks(ctx, devs, w, func(d store.Device) bool { return d.Online })
}

// kiosks returns f of each kiosk of waves up to w.
func (e *Engine) kiosks(ctx context.Context, devs []store.RolloutDevice, w int, f func(store.Device) bool) (map[string]bool, error) {
	var ids []string
	for _, d := range devs {
		if d.Wave <= w {
			ids = append(ids, d.DeviceID)
		}
	}
	out := map[string]bool{}
	if len(ids) == 0 {
		return out, nil
	}
	ds, err := e.cfg.Store.ListDevices(ctx, store.DeviceFilter{IDs: ids})
	if err != nil {
		return nil, err
	}
	for _, d := range ds {
		out[d.ID] = f(d)
	}
	return out, nil
}

// observe reads the reported state of the kiosks on their way (assigned, reverting) and returns
// those whose state changed.
func (e *Engine) observe(ctx context.Context, r store.Rollout, devs []store.RolloutDevice, now time.Time) ([]store.RolloutDevice, error) {
	var changed []store.RolloutDevice
	for _, d := range devs {
		if d.State != api.DeviceAssigned && d.State != api.DeviceReverting {
			continue
		}
		st, err := e.reported(ctx, d.DeviceID)
		if err != nil {
			return nil, err
		}
		active, failed, why := st.Bundles[r.App].Active, "", ""
		if b := st.Bundles[r.App]; b.State == wire.BundleFailed || b.State == wire.BundleRefused {
			failed, why = b.Failed, b.Error
		}
		if r.Kind == api.RolloutAgent {
			active, failed, why = st.Agent.Running, st.Agent.Failed, st.Agent.Error
		}
		n := d
		switch {
		case d.State == api.DeviceAssigned && active == r.Version:
			n.State, n.Error = api.DeviceUpdated, ""
		case d.State == api.DeviceAssigned && failed == r.Version:
			n.State, n.Error = api.DeviceFailed, why
		case d.State == api.DeviceReverting && active == d.Previous:
			n.State = api.DeviceReverted
		}
		if n.State != d.State {
			n.UpdatedAt = now
			changed = append(changed, n)
		}
	}
	return changed, nil
}

// assign gives the version to the kiosks of wave w.
func (e *Engine) assign(ctx context.Context, r *store.Rollout, devs []store.RolloutDevice, w int, now time.Time) error {
	var changed []store.RolloutDevice
	for _, d := range devs {
		if d.Wave != w || d.State != api.DeviceWaiting {
			continue
		}
		d.State, d.UpdatedAt = api.DeviceAssigned, now
		changed = append(changed, d)
	}
	if err := e.setTargets(ctx, *r, changed, func(store.RolloutDevice) string { return r.Version }); err != nil {
		return err
	}
	return e.cfg.Store.UpdateRolloutDevices(ctx, r.ID, changed)
}

// previous is the version a kiosk ran before the rollout.
func previous(d store.RolloutDevice) string { return d.Previous }

// withdraw takes the version back from the kiosks it was given but did not reach yet (their
// desired state names their previous version again), and marks the waiting ones withdrawn: after
// an abort, a kiosk that was offline never gets it.
func (e *Engine) withdraw(ctx context.Context, r store.Rollout, devs []store.RolloutDevice, now time.Time) error {
	var changed, assigned []store.RolloutDevice
	for _, d := range devs {
		switch d.State {
		case api.DeviceAssigned:
			assigned = append(assigned, d)
		case api.DeviceWaiting:
		default:
			continue
		}
		d.State, d.UpdatedAt = api.DeviceWithdrawn, now
		changed = append(changed, d)
	}
	if err := e.setTargets(ctx, r, assigned, previous); err != nil {
		return err
	}
	return e.cfg.Store.UpdateRolloutDevices(ctx, r.ID, changed)
}

// setTargets writes, in one transaction, version(d) (or, "", nothing) as each kiosk's app or
// agent version in its desired state, keeping the rest of each document, and then pushes the
// documents to the kiosks connected.
func (e *Engine) setTargets(ctx context.Context, r store.Rollout, devs []store.RolloutDevice, version func(store.RolloutDevice) string) error {
	if len(devs) == 0 {
		return nil
	}
	ids := make([]string, len(devs))
	want := make(map[string]string, len(devs))
	for i, d := range devs {
		ids[i], want[d.DeviceID] = d.DeviceID, version(d)
	}
	_, err := e.cfg.Store.UpdateDesired(ctx, ids, e.now(), func(id string, cur json.RawMessage) (json.RawMessage, error) {
		return withTarget(cur, r.Kind, r.App, want[id]), nil
	})
	if err != nil {
		return fmt.Errorf("rollout %s: desired state of %d kiosks: %w", r.ID, len(ids), err)
	}
	for _, id := range ids {
		e.cfg.Dispatch.PushDesired(ctx, id)
	}
	return nil
}

// withTarget returns the desired document cur with version (or, "", nothing) as the kiosk's app
// or agent version, and the rest of cur as it was.
func withTarget(cur json.RawMessage, kind, app, version string) json.RawMessage {
	doc := map[string]json.RawMessage{}
	if err := json.Unmarshal(cur, &doc); err != nil || doc == nil {
		doc = map[string]json.RawMessage{}
	}
	if kind == api.RolloutAgent {
		if version == "" {
			delete(doc, "agent")
		} else {
			doc["agent"] = wire.Encode(version)
		}
	} else {
		bundles := map[string]string{}
		_ = json.Unmarshal(doc["bundles"], &bundles)
		if bundles == nil {
			bundles = map[string]string{}
		}
		if version == "" {
			delete(bundles, app)
		} else {
			bundles[app] = version
		}
		doc["bundles"] = wire.Encode(bundles)
	}
	return wire.Encode(doc)
}

// Act pauses, resumes, aborts or rolls back a rollout, by hand.
func (e *Engine) Act(ctx context.Context, who, id string, a api.RolloutAction) (api.Rollout, error) {
	r, err := e.cfg.Store.GetRollout(ctx, id)
	if err != nil {
		return api.Rollout{}, err
	}
	if (a.Action == "abort" || a.Action == "rollback") && a.Reason == "" {
		return api.Rollout{}, invalid("reason: required to %s", a.Action)
	}
	now := e.now()
	devs, err := e.cfg.Store.RolloutDevices(ctx, id)
	if err != nil {
		return api.Rollout{}, err
	}
	refuse := func() (api.Rollout, error) {
		return api.Rollout{}, fmt.Errorf("%w: rollout %s is %s: it cannot %s", ErrConflict, id, r.State, a.Action)
	}
	switch a.Action {
	case "pause":
		if r.State != api.RolloutRunning {
			return refuse()
		}
		r.State = api.RolloutPaused
	case "resume":
		if r.State != api.RolloutPaused {
			return refuse()
		}
		r.State = api.RolloutRunning
	case "abort":
		if r.State != api.RolloutRunning && r.State != api.RolloutPaused {
			return refuse()
		}
		if err := e.withdraw(ctx, r, devs, now); err != nil {
			return api.Rollout{}, err
		}
		r.State = api.RolloutAborted
	case "rollback":
		if r.State == api.RolloutRolledBack {
			return refuse()
		}
		if err := e.withdraw(ctx, r, devs, now); err != nil {
			return api.Rollout{}, err
		}
		var changed []store.RolloutDevice
		for _, d := range devs {
			if d.State != api.DeviceUpdated && d.State != api.DeviceFailed {
				continue
			}
			d.State, d.UpdatedAt = api.DeviceReverting, now
			if d.Previous == "" { // it had none: the hub stops asking for the app, the kiosk keeps what it runs
				d.State, d.Error = api.DeviceReverted, "it ran no version before: no longer assigned, still installed"
			}
			changed = append(changed, d)
		}
		if err := e.setTargets(ctx, r, changed, previous); err != nil {
			return api.Rollout{}, err
		}
		if err := e.cfg.Store.UpdateRolloutDevices(ctx, id, changed); err != nil {
			return api.Rollout{}, err
		}
		r.State = api.RolloutRolledBack
	default:
		return api.Rollout{}, invalid("action %q: want pause, resume, abort or rollback", a.Action)
	}
	r.Reason, r.UpdatedAt = a.Reason, now
	if _, err := e.cfg.Store.UpdateRollout(ctx, r); err != nil {
		if errors.Is(err, store.ErrStale) {
			return api.Rollout{}, fmt.Errorf("%w: the rollout changed meanwhile: try again", ErrConflict)
		}
		return api.Rollout{}, err
	}
	e.log.Info("rollout "+a.Action, "rollout", id, "by", who, "reason", a.Reason)
	if err := e.Step(ctx, id); err != nil && !errors.Is(err, store.ErrStale) {
		return api.Rollout{}, err
	}
	return e.Get(ctx, id)
}

// Get returns a rollout with its progress per wave.
func (e *Engine) Get(ctx context.Context, id string) (api.Rollout, error) {
	r, err := e.cfg.Store.GetRollout(ctx, id)
	if err != nil {
		return api.Rollout{}, err
	}
	devs, err := e.cfg.Store.RolloutDevices(ctx, id)
	if err != nil {
		return api.Rollout{}, err
	}
	online, err := e.online(ctx, devs, 1<<30)
	if err != nil {
		return api.Rollout{}, err
	}
	return view(r, devs, online), nil
}

// List returns every rollout with its progress, newest first.
func (e *Engine) List(ctx context.Context) ([]api.Rollout, error) {
	rs, err := e.cfg.Store.ListRollouts(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.Rollout, 0, len(rs))
	for _, r := range rs {
		v, err := e.Get(ctx, r.ID)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Devices lists a rollout's kiosks.
func (e *Engine) Devices(ctx context.Context, id string) ([]api.RolloutDevice, error) {
	if _, err := e.cfg.Store.GetRollout(ctx, id); err != nil {
		return nil, err
	}
	devs, err := e.cfg.Store.RolloutDevices(ctx, id)
	out := make([]api.RolloutDevice, len(devs))
	for i, d := range devs {
		out[i] = api.RolloutDevice{DeviceID: d.DeviceID, Wave: d.Wave + 1, State: d.State, Previous: d.Previous, Error: d.Error, UpdatedAt: d.UpdatedAt}
	}
	return out, err
}

func view(r store.Rollout, devs []store.RolloutDevice, online map[string]bool) api.Rollout {
	var sp api.RolloutSpec
	_ = json.Unmarshal(r.Spec, &sp)
	var p progress
	_ = json.Unmarshal(r.Progress, &p)
	out := api.Rollout{ID: r.ID, Spec: sp, State: r.State, Wave: r.Wave + 1, Reason: r.Reason, CreatedBy: r.CreatedBy,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, Totals: count(devs, online)}
	for w, pct := range sp.Waves {
		wp := api.WaveProgress{Percent: pct, Counts: count(slices.DeleteFunc(slices.Clone(devs), func(d store.RolloutDevice) bool { return d.Wave != w }), online)}
		if w < len(p.Started) {
			wp.StartedAt, wp.DoneAt = p.Started[w], p.Done[w]
		}
		out.Waves = append(out.Waves, wp)
	}
	return out
}

// count counts kiosks by state (online, if given, tells the offline ones among the assigned).
func count(devs []store.RolloutDevice, online map[string]bool) api.Counts {
	var c api.Counts
	for _, d := range devs {
		c.Devices++
		switch d.State {
		case api.DeviceWaiting, api.DeviceWithdrawn:
			c.Waiting++
		case api.DeviceAssigned:
			c.Assigned++
			if online != nil && !online[d.DeviceID] {
				c.Offline++
			}
		case api.DeviceUpdated:
			c.Updated++
		case api.DeviceFailed:
			c.Failed++
		case api.DeviceReverting, api.DeviceReverted:
			c.Reverted++
		}
	}
	return c
}
