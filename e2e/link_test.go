package e2e

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/agent/link"
	"github.com/kioskfleet/kioskfleet/agent/outbox"
	"github.com/kioskfleet/kioskfleet/hub/broker/brokertest"
	"github.com/kioskfleet/kioskfleet/hub/ingest"
	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/sqlite"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// gatedStore wraps a store: CommitBatches fails for groups that fail() selects, and waits while
// the gate is closed.
type gatedStore struct {
	store.Store
	fail  func([]store.Batch) bool
	mu    sync.Mutex
	gate  chan struct{} // nil: open
	fails atomic.Int32
	calls atomic.Int32 // CommitBatches called, gate or not
}

func (g *gatedStore) CommitBatches(ctx context.Context, bs []store.Batch) ([]store.Watermark, error) {
	g.calls.Add(1)
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	if gate != nil {
		<-gate
	}
	if g.fail != nil && g.fail(bs) {
		g.fails.Add(1)
		return nil, errors.New("injected commit failure")
	}
	return g.Store.CommitBatches(ctx, bs)
}

// inprocHub is a broker, ingest and SQLite store in this process: the hub's sync path without its
// HTTP API, for tests that need to reach inside.
func inprocHub(t *testing.T, wrap func(store.Store) store.Store) (*brokertest.Env, store.Store) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	env := brokertest.Start(t, brokertest.Options{Context: ctx})
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "hub.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	var s store.Store = st
	if wrap != nil {
		s = wrap(st)
	}
	ing, err := ingest.New(ingest.Config{}, s, env.Broker, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = ing.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; st.Close() })
	return env, st
}

func startLink(t *testing.T, env *brokertest.Env, id string, ob outbox.Outbox) *link.Link {
	t.Helper()
	return runLink(t, link.Config{DeviceID: id, Brokers: []string{env.Broker.Addr()}, TLS: env.DeviceTLS(t, id), Outbox: ob,
		BatchRecords: 10, MaxInflight: 8, AckTimeout: time.Second, MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
}

// runLink runs a link until the test ends.
func runLink(t *testing.T, cfg link.Config) *link.Link {
	t.Helper()
	l, err := link.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = l.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return l
}

// watchedOutbox watches the link look at it: looks counts the times its upload loop waits (it
// takes the Notify channel each time it waits for an ack, an append or its ticker, every
// AckTimeout/4); seen is the highest next seq the link read (NextSeq, or Pending: it then had
// every record appended before).
type watchedOutbox struct {
	*outbox.Memory
	looks atomic.Int64
	seen  atomic.Uint64
}

func (o *watchedOutbox) Notify() <-chan struct{} {
	o.looks.Add(1)
	return o.Memory.Notify()
}

func (o *watchedOutbox) NextSeq() uint64 {
	n := o.Memory.NextSeq()
	o.saw(n)
	return n
}

func (o *watchedOutbox) Pending(ctx context.Context, after uint64, n int) ([]wire.Record, error) {
	o.saw(o.Memory.NextSeq())
	return o.Memory.Pending(ctx, after, n)
}

func (o *watchedOutbox) saw(n uint64) {
	for s := o.seen.Load(); n > s && !o.seen.CompareAndSwap(s, n); s = o.seen.Load() {
	}
}

// waitSeen waits until the link has read what the outbox holds now: it sent what it would.
func (o *watchedOutbox) waitSeen(t *testing.T) {
	t.Helper()
	want := o.Memory.NextSeq()
	waitFor(t, 10*time.Second, fmt.Sprintf("the link to read its outbox up to seq %d", want-1), func() bool { return o.seen.Load() >= want })
}

// waitLooks waits until the link has waited n times more: with n >= 2, it has looked at the
// outbox at least once after the call.
func (o *watchedOutbox) waitLooks(t *testing.T, n int64) {
	t.Helper()
	want := o.looks.Load() + n
	waitFor(t, 30*time.Second, fmt.Sprintf("the link to look at its outbox %d times", n), func() bool { return o.looks.Load() >= want })
}

func appendN(t *testing.T, ob outbox.Outbox, n int) {
	t.Helper()
	for range n {
		if _, err := ob.Append(context.Background(), "journal", wire.Business, []byte(`{"x":1}`)); err != nil {
			t.Fatal(err)
		}
	}
}

// A batch the hub could not commit is never acked over; the agent's resend fills the gap and every
// record is stored once, in order.
func TestLinkResendFillsGap(t *testing.T) {
	var failures atomic.Int32 // fail the group holding seq 11 and the hub's retry of it alone
	var gs *gatedStore
	env, st := inprocHub(t, func(s store.Store) store.Store {
		gs = &gatedStore{Store: s, fail: func(bs []store.Batch) bool {
			for _, b := range bs {
				if b.Records[0].Seq == 11 && failures.Add(1) <= 2 {
					return true
				}
			}
			return false
		}}
		return gs
	})
	ob := outbox.NewMemory(outbox.Options{})
	appendN(t, ob, 50) // before connecting: several batches go out at once
	l := startLink(t, env, "k-gap", ob)
	waitFor(t, 20*time.Second, "all acked", func() bool { return l.Acked() == 50 })
	if gs.fails.Load() < 2 {
		t.Fatalf("the injected failures did not happen (%d)", gs.fails.Load())
	}
	recs, err := st.ListRecords(context.Background(), store.RecordFilter{DeviceID: "k-gap", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	seen := make([]fleet.Record, len(recs))
	for i, r := range recs {
		seen[i] = fleet.Record(r)
	}
	checkSeqs(t, seen, 50)
	if ob.Stats().Depth != 0 {
		t.Fatalf("outbox still holds %d records", ob.Stats().Depth)
	}
}

// Nothing is acked (and so nothing leaves the outbox) before the hub's commit returns.
func TestLinkNoAckBeforeCommit(t *testing.T) {
	gate := make(chan struct{})
	var gs *gatedStore
	env, _ := inprocHub(t, func(s store.Store) store.Store {
		gs = &gatedStore{Store: s, gate: gate}
		return gs
	})
	ob := outbox.NewMemory(outbox.Options{})
	l := startLink(t, env, "k-gate", ob)
	waitFor(t, 10*time.Second, "connected", l.Connected)
	appendN(t, ob, 30)
	time.Sleep(500 * time.Millisecond) // give a wrong implementation time to ack early
	if l.Acked() != 0 || ob.Stats().Depth != 30 {
		t.Fatalf("acked %d (outbox depth %d) while the commit was held", l.Acked(), ob.Stats().Depth)
	}
	gs.mu.Lock()
	gs.gate = nil
	gs.mu.Unlock()
	close(gate)
	waitFor(t, 10*time.Second, "acked after commit", func() bool { return l.Acked() == 30 && ob.Stats().Depth == 0 })
}

// A session in which the hub never answers (no ack for the hello, none for the records sent) is
// ended and a new one started: a broker that lost the session's downlink subscriptions must not
// leave a kiosk connected but deaf until it restarts.
func TestLinkEndsDeafSession(t *testing.T) {
	env := brokertest.Start(t, brokertest.Options{}) // a broker and no ingest: nothing is ever acked
	ob := outbox.NewMemory(outbox.Options{})
	appendN(t, ob, 3)
	var deaf atomic.Int32
	l, err := link.New(link.Config{DeviceID: "k-deaf", Brokers: []string{env.Broker.Addr()}, TLS: env.DeviceTLS(t, "k-deaf"), Outbox: ob,
		AckTimeout: 200 * time.Millisecond, DeadSession: 700 * time.Millisecond, MinBackoff: 50 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		OnEnd: func(err error) {
			if errors.Is(err, link.ErrDeaf) {
				deaf.Add(1)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = l.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, 10*time.Second, "a second session after the deaf one", func() bool { return l.Sessions() >= 2 })
	if deaf.Load() == 0 {
		t.Fatal("the deaf session did not end with link.ErrDeaf")
	}
	if ob.Stats().Depth != 3 {
		t.Fatalf("outbox holds %d records, want the 3 never acked", ob.Stats().Depth)
	}
}

// A kiosk that sends a record long after the hub's last ack (minutes between heartbeats) waits
// for its ack from the send, not from that last ack: a busy hub acking later than the link's
// next check must not end a working session as deaf (the reconnect storm of issue 18 counted
// 74 such sessions, none of them deaf: each had its hello acked, idled past DeadSession, and
// sent a heartbeat the hub acked after a second or two).
func TestLinkIdleSessionNotDeaf(t *testing.T) {
	var gs *gatedStore
	env, _ := inprocHub(t, func(s store.Store) store.Store {
		gs = &gatedStore{Store: s}
		return gs
	})
	ob := &watchedOutbox{Memory: outbox.NewMemory(outbox.Options{})}
	appendN(t, ob, 1)
	var deaf atomic.Int32
	const dead, check = 2 * time.Second, time.Second / 4 // the link checks every AckTimeout/4
	l := runLink(t, link.Config{DeviceID: "k-idle", Brokers: []string{env.Broker.Addr()}, TLS: env.DeviceTLS(t, "k-idle"), Outbox: ob,
		AckTimeout: time.Second, DeadSession: dead, MinBackoff: 50 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		OnEnd: func(err error) {
			if errors.Is(err, link.ErrDeaf) {
				deaf.Add(1)
			}
		}})
	waitFor(t, 10*time.Second, "the first record acked", func() bool { return l.Acked() == 1 })
	// Idle, nothing outstanding: the link's ticker wakes it 2*dead/check times, over more than
	// DeadSession.
	ob.waitLooks(t, int64(2*dead/check)+1)
	gate := make(chan struct{})
	gs.mu.Lock()
	gs.gate = gate
	gs.mu.Unlock()
	held := gs.calls.Load()
	appendN(t, ob, 1)
	// Hold the commit past two of the link's checks, well within DeadSession from the send (a
	// link that waits from its last ack ends the session at the first).
	waitFor(t, 10*time.Second, "the second record held in the commit", func() bool { return gs.calls.Load() > held })
	ob.waitLooks(t, 3)
	gs.mu.Lock()
	gs.gate = nil
	gs.mu.Unlock()
	close(gate)
	waitFor(t, 10*time.Second, "the second record acked", func() bool { return l.Acked() == 2 })
	if n := deaf.Load(); n != 0 || l.Sessions() != 1 {
		t.Fatalf("%d sessions ended deaf, %d sessions, want 0 and 1", n, l.Sessions())
	}
}

// While a batch is in flight only full batches follow it; the records appended meanwhile wait
// for its ack and leave together (Nagle's rule, link.upload).
func TestLinkCoalescesWhileInFlight(t *testing.T) {
	var batches atomic.Int32
	gate := make(chan struct{})
	var gs *gatedStore
	env, _ := inprocHub(t, func(s store.Store) store.Store {
		gs = &gatedStore{Store: s, gate: gate, fail: func(bs []store.Batch) bool {
			batches.Add(int32(len(bs)))
			return false
		}}
		return gs
	})
	ob := &watchedOutbox{Memory: outbox.NewMemory(outbox.Options{})}
	l := runLink(t, link.Config{DeviceID: "k-nagle", Brokers: []string{env.Broker.Addr()}, TLS: env.DeviceTLS(t, "k-nagle"), Outbox: ob,
		BatchRecords: 10, MaxInflight: 8, AckTimeout: time.Minute, MinBackoff: 50 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	waitFor(t, 10*time.Second, "connected", l.Connected)
	appendN(t, ob, 1)
	waitFor(t, 10*time.Second, "the first batch held in the commit", func() bool { return gs.calls.Load() >= 1 })
	for range 5 { // records one at a time: they wait
		appendN(t, ob, 1)
		ob.waitSeen(t) // a wrong link sent it alone
	}
	appendN(t, ob, 20) // 25 waiting: two full batches go out at once, five wait
	ob.waitSeen(t)
	gs.mu.Lock()
	gs.gate = nil
	gs.mu.Unlock()
	close(gate)
	waitFor(t, 10*time.Second, "all acked", func() bool { return l.Acked() == 26 })
	if n := batches.Load(); n != 4 {
		t.Fatalf("the hub received %d batches, want 4 (1 record, 10, 10, then the 5 that waited)", n)
	}
}

// A link given several hub addresses (hub replicas), one of them dead, connects through another
// at once: it moves to the next address after a failed attempt, and backs off only after trying
// them all. Links start at random addresses, so a fleet spreads over the replicas.
func TestLinkFailsOverBetweenAddresses(t *testing.T) {
	env, _ := inprocHub(t, nil)
	dead := freeAddr(t) // nobody listens
	for i := range 6 {
		id := fmt.Sprintf("k-failover-%d", i)
		ob := outbox.NewMemory(outbox.Options{})
		appendN(t, ob, 3)
		l := runLink(t, link.Config{DeviceID: id, Brokers: []string{dead, env.Broker.Addr()}, TLS: env.DeviceTLS(t, id),
			Outbox: ob, MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Minute})
		// At worst: the dead address, a wait of at most 1.5 MinBackoff, the live one.
		waitFor(t, 5*time.Second, "records acked through the live address", func() bool { return l.Acked() == 3 })
		if l.Broker() != env.Broker.Addr() {
			t.Errorf("%s: session with %q, want %q", id, l.Broker(), env.Broker.Addr())
		}
	}
}
