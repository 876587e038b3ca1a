// Package cluster keeps a hub replica in step with the other replicas that share its database.
//
// Presence: the replica holds a lease (store.Replicas), renewed every third of its length; every
// replica sweeps expired leases, marking the devices of a replica that died offline; a replica
// whose own lease was swept (it could not reach the database for a while) reports its live
// sessions online again. A replica starting releases what its previous process held.
//
// Downlink: where the store tells changes (store.Notifier: PostgreSQL's LISTEN/NOTIFY), a
// command or desired state written on any replica reaches the device at once if this replica
// holds its session; a revoked device's session here is ended; the identity provider drops its
// cached clients and signing keys. The database stays the truth: a notice lost while the replica
// was not listening is healed by a sweep each time it listens again, by a periodic sweep, and by
// the device's next hello. On a store without notices (SQLite: one hub) only the periodic sweep
// runs, healing what a full device queue dropped.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

// Store is what a replica needs of the store. A store.Notifier is used when the store is one.
type Store interface {
	store.Replicas
	DevicesWithQueued(ctx context.Context, now time.Time) ([]string, error)
	DevicesBehind(ctx context.Context) ([]string, error)
}

// Sessions is the replica's broker: its live device sessions.
type Sessions interface {
	Connected(deviceID string) bool
	Disconnect(deviceID string)
	// Live lists the devices with a live session.
	Live() []string
	// Recheck re-authorizes every live session now (revocations made elsewhere).
	Recheck()
}

// Downlink sends devices what the database holds for them, and records presence (the ingest).
type Downlink interface {
	// SendNoticed sends the device its pending commands; noticed is when the replica heard
	// that it has new ones (zero: a sweep), from which the downlink measures its latency.
	SendNoticed(ctx context.Context, deviceID string, noticed time.Time)
	PushDesired(ctx context.Context, deviceID string)
	SetPresence(ctx context.Context, deviceID string, online bool, agentVersion string)
}

// Caches is what the identity provider caches from the database.
type Caches interface {
	ForgetClient(id string)
	ForgetClients()
	ForgetKeys()
}

// Defaults for zero Config fields.
const (
	DefaultLease   = 15 * time.Second
	DefaultSweep   = 30 * time.Second
	DefaultWorkers = 4
)

// Config configures a Replica.
type Config struct {
	// Replica names this process's hub among those on the database; unique per replica, and the
	// same across its restarts (so that a restart releases what the previous process held).
	Replica string
	// Lease is how long the replica's sessions count as held without a renewal: after a kill -9
	// its devices show offline within Lease plus a third of it (default 15 s).
	Lease time.Duration
	// Sweep is how often the replica sends what notices may have missed (default 30 s).
	Sweep time.Duration
	// Workers send downlink on notices, this many devices at once (default 4). A device's
	// work always goes to the same worker (by a hash of its ID), so one device is served by one
	// worker at a time, in the order its notices came.
	Workers int
	Now     func() time.Time
	Log     *slog.Logger
}

// Replica runs the replica's side of the cluster. Create with New, then Start before the
// broker accepts devices, Run until shutdown, and Release after the broker closed.
type Replica struct {
	cfg      Config
	st       Store
	sessions Sessions
	down     Downlink
	caches   Caches // nil: no identity provider to tell

	shards []chan job // one per worker
	mu     sync.Mutex
	// due holds the jobs queued and not yet taken, with when the first of their notices came: a
	// device's second notice adds nothing.
	due     map[job]time.Time
	poke    chan struct{} // sweep now: a job was dropped on a full queue, or notices were lost
	recheck atomic.Bool   // and recheck every session first
}

// job is a piece of work for a worker: send a device its commands or its desired state.
type job struct {
	kind store.ChangeKind
	id   string
}

// New returns a Replica. caches may be nil.
func New(cfg Config, st Store, sessions Sessions, down Downlink, caches Caches) (*Replica, error) {
	if cfg.Replica == "" {
		return nil, errors.New("cluster: a replica needs a name")
	}
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.Sweep <= 0 {
		cfg.Sweep = DefaultSweep
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	r := &Replica{cfg: cfg, st: st, sessions: sessions, down: down, caches: caches,
		due: map[job]time.Time{}, poke: make(chan struct{}, 1)}
	for range cfg.Workers {
		r.shards = append(r.shards, make(chan job, max(64, 4096/cfg.Workers)))
	}
	return r, nil
}

// Start releases what the replica's previous process held (it holds no session yet) and takes
// the lease, so that the sessions it records from now on are not swept.
func (r *Replica) Start(ctx context.Context) error {
	now := r.cfg.Now()
	released, err := r.st.ReleaseReplica(ctx, r.cfg.Replica, now)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if _, err := r.st.RenewLease(ctx, r.cfg.Replica, now, now.Add(r.cfg.Lease)); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	r.cfg.Log.Info("replica started", "replica", r.cfg.Replica, "lease", r.cfg.Lease, "released", len(released))
	return nil
}

// Release gives up the lease and marks offline the devices the replica held: at a clean
// shutdown, after the broker closed every session.
func (r *Replica) Release(ctx context.Context) error {
	if _, err := r.st.ReleaseReplica(ctx, r.cfg.Replica, r.cfg.Now()); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	return nil
}

// Run renews the lease and sweeps, listens for notices if the store tells them, and sends what
// they announce, until ctx ends.
func (r *Replica) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, jobs := range r.shards {
		wg.Go(func() { r.work(ctx, jobs) })
	}
	wg.Go(func() { r.leases(ctx) })
	if n, ok := r.st.(store.Notifier); ok {
		wg.Go(func() { _ = n.Listen(ctx, r.onListen, r.onChange) })
	}
	t := time.NewTicker(r.cfg.Sweep)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.poke:
		}
		if r.recheck.CompareAndSwap(true, false) {
			r.sessions.Recheck()
		}
		r.sweep(ctx)
	}
}

// leases renews the lease and expires others' every third of the lease.
func (r *Replica) leases(ctx context.Context) {
	t := time.NewTicker(r.cfg.Lease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := r.cfg.Now()
		lapsed, err := r.st.RenewLease(ctx, r.cfg.Replica, now, now.Add(r.cfg.Lease))
		if err != nil {
			if ctx.Err() == nil {
				r.cfg.Log.Warn("lease not renewed", "replica", r.cfg.Replica, "err", err)
			}
			continue
		}
		if lapsed {
			// Swept while we could not renew: our devices were marked offline, but we hold
			// their sessions still.
			live := r.sessions.Live()
			r.cfg.Log.Warn("lease had lapsed; reporting live sessions again", "replica", r.cfg.Replica, "sessions", len(live))
			for _, id := range live {
				r.down.SetPresence(ctx, id, true, "")
			}
		}
		off, err := r.st.ExpireLeases(ctx, now)
		if err != nil {
			if ctx.Err() == nil {
				r.cfg.Log.Warn("lease sweep failed", "err", err)
			}
			continue
		}
		if len(off) > 0 {
			r.cfg.Log.Info("devices of replicas whose lease ended marked offline", "devices", len(off))
		}
	}
}

// onListen runs each time the replica (re)starts listening: what was told meanwhile is lost.
func (r *Replica) onListen() {
	if r.caches != nil {
		r.caches.ForgetClients()
		r.caches.ForgetKeys()
	}
	r.recheck.Store(true)
	r.sweepSoon()
}

// sweepSoon has Run sweep now (without waiting: the callers are the listener and onChange).
func (r *Replica) sweepSoon() {
	select {
	case r.poke <- struct{}{}:
	default: // a sweep is due already
	}
}

// onChange acts on a notice: cheap ones at once, those that read the database on a worker, and
// only for devices this replica holds.
func (r *Replica) onChange(c store.Change) {
	switch c.Kind {
	case store.ChangeCommand, store.ChangeDesired:
		if r.sessions.Connected(c.ID) {
			if !r.queue(nil, job{kind: c.Kind, id: c.ID}, time.Now()) {
				r.sweepSoon() // the sweep finds what the dropped job was for
			}
		}
	case store.ChangeRevoked:
		r.sessions.Disconnect(c.ID)
	case store.ChangeClient:
		if r.caches != nil {
			r.caches.ForgetClient(c.ID)
		}
	case store.ChangeSigningKeys:
		if r.caches != nil {
			r.caches.ForgetKeys()
		}
	}
}

// shard is the worker queue of a device: always the same one, so that a device's jobs run one
// at a time and in the order they were queued (two workers sending one device's commands at
// once could each publish and mark the same commands).
func (r *Replica) shard(id string) chan job {
	h := fnv.New32a()
	h.Write([]byte(id))
	return r.shards[h.Sum32()%uint32(len(r.shards))]
}

// queue hands a job to its device's worker unless it waits already, and reports whether it is
// queued. noticed is when its notice came (zero: a sweep). With done nil queue does not wait:
// on a full queue the job is dropped (false); else it waits for room until done is closed.
func (r *Replica) queue(done <-chan struct{}, j job, noticed time.Time) bool {
	r.mu.Lock()
	if at, ok := r.due[j]; ok {
		if at.IsZero() {
			r.due[j] = noticed
		}
		r.mu.Unlock()
		return true
	}
	r.due[j] = noticed // before the send: the worker may take it at once
	r.mu.Unlock()
	jobs := r.shard(j.id)
	select {
	case jobs <- j:
		return true
	default:
	}
	if done != nil {
		select {
		case jobs <- j:
			return true
		case <-done:
		}
	}
	r.mu.Lock()
	delete(r.due, j)
	r.mu.Unlock()
	return false
}

// take removes a job from due as its worker takes it, and returns when its first notice came.
func (r *Replica) take(j job) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	noticed := r.due[j]
	delete(r.due, j)
	return noticed
}

func (r *Replica) work(ctx context.Context, jobs <-chan job) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-jobs:
			noticed := r.take(j)
			switch j.kind {
			case store.ChangeCommand:
				r.down.SendNoticed(ctx, j.id, noticed)
			case store.ChangeDesired:
				r.down.PushDesired(ctx, j.id)
			}
		}
	}
}

// sweep has the workers send the queued commands and the desired state of devices this replica
// holds that have some waiting. It waits for room in their queues: it runs on Run's goroutine.
func (r *Replica) sweep(ctx context.Context) {
	cmds, err := r.st.DevicesWithQueued(ctx, r.cfg.Now())
	if err != nil {
		if ctx.Err() == nil {
			r.cfg.Log.Warn("downlink sweep failed", "err", err)
		}
		return
	}
	behind, err := r.st.DevicesBehind(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.cfg.Log.Warn("downlink sweep failed", "err", err)
		}
		return
	}
	n := 0
	for _, w := range []struct {
		kind store.ChangeKind
		ids  []string
	}{{store.ChangeCommand, cmds}, {store.ChangeDesired, behind}} {
		for _, id := range w.ids {
			if r.sessions.Connected(id) && r.queue(ctx.Done(), job{kind: w.kind, id: id}, time.Time{}) {
				n++
			}
		}
	}
	if n > 0 {
		r.cfg.Log.Info("downlink sweep queued what was waiting", "devices", n)
	}
}
