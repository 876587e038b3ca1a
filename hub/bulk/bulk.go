// Package bulk acts on many kiosks at once: it selects the kiosks a filter names (region
// prefix, site, online/degraded/offline, model, tag) within the caller's region scope, answers
// the count first (a dry run), and, once a person confirmed that count under an idempotency key,
// sends a command, a desired-state change (a JSON merge patch, RFC 7396) or a revocation to
// each, as a job whose per-kiosk progress (queued, delivered, acked, failed) can be watched.
//
// The hub decides which kiosks a job holds (the creator's scope, when it is created); the job's
// kiosks are fixed from then on. Each kiosk acted on is an entry of the staff audit log, in the
// creator's name. Hub replicas step every job; a replica acts only on the kiosks it claimed in the
// database (store.Bulk.ClaimBulkItems), so replicas stepping one job at the same moment act on
// each kiosk once. A claim lasts claimFor: the kiosks of a replica that died while acting on them
// are claimed again after that, and acting is idempotent: a command's ID is derived from the job
// and the kiosk, a desired document already in place is not set again, and a revoked kiosk stays
// revoked; so a step repeated after a crash never acts twice.
package bulk

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/security"
	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

var (
	// ErrInvalid marks a request that cannot be (HTTP 400).
	ErrInvalid = store.ErrInvalid
	// ErrCountChanged marks a confirmation whose count no longer matches (HTTP 409).
	ErrCountChanged = errors.New("bulk: count changed")
	// ErrKeyReused marks an idempotency key sent again with another request (HTTP 409).
	ErrKeyReused = errors.New("bulk: idempotency key reused")
)

// Store is what bulk jobs use.
type Store interface {
	store.Bulk
	store.Devices
	store.Commands
	store.State
	store.Rollouts // the kiosks' tags
	store.StaffAudit
}

// Sessions cuts a revoked kiosk's session.
type Sessions interface {
	Disconnect(deviceID string)
}

// Dispatcher pushes commands and desired state to connected kiosks.
type Dispatcher interface {
	SendPending(ctx context.Context, deviceID string)
	PushDesired(ctx context.Context, deviceID string)
}

// Config configures an Engine.
type Config struct {
	Store    Store
	Sessions Sessions
	Dispatch Dispatcher
	// Notify is told, for live viewers, of each kiosk whose progress in a job changed (nil: none).
	Notify func(...api.Notice)
	Log    *slog.Logger
	Now    func() time.Time
	// Tick is how often Run steps young jobs (default 1 s); older ones are stepped every
	// SlowTick (default 15 s): a job waiting for kiosks that are offline costs little.
	Tick, SlowTick time.Duration
	// Security counts each kiosk a job revokes as a security event (hub/security); nil: none.
	Security interface {
		Note(kind, device, staff, source, detail string)
	}
}

// Engine runs bulk jobs.
type Engine struct {
	cfg   Config
	kick  chan struct{}
	owner string // whose claims this engine's are
}

// young is how long after its creation a job is stepped every Tick.
const young = 2 * time.Minute

// New returns an Engine.
func New(cfg Config) (*Engine, error) {
	if cfg.Store == nil || cfg.Sessions == nil || cfg.Dispatch == nil {
		return nil, errors.New("bulk: Config needs a Store, Sessions and a Dispatcher")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Tick <= 0 {
		cfg.Tick = time.Second
	}
	if cfg.SlowTick <= 0 {
		cfg.SlowTick = 15 * time.Second
	}
	return &Engine{cfg: cfg, kick: make(chan struct{}, 1), owner: randomHex(8)}, nil
}

func (e *Engine) now() time.Time { return e.cfg.Now().UTC() }

// Actor is who asks for a bulk action, as the API authenticated them.
type Actor struct {
	Name   string   // username, or the token's subject
	Roles  []string // for the audit log
	Source string   // the client's address, for the audit log
	Scope  []string // region scope (empty: everywhere)
}

// spec is what a job does to which kiosks, as it is stored (store.BulkJob.Request).
type spec struct {
	Action  string             `json:"action"`
	Filter  api.BulkFilter     `json:"filter"`
	Command *api.CreateCommand `json:"command,omitempty"`
	Desired json.RawMessage    `json:"desired,omitempty"`
	TTL     string             `json:"ttl"`
}

// Limits of a request.
const (
	maxTTL      = 7 * 24 * time.Hour
	maxDoc      = 32 << 10
	maxShown    = 1000 // kiosks listed by a dry run
	maxName     = 128  // site, model, tag
	minKey      = 8
	maxKey      = 128
	auditAction = "bulk "
)

// rolloutKeys are the desired state's keys rollouts own (hub/rollout): a bulk change must not
// give kiosks an app or agent version outside a rollout.
var rolloutKeys = []string{"bundles", "agent"}

// check validates a request, reporting every problem at once.
func check(req api.BulkRequest) (spec, time.Duration, error) {
	var p []string
	bad := func(format string, a ...any) { p = append(p, fmt.Sprintf(format, a...)) }
	f := req.Filter
	if r := f.Region; r != "" && (len(r) > 6 || strings.Trim(r, "0123456789") != "") {
		bad("filter.region %q: 1 to 6 digits of a GB/T 2260 code", r)
	}
	switch f.Status {
	case "", "online", "degraded", "offline":
	default:
		bad("filter.status %q: online, degraded or offline", f.Status)
	}
	for name, v := range map[string]string{"site": f.Site, "model": f.Model, "tag": f.Tag} {
		if len(v) > maxName {
			bad("filter.%s: at most %d bytes", name, maxName)
		}
	}
	ttl := time.Hour
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d < time.Second || d > maxTTL {
			bad("ttl %q: a duration from 1s to %s", req.TTL, maxTTL)
		}
		ttl = d
	}
	sp := spec{Action: req.Action, Filter: f, TTL: ttl.String()}
	if req.Command != nil && req.Action != api.BulkCommand || len(req.Desired) > 0 && req.Action != api.BulkDesired {
		bad("command or desired: only with the action they go with")
	}
	switch req.Action {
	case api.BulkCommand:
		c := req.Command
		if c == nil {
			bad("command: required for action command")
			break
		}
		if !wire.ValidKind(c.Name) {
			bad("command.name %q: 1-64 characters of a-z, 0-9, '.', '_', '-', starting with a letter", c.Name)
		}
		if len(c.Args) > 0 && !json.Valid(c.Args) || len(c.Args) > maxDoc {
			bad("command.args: JSON of at most %d bytes", maxDoc)
		}
		cmdTTL := ttl
		if c.TTL != "" {
			d, err := time.ParseDuration(c.TTL)
			if err != nil || d < time.Second || d > maxTTL {
				bad("command.ttl %q: a duration from 1s to %s", c.TTL, maxTTL)
			}
			cmdTTL = d
		}
		cmd := api.CreateCommand{Name: c.Name, Args: compact(c.Args), TTL: cmdTTL.String()}
		sp.Command = &cmd
	case api.BulkDesired:
		var doc map[string]json.RawMessage
		if json.Unmarshal(req.Desired, &doc) != nil || doc == nil || len(req.Desired) > maxDoc {
			bad("desired: a JSON object (a merge patch) of at most %d bytes", maxDoc)
		}
		for _, k := range rolloutKeys {
			if _, ok := doc[k]; ok {
				bad("desired.%s: belongs to rollouts (fleetctl rollouts)", k)
			}
		}
		sp.Desired = compact(req.Desired)
	case api.BulkRevoke:
		if f.IsZero() {
			bad("filter: name the kiosks to revoke (region, site, status, model or tag)")
		}
	default:
		bad("action %q: command, desired or revoke", req.Action)
	}
	if !req.DryRun {
		if req.Expect == nil || *req.Expect < 0 {
			bad("expect: the count a dry run showed, confirmed")
		}
		if k := req.IdempotencyKey; len(k) < minKey || len(k) > maxKey || strings.ContainsFunc(k, func(r rune) bool { return r <= ' ' || r > '~' }) {
			bad("idempotencyKey: %d to %d printable ASCII characters", minKey, maxKey)
		}
	}
	if len(p) > 0 {
		return spec{}, 0, fmt.Errorf("%w: %s", ErrInvalid, strings.Join(p, "; "))
	}
	return sp, ttl, nil
}

// compact removes insignificant space from JSON (stored requests compare byte for byte).
func compact(b json.RawMessage) json.RawMessage {
	var out bytes.Buffer
	if len(b) == 0 || json.Compact(&out, b) != nil {
		return b
	}
	return out.Bytes()
}

// Create answers a dry run with the kiosks the filter selects in who's scope, or starts a job
// acting on them (or answers the job an earlier request with the same key started).
func (e *Engine) Create(ctx context.Context, who Actor, req api.BulkRequest) (api.BulkJob, error) {
	sp, ttl, err := check(req)
	if err != nil {
		return api.BulkJob{}, err
	}
	specJSON, _ := json.Marshal(sp)
	if !req.DryRun {
		j, err := e.cfg.Store.BulkJobByKey(ctx, who.Name, req.IdempotencyKey)
		if err == nil {
			return e.replay(ctx, j, specJSON)
		}
		if !errors.Is(err, store.ErrNotFound) {
			return api.BulkJob{}, err
		}
	}
	devs, err := e.Select(ctx, who.Scope, sp.Filter)
	if err != nil {
		return api.BulkJob{}, err
	}
	if req.DryRun {
		v := view(sp)
		v.DryRun, v.Count = true, len(devs)
		for _, d := range devs[:min(len(devs), maxShown)] {
			v.Devices = append(v.Devices, d.ID)
		}
		return v, nil
	}
	if *req.Expect != len(devs) {
		return api.BulkJob{}, fmt.Errorf("%w: %d kiosks match now, not the %d confirmed: count them again and confirm", ErrCountChanged, len(devs), *req.Expect)
	}
	if len(devs) == 0 {
		return api.BulkJob{}, fmt.Errorf("%w: the filter selects no kiosk", ErrInvalid)
	}
	now := e.now()
	j := store.BulkJob{ID: "b-" + now.Format("20060102-150405") + "-" + randomHex(3), Key: req.IdempotencyKey, Action: sp.Action,
		Request: specJSON, Scope: who.Scope, CreatedBy: who.Name, Roles: strings.Join(who.Roles, ","), Source: who.Source,
		Count: len(devs), CreatedAt: now, ExpiresAt: now.Add(ttl)}
	items := make([]store.BulkItem, len(devs))
	for i, d := range devs {
		items[i] = store.BulkItem{DeviceID: d.ID, State: api.BulkQueued, UpdatedAt: now}
	}
	if err := e.cfg.Store.CreateBulkJob(ctx, j, items); errors.Is(err, store.ErrExists) {
		// The same request, retried while the first was being stored: answer its job.
		if j, err := e.cfg.Store.BulkJobByKey(ctx, who.Name, req.IdempotencyKey); err == nil {
			return e.replay(ctx, j, specJSON)
		}
		return api.BulkJob{}, err
	} else if err != nil {
		return api.BulkJob{}, err
	}
	e.cfg.Log.Info("bulk job created", "job", j.ID, "action", j.Action, "kiosks", j.Count, "by", who.Name)
	select {
	case e.kick <- struct{}{}:
	default:
	}
	return e.view(j, items)
}

// replay answers a request whose idempotency key already made job j: j itself if the request is
// the same, ErrKeyReused if not.
func (e *Engine) replay(ctx context.Context, j store.BulkJob, specJSON []byte) (api.BulkJob, error) {
	if !sameJSON(j.Request, specJSON) {
		return api.BulkJob{}, fmt.Errorf("%w: key %q made job %s, a different request", ErrKeyReused, j.Key, j.ID)
	}
	items, err := e.cfg.Store.BulkItems(ctx, j.ID)
	if err != nil {
		return api.BulkJob{}, err
	}
	v, err := e.view(j, items)
	v.Replayed = true
	return v, err
}

// Select returns the kiosks in service, not revoked, in scope, that f selects, by ID.
func (e *Engine) Select(ctx context.Context, scope []string, f api.BulkFilter) ([]store.Device, error) {
	df := store.DeviceFilter{SiteID: f.Site, Region: f.Region, Model: f.Model, Scope: scope}
	if f.Status != "" {
		online := f.Status != "offline"
		df.Online = &online
	}
	devs, err := e.cfg.Store.ListDevices(ctx, df)
	if err != nil {
		return nil, err
	}
	devs = slices.DeleteFunc(devs, func(d store.Device) bool {
		return d.Revoked || !fleet.InScope(d.Region, scope) || f.Status == "degraded" && !degraded(d)
	})
	if f.Tag != "" {
		tags, err := e.cfg.Store.Tags(ctx)
		if err != nil {
			return nil, err
		}
		devs = slices.DeleteFunc(devs, func(d store.Device) bool { return !slices.Contains(tags[d.ID], f.Tag) })
	}
	slices.SortFunc(devs, func(a, b store.Device) int { return strings.Compare(a.ID, b.ID) })
	return devs, nil
}

// degraded reports whether a kiosk has a peripheral that is not ok, or not connected.
func degraded(d store.Device) bool {
	ps, err := wire.DecodePeripherals(d.Peripherals)
	return err == nil && slices.ContainsFunc(ps.Devices, func(p wire.Peripheral) bool {
		return !p.Connected || p.Status != wire.PeripheralOK
	})
}

// Visible reports whether a caller with scope may see job j: one without a scope sees every
// job; one with a scope, the jobs made within it.
func Visible(j store.BulkJob, scope []string) bool {
	if len(scope) == 0 {
		return true
	}
	return len(j.Scope) > 0 && !slices.ContainsFunc(j.Scope, func(r string) bool { return !fleet.InScope(r, scope) })
}

// Get returns a job with its counts, if the caller's scope lets them see it (ErrNotFound if not).
func (e *Engine) Get(ctx context.Context, scope []string, id string) (api.BulkJob, error) {
	j, items, err := e.job(ctx, scope, id)
	if err != nil {
		return api.BulkJob{}, err
	}
	return e.view(j, items)
}

// Items returns a job's kiosks with their progress, as Get.
func (e *Engine) Items(ctx context.Context, scope []string, id string) ([]api.BulkItem, error) {
	_, items, err := e.job(ctx, scope, id)
	out := make([]api.BulkItem, len(items))
	for i, it := range items {
		out[i] = api.BulkItem(it)
	}
	return out, err
}

func (e *Engine) job(ctx context.Context, scope []string, id string) (store.BulkJob, []store.BulkItem, error) {
	j, err := e.cfg.Store.GetBulkJob(ctx, id)
	if err != nil {
		return j, nil, err
	}
	if !Visible(j, scope) {
		return j, nil, fmt.Errorf("%w: bulk job %s", store.ErrNotFound, id)
	}
	items, err := e.cfg.Store.BulkItems(ctx, id)
	return j, items, err
}

// List lists the jobs the caller may see, newest first (at most 100), with their counts.
func (e *Engine) List(ctx context.Context, scope []string) ([]api.BulkJob, error) {
	js, err := e.cfg.Store.ListBulkJobs(ctx, false, 100)
	if err != nil {
		return nil, err
	}
	out := []api.BulkJob{}
	for _, j := range js {
		if !Visible(j, scope) {
			continue
		}
		items, err := e.cfg.Store.BulkItems(ctx, j.ID)
		if err != nil {
			return nil, err
		}
		v, err := e.view(j, items)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func view(sp spec) api.BulkJob {
	return api.BulkJob{Action: sp.Action, Filter: sp.Filter, Command: sp.Command, Desired: sp.Desired}
}

func (e *Engine) view(j store.BulkJob, items []store.BulkItem) (api.BulkJob, error) {
	var sp spec
	if err := json.Unmarshal(j.Request, &sp); err != nil {
		return api.BulkJob{}, fmt.Errorf("bulk: job %s: %w", j.ID, err)
	}
	v := view(sp)
	v.ID, v.Count, v.CreatedBy, v.CreatedAt, v.ExpiresAt, v.DoneAt = j.ID, j.Count, j.CreatedBy, j.CreatedAt, j.ExpiresAt, j.DoneAt
	v.State = api.BulkRunning
	if !j.DoneAt.IsZero() {
		v.State = api.BulkDone
	}
	for _, it := range items {
		v.Counts.Add(it.State)
	}
	return v, nil
}

// Run steps the unfinished jobs until ctx ends: at once when one is created, young ones every
// Tick, older ones every SlowTick.
func (e *Engine) Run(ctx context.Context) {
	t := time.NewTicker(e.cfg.Tick)
	defer t.Stop()
	last := map[string]time.Time{}
	for {
		js, err := e.cfg.Store.ListBulkJobs(ctx, true, 1000)
		if err != nil && ctx.Err() == nil {
			e.cfg.Log.Warn("bulk: list jobs", "err", err)
		}
		now := e.now()
		seen := map[string]time.Time{}
		for _, j := range js {
			if l, ok := last[j.ID]; ok && now.Sub(j.CreatedAt) > young && now.Sub(l) < e.cfg.SlowTick {
				seen[j.ID] = l
				continue
			}
			seen[j.ID] = now
			if err := e.Step(ctx, j); err != nil && ctx.Err() == nil {
				e.cfg.Log.Warn("bulk: step", "job", j.ID, "err", err)
			}
		}
		last = seen
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-e.kick:
		}
	}
}

// flushEvery is how many changed kiosks a step stores at once (a large job shows its progress
// while it is being sent), and how many it claims at once.
const flushEvery = 100

// A step acts on the kiosks it claimed for claimFor only within claimUse of claiming them: the
// rest of the claim is the margin of the action under way and of the replicas' clocks. The
// kiosks left are claimed again, by this replica or another.
const (
	claimFor = time.Minute
	claimUse = claimFor / 2
)

// Step follows the progress of the job's kiosks acted on, claims those not yet acted on and acts
// on them, fails those not confirmed when the job expires, and finishes the job when every kiosk
// is acked or failed.
func (e *Engine) Step(ctx context.Context, j store.BulkJob) error {
	var sp spec
	if err := json.Unmarshal(j.Request, &sp); err != nil {
		return fmt.Errorf("bulk: job %s: %w", j.ID, err)
	}
	items, err := e.cfg.Store.BulkItems(ctx, j.ID)
	if err != nil {
		return err
	}
	var changed []store.BulkItem
	var notices []api.Notice // sent when the step ends: a viewer then reads the job finished too
	defer func() {
		if e.cfg.Notify != nil && len(notices) > 0 {
			e.cfg.Notify(notices...)
		}
	}()
	flush := func() error {
		if err := e.cfg.Store.UpdateBulkItems(ctx, j.ID, changed); err != nil {
			return err
		}
		at := e.now()
		for _, it := range changed {
			notices = append(notices, api.Notice{Kind: api.NoticeBulk, DeviceID: it.DeviceID, At: at})
		}
		changed = changed[:0]
		return nil
	}
	// next acts on one kiosk (act) and records its new state, stored every flushEvery kiosks.
	done, unsent := true, 0
	next := func(it store.BulkItem, act func(store.BulkItem, time.Time) (store.BulkItem, error)) error {
		now := e.now()
		n, err := act(it, now)
		if err != nil {
			return errors.Join(err, flush())
		}
		if !terminal(n.State) && !now.Before(j.ExpiresAt) {
			n.State, n.Error = api.BulkFailed, "not confirmed before the job expired"
		}
		if n.State != it.State || n.Ref != it.Ref || n.Error != it.Error {
			n.UpdatedAt = now
			changed = append(changed, n)
		}
		done = done && terminal(n.State)
		if len(changed) >= flushEvery {
			return flush()
		}
		return nil
	}
	follow := func(it store.BulkItem, _ time.Time) (store.BulkItem, error) { return e.progress(ctx, sp, it) }
	send := func(it store.BulkItem, now time.Time) (store.BulkItem, error) { return e.send(ctx, j, sp, it, now) }
	for _, it := range items {
		switch {
		case terminal(it.State):
		case it.Ref == "":
			unsent++ // acted on below, by this replica or another
		default:
			if err := next(it, follow); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	for unsent > 0 {
		now := e.now()
		claimed, err := e.cfg.Store.ClaimBulkItems(ctx, j.ID, store.BulkClaim{Owner: e.owner, State: api.BulkQueued,
			Now: now, Until: now.Add(claimFor), N: flushEvery})
		if err != nil {
			return errors.Join(err, flush())
		}
		for i, it := range claimed {
			if e.now().Sub(now) > claimUse {
				claimed = claimed[:i] // claimed again at the next step
				break
			}
			if err := next(it, send); err != nil {
				return err
			}
		}
		if err := flush(); err != nil {
			return err
		}
		unsent -= len(claimed)
		if len(claimed) < flushEvery {
			break // the others are another replica's, or left for the next step
		}
	}
	if unsent > 0 {
		done = false
	}
	if done {
		e.cfg.Log.Info("bulk job done", "job", j.ID, "action", j.Action, "kiosks", j.Count)
		return e.cfg.Store.FinishBulkJob(ctx, j.ID, e.now())
	}
	return nil
}

func terminal(state string) bool { return state == api.BulkAcked || state == api.BulkFailed }

// send does the job's action to one kiosk and records it in the audit log.
func (e *Engine) send(ctx context.Context, j store.BulkJob, sp spec, it store.BulkItem, now time.Time) (store.BulkItem, error) {
	d, err := e.cfg.Store.GetDevice(ctx, it.DeviceID)
	if err != nil {
		return it, err
	}
	target := api.Prefix + "/devices/" + d.ID
	switch sp.Action {
	case api.BulkRevoke:
		target += "/revoke"
		if !d.Revoked {
			if err := e.cfg.Store.RevokeDevice(ctx, d.ID, now); err != nil {
				return it, err
			}
			if e.cfg.Security != nil {
				e.cfg.Security.Note(security.DeviceRevoked, d.ID, j.CreatedBy, j.Source, "revoked by bulk job "+j.ID)
			}
		}
		e.cfg.Sessions.Disconnect(d.ID)
		it.State, it.Ref = api.BulkAcked, "revoked"
	case api.BulkCommand:
		target += "/commands"
		if d.Revoked {
			break
		}
		ttl, _ := time.ParseDuration(sp.Command.TTL)
		c := store.Command{ID: commandID(j.ID, d.ID), DeviceID: d.ID, Name: sp.Command.Name, Args: sp.Command.Args, State: wire.CmdQueued,
			CreatedAt: now, ExpiresAt: now.Add(ttl), UpdatedAt: now}
		if err := e.cfg.Store.CreateCommand(ctx, c); err != nil && !errors.Is(err, store.ErrExists) {
			return it, err
		}
		e.cfg.Dispatch.SendPending(ctx, d.ID)
		it.Ref = c.ID
	case api.BulkDesired:
		target += "/desired"
		if d.Revoked {
			break
		}
		cur, err := e.cfg.Store.GetDesired(ctx, d.ID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return it, err
		}
		doc, err := mergePatch(cur.Doc, sp.Desired)
		if err != nil {
			return it, err
		}
		if cur.Version == 0 || !sameJSON(doc, cur.Doc) {
			if cur, err = e.cfg.Store.SetDesired(ctx, d.ID, doc, now); err != nil {
				return it, err
			}
		}
		e.cfg.Dispatch.PushDesired(ctx, d.ID)
		it.Ref = strconv.FormatInt(cur.Version, 10)
	}
	status, result := 200, "ok"
	if d.Revoked && sp.Action != api.BulkRevoke {
		it.State, it.Error = api.BulkFailed, "kiosk revoked"
		status, result = 409, "conflict"
	}
	e.audit(ctx, j, target, status, result)
	if it.State == api.BulkQueued {
		return e.progress(ctx, sp, it)
	}
	return it, nil
}

// audit records one kiosk acted on, in the job creator's name.
func (e *Engine) audit(ctx context.Context, j store.BulkJob, target string, status int, result string) {
	a := store.StaffAction{At: e.now(), Actor: j.CreatedBy, Roles: j.Roles, Action: auditAction + j.Action + " " + j.ID, Target: target,
		Source: j.Source, Status: status, Result: result}
	if _, err := e.cfg.Store.AppendAudit(context.WithoutCancel(ctx), a); err != nil {
		e.cfg.Log.Error("audit entry lost", "actor", a.Actor, "action", a.Action, "target", target, "err", err)
	}
}

// progress reads how far one kiosk got with what was sent to it.
func (e *Engine) progress(ctx context.Context, sp spec, it store.BulkItem) (store.BulkItem, error) {
	switch sp.Action {
	case api.BulkCommand:
		c, err := e.cfg.Store.GetCommand(ctx, it.Ref)
		if err != nil {
			return it, err
		}
		switch c.State {
		case wire.CmdQueued:
			it.State = api.BulkQueued
		case wire.CmdDelivered, wire.CmdAccepted:
			it.State = api.BulkDelivered
		case wire.CmdSucceeded:
			it.State = api.BulkAcked
		default: // failed, expired
			it.State, it.Error = api.BulkFailed, "command "+string(c.State)
			if c.Error != "" {
				it.Error += ": " + c.Error
			}
		}
	case api.BulkDesired:
		v, _ := strconv.ParseInt(it.Ref, 10, 64)
		r, err := e.cfg.Store.GetReported(ctx, it.DeviceID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return it, err
		}
		switch {
		case r.Version == v && r.Error != "":
			it.State, it.Error = api.BulkFailed, "the kiosk refused it: "+r.Error
		case r.Version >= v:
			it.State = api.BulkAcked
		default:
			d, err := e.cfg.Store.GetDevice(ctx, it.DeviceID)
			if err != nil {
				return it, err
			}
			// The hub pushes the desired state to a connected kiosk at once, and at each hello.
			it.State = api.BulkQueued
			if d.Online {
				it.State = api.BulkDelivered
			}
		}
	}
	return it, nil
}

// commandID is the ID of the job's command to a kiosk: the same at every attempt.
func commandID(job, device string) string {
	h := sha256.Sum256([]byte(job + "/" + device))
	return "c-" + hex.EncodeToString(h[:10])
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
