package ingest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/kioskfleet/kioskfleet/hub/ingest"
	"github.com/kioskfleet/kioskfleet/hub/ingest/ingesttest"
	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/sqlite"
	"github.com/kioskfleet/kioskfleet/hub/store/storetest"
	"github.com/kioskfleet/kioskfleet/pkg/polltest"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const wait = 10 * time.Second // generous: the machine is shared

// clock is a settable hub clock.
type clock struct{ ns atomic.Int64 }

func newClock() *clock               { c := &clock{}; c.ns.Store(storetest.T0.UnixNano()); return c }
func (c *clock) Now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Add(d time.Duration) { c.ns.Add(int64(d)) }

// gate wraps a store so that a test can hold CommitBatches, see its calls and make it fail.
type gate struct {
	store.Store
	mu      sync.Mutex
	hold    chan struct{} // non-nil: CommitBatches waits until it is closed
	entered chan int      // receives len(batches) of every call, if non-nil
	fail    func([]store.Batch) error
	calls   []int
	devices [][]string // the device of each batch, per call
	results []error    // of the calls that returned
}

func (g *gate) CommitBatches(ctx context.Context, bs []store.Batch) ([]store.Watermark, error) {
	g.mu.Lock()
	hold, entered, fail := g.hold, g.entered, g.fail
	g.calls = append(g.calls, len(bs))
	devs := make([]string, len(bs))
	for i, b := range bs {
		devs[i] = b.DeviceID
	}
	g.devices = append(g.devices, devs)
	g.mu.Unlock()
	var err error
	if fail != nil {
		err = fail(bs)
	}
	if entered != nil {
		entered <- len(bs)
	}
	if hold != nil {
		<-hold
	}
	var marks []store.Watermark
	if err == nil {
		marks, err = g.Store.CommitBatches(ctx, bs)
	}
	g.mu.Lock()
	g.results = append(g.results, err)
	g.mu.Unlock()
	return marks, err
}

func (g *gate) Results() []error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]error(nil), g.results...)
}

func (g *gate) Calls() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]int(nil), g.calls...)
}

type env struct {
	st     *sqlite.Store
	gate   *gate
	bus    *ingesttest.Bus
	g      *ingest.Ingest
	clock  *clock
	reg    *prometheus.Registry
	cancel context.CancelFunc
	stop   func() // cancels Run and waits for it
}

func newEnv(t testing.TB, cfg ingest.Config, devices ...string) *env {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "hub.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, d := range devices {
		storetest.Enroll(t, st, "site-1", d)
	}
	e := &env{st: st, gate: &gate{Store: st}, bus: ingesttest.NewBus(), clock: newClock(), reg: prometheus.NewRegistry()}
	if cfg.Now == nil {
		cfg.Now = e.clock.Now
	}
	e.g, err = ingest.New(cfg, e.gate, e.bus, nil, e.reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	done := make(chan error, 1)
	go func() { done <- e.g.Run(ctx) }()
	var once sync.Once
	e.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(wait):
				t.Errorf("Run did not return within %v of cancel", wait)
			}
		})
	}
	t.Cleanup(e.stop)
	// Run subscribes before it starts committing; wait for its three subscriptions.
	deadline := time.Now().Add(wait)
	for e.bus.Subscribed() < 3 {
		if time.Now().After(deadline) {
			t.Fatal("ingest did not subscribe")
		}
		time.Sleep(time.Millisecond)
	}
	return e
}

// batch returns an up payload of n records of kind telemetry.x from seq from.
func batch(epoch string, from uint64, n int) wire.Batch {
	b := wire.Batch{V: wire.Version, Epoch: epoch}
	for i := range n {
		b.Records = append(b.Records, wire.Record{Seq: from + uint64(i), Kind: "telemetry.x", Class: wire.Telemetry,
			TS: storetest.T0.UnixMilli(), Body: json.RawMessage(`{"n":` + fmt.Sprint(from+uint64(i)) + `}`)})
	}
	return b
}

func record(seq uint64, kind string, body any) wire.Record {
	return wire.Record{Seq: seq, Kind: kind, Class: wire.Business, TS: storetest.T0.UnixMilli(), Body: wire.Encode(body)}
}

func (e *env) seqs(t *testing.T, dev string) []uint64 {
	t.Helper()
	rs, err := e.st.ListRecords(t.Context(), store.RecordFilter{DeviceID: dev})
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for _, r := range rs {
		out = append(out, r.Seq)
	}
	return out
}

func upTos(acks []wire.AckMsg) []uint64 {
	var out []uint64
	for _, a := range acks {
		out = append(out, a.UpTo)
	}
	return out
}

// rejected returns kf_ingest_rejected_total by "channel/reason".
func (e *env) rejected(t *testing.T) map[string]float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "kf_ingest_rejected_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var ch, reason string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "channel":
					ch = l.GetValue()
				case "reason":
					reason = l.GetValue()
				}
			}
			out[ch+"/"+reason] = m.GetCounter().GetValue()
		}
	}
	return out
}

func equal[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestAckOnlyAfterCommit(t *testing.T) {
	e := newEnv(t, ingest.Config{}, "k-001")
	hold := make(chan struct{})
	entered := make(chan int, 1)
	e.gate.mu.Lock()
	e.gate.hold, e.gate.entered = hold, entered
	e.gate.mu.Unlock()

	e.bus.Send("k-001", wire.ChUp, batch("e1", 1, 3))
	select {
	case <-entered:
	case <-time.After(wait):
		t.Fatal("no commit started")
	}
	// The commit is in progress and held: nothing may be acked yet.
	if acks := e.bus.Acks(t, "k-001"); len(acks) != 0 {
		t.Fatalf("acked %v before the commit returned", acks)
	}
	if got := e.seqs(t, "k-001"); len(got) != 0 {
		t.Fatalf("records visible before the commit: %v", got)
	}
	close(hold)
	acks := e.bus.WaitAck(t, "k-001", "e1", 3, wait)
	if !equal(upTos(acks), []uint64{3}) || acks[0].Epoch != "e1" || acks[0].V != wire.Version {
		t.Fatalf("acks = %+v, want one ack of e1 up to 3", acks)
	}
	if got := e.seqs(t, "k-001"); !equal(got, []uint64{1, 2, 3}) {
		t.Fatalf("stored seqs %v", got)
	}
	m := e.bus.Published(wire.Topic("k-001", wire.ChAck))[0]
	if m.QoS != 0 || m.Retain {
		t.Fatalf("ack published with qos %d retain %v, want qos 0 not retained", m.QoS, m.Retain)
	}
	// Last-seen is touched after the acks, off the ack path.
	deadline := time.Now().Add(wait)
	for {
		d, err := e.st.GetDevice(t.Context(), "k-001")
		if err == nil && d.LastSeen.Equal(e.clock.Now()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("last seen %v (%v), want %v", d.LastSeen, err, e.clock.Now())
		}
		time.Sleep(time.Millisecond)
	}
}

func TestFailedCommitIsNotAcked(t *testing.T) {
	e := newEnv(t, ingest.Config{}, "k-001")
	var failing atomic.Bool
	failing.Store(true)
	entered := make(chan int, 10)
	e.gate.mu.Lock()
	e.gate.entered = entered
	e.gate.fail = func([]store.Batch) error {
		if failing.Load() {
			return errors.New("disk on fire")
		}
		return nil
	}
	e.gate.mu.Unlock()

	e.bus.Send("k-001", wire.ChUp, batch("e1", 1, 2))
	<-entered
	failing.Store(false)
	// The agent resends after its ack timeout, with one more record.
	e.bus.Send("k-001", wire.ChUp, batch("e1", 1, 3))
	acks := e.bus.WaitAck(t, "k-001", "e1", 3, wait)
	if !equal(upTos(acks), []uint64{3}) {
		t.Fatalf("acks %v: the failed commit was acked", upTos(acks))
	}
	if s := e.g.Stats(); s.Commits != 1 || s.Batches != 1 || s.Records != 3 {
		t.Fatalf("stats %+v, want only the successful commit counted", s)
	}
}

// A batch the store refuses must not hold up the acks of the other devices in its group.
func TestRefusedBatchDoesNotBlockItsGroup(t *testing.T) {
	e := newEnv(t, ingest.Config{}, "k-001", "k-002", "k-003")
	hold := make(chan struct{})
	entered := make(chan int, 10)
	e.gate.mu.Lock()
	e.gate.hold, e.gate.entered = hold, entered
	e.gate.mu.Unlock()

	e.bus.Send("k-001", wire.ChUp, batch("e1", 1, 1))
	<-entered                                             // the first commit is held; the next batches queue up into one group
	e.bus.Send("k-002", wire.ChUp, batch("e1", 1<<63, 1)) // valid on the wire, refused by the store
	e.bus.Send("k-003", wire.ChUp, batch("e1", 1, 2))
	e.gate.mu.Lock()
	e.gate.hold, e.gate.entered = nil, nil
	e.gate.mu.Unlock()
	close(hold)

	e.bus.WaitAck(t, "k-001", "e1", 1, wait)
	e.bus.WaitAck(t, "k-003", "e1", 2, wait)
	if acks := e.bus.Acks(t, "k-002"); len(acks) != 0 {
		t.Fatalf("refused batch acked: %+v", acks)
	}
	if calls := e.gate.Calls(); len(calls) < 3 || calls[1] != 2 {
		t.Fatalf("commit calls %v, want the two queued batches tried as one group, then alone", calls)
	}
}

func TestDuplicateReacked(t *testing.T) {
	e := newEnv(t, ingest.Config{}, "k-001")
	e.bus.Send("k-001", wire.ChUp, batch("e1", 1, 3))
	e.bus.WaitAck(t, "k-001", "e1", 3, wait)
	var acks []ingesttest.Message
	for i, b := range []wire.Batch{batch("e1", 1, 3), batch("e1", 2, 1)} {
		e.bus.Send("k-001", wire.ChUp, b)
		acks = e.bus.Wait(t, wire.Topic("k-001", wire.ChAck), wait, func(ms []ingesttest.Message) bool { return len(ms) == i+2 })
	}
	for _, m := range acks {
		if a, _ := wire.DecodeAck(m.Payload); a.UpTo != 3 || a.Epoch != "e1" {
			t.Fatalf("re-ack %+v, want e1 up to 3", a)
		}
	}
	if got := e.seqs(t, "k-001"); !equal(got, []uint64{1, 2, 3}) {
		t.Fatalf("stored seqs %v after duplicates", got)
	}
}

func TestGapNotAckedOver(t *testing.T) {
	e := newEnv(t, ingest.Config{}, "k-001")
	e.bus.Send("k-001", wire.ChUp, batch("e1", 1, 2))
	e.bus.WaitAck(t, "k-001", "e1", 2, wait)
	e.bus.Send("k-001", wire.ChUp, batch("e1", 5, 2)) // 3 and 4 were lost
	acks := e.bus.Wait(t, wire.Topic("k-001", wire.ChAck), wait, func(ms []ingesttest.Message) bool { return len(ms) == 2 })
	if a, _ := wire.DecodeAck(acks[1].Payload); a.UpTo != 2 {
		t.Fatalf("acked %d over the gap 3..4", a.UpTo)
	}
	if got := e.seqs(t, "k-001"); !equal(got, []uint64{1, 2}) {
		t.Fatalf("records beyond the gap listed: %v", got)
	}
	e.bus.Send("k-001", wire.ChUp, batch("e1", 3, 2))
	e.bus.WaitAck(t, "k-001", "e1", 6, wait)
	if got := e.seqs(t, "k-001"); !equal(got, []uint64{1, 2, 3, 4, 5, 6}) {
		t.Fatalf("stored seqs %v after the fill", got)
	}
	// A new epoch (wiped disk) starts from 1 and is acked on its own.
	e.bus.Send("k-001", wire.ChUp, batch("e2", 1, 1))
	e.bus.WaitAck(t, "k-001", "e2", 1, wait)
}

func newCommand(t *testing.T, st store.Store, id, dev string, created time.Time, ttl time.Duration) {
	t.Helper()
	c := commandFixture(id, dev, created)
	c.ExpiresAt = created.Add(ttl)
	if err := st.CreateCommand(t.Context(), c); err != nil {
		t.Fatal(err)
	}
}

func commandFixture(id, dev string, created time.Time) store.Command {
	return store.Command{ID: id, DeviceID: dev, Name: "print-test-page", Args: json.RawMessage(`{"printer":"receipt0"}`),
		State: wire.CmdQueued, CreatedAt: created, ExpiresAt: created.Add(time.Hour), UpdatedAt: created}
}

func command(t *testing.T, st store.Store, id string) store.Command {
	t.Helper()
	c, err := st.GetCommand(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// delivered waits until command id is marked delivered (the marker marks after the publish,
// off the sender's path) and returns it.
func delivered(t *testing.T, st store.Store, id string) store.Command {
	t.Helper()
	var c store.Command
	polltest.Poll(wait, func() bool {
		c = command(t, st, id)
		return c.State == wire.CmdDelivered
	})
	return c
}

func TestHello(t *testing.T) {
	e := newEnv(t, ingest.Config{}, "k-001")
	ctx := t.Context()
	e.bus.Send("k-001", wire.ChUp, batch("e1", 1, 4))
	e.bus.WaitAck(t, "k-001", "e1", 4, wait)

	t0 := e.clock.Now()
	newCommand(t, e.st, "c-old", "k-001", t0, time.Minute)
	newCommand(t, e.st, "c-1", "k-001", t0, time.Hour)
	newCommand(t, e.st, "c-2", "k-001", t0.Add(time.Second), 2*time.Hour)
	for range 2 {
		if _, err := e.st.SetDesired(ctx, "k-001", json.RawMessage(`{"logLevel":"debug"}`), t0); err != nil {
			t.Fatal(err)
		}
	}
	e.clock.Add(10 * time.Minute) // c-old has expired (not yet swept)
	now := e.clock.Now()

	nAcks := len(e.bus.Acks(t, "k-001"))
	e.bus.SetConnected("k-001", true)
	e.bus.Send("k-001", wire.ChHello, wire.Hello{V: wire.Version, Epoch: "e1", NextSeq: 5, StateVersion: 2, AgentVersion: "1.2.3"})

	acks := e.bus.Acks(t, "k-001")
	if len(acks) != nAcks+1 || acks[nAcks].UpTo != 4 || acks[nAcks].Epoch != "e1" {
		t.Fatalf("hello answered with acks %+v, want the current watermark e1/4", acks[nAcks:])
	}
	cmds := e.bus.Commands(t, "k-001")
	if len(cmds) != 2 || cmds[0].ID != "c-1" || cmds[1].ID != "c-2" {
		t.Fatalf("commands sent %+v, want c-1 then c-2 (c-old expired)", cmds)
	}
	if want := (50 * time.Minute).Milliseconds(); cmds[0].ExpiresIn != want {
		t.Fatalf("c-1 expiresIn %d ms, want %d", cmds[0].ExpiresIn, want)
	}
	if cmds[0].ExpiresAt != t0.Add(time.Hour).UnixMilli() || cmds[0].CreatedAt != t0.UnixMilli() ||
		string(cmds[0].Args) != `{"printer":"receipt0"}` || cmds[0].Name != "print-test-page" {
		t.Fatalf("c-1 sent as %+v", cmds[0])
	}
	for _, id := range []string{"c-1", "c-2"} {
		if c := delivered(t, e.st, id); c.State != wire.CmdDelivered || !c.DeliveredAt.Equal(now) {
			t.Fatalf("%s is %s delivered at %v, want delivered at %v", id, c.State, c.DeliveredAt, now)
		}
	}
	if c := command(t, e.st, "c-old"); c.State != wire.CmdQueued {
		t.Fatalf("expired command moved to %s", c.State)
	}
	if ds := e.bus.Desired(t, "k-001"); len(ds) != 0 {
		t.Fatalf("desired sent to an agent that runs its version: %+v", ds)
	}
	// Presence is written by its own writer, after the hello's commands went out: wait for it.
	var d store.Device
	if !polltest.Poll(wait, func() bool {
		d, _ = e.st.GetDevice(ctx, "k-001")
		return d.Online && d.AgentVersion == "1.2.3"
	}) {
		t.Fatalf("after hello: online %v agent %q", d.Online, d.AgentVersion)
	}

	// An agent on an older desired version gets the current one; commands are resent (still
	// delivered, not accepted) and the agent dedups them by ID.
	e.bus.Send("k-001", wire.ChHello, wire.Hello{V: wire.Version, Epoch: "e1", NextSeq: 5, StateVersion: 1})
	ds := e.bus.Desired(t, "k-001")
	if len(ds) != 1 || ds[0].Version != 2 || string(ds[0].Doc) != `{"logLevel":"debug"}` {
		t.Fatalf("desired sent %+v, want version 2", ds)
	}
	if cmds := e.bus.Commands(t, "k-001"); len(cmds) != 4 {
		t.Fatalf("%d commands sent after the second hello, want 4 (2 resent)", len(cmds))
	}
	// A hello of a new epoch learns that nothing of it is stored.
	e.bus.Send("k-001", wire.ChHello, wire.Hello{V: wire.Version, Epoch: "e2", NextSeq: 1, StateVersion: 2})
	if acks := e.bus.Acks(t, "k-001"); acks[len(acks)-1].Epoch != "e2" || acks[len(acks)-1].UpTo != 0 {
		t.Fatalf("hello of a new epoch acked %+v, want e2/0", acks[len(acks)-1])
	}
}

func TestSendPendingOnlyToConnected(t *testing.T) {
	e := newEnv(t, ingest.Config{}, "k-001")
	newCommand(t, e.st, "c-1", "k-001", e.clock.Now(), time.Hour)
	e.g.SendPending(t.Context(), "k-001")
	e.g.PushDesired(t.Context(), "k-001")
	if ms := e.bus.Published(""); len(ms) != 0 {
		t.Fatalf("published to an offline device: %+v", ms)
	}
	if c := command(t, e.st, "c-1"); c.State != wire.CmdQueued {
		t.Fatalf("command to an offline device is %s, want queued", c.State)
	}

	e.bus.SetConnected("k-001", true)
	e.bus.FailPublish(wire.ChCmd, errors.New("queue full"))
	e.g.SendPending(t.Context(), "k-001")
	if c := command(t, e.st, "c-1"); c.State != wire.CmdQueued {
		t.Fatalf("command whose publish failed is %s, want queued", c.State)
	}
	e.bus.FailPublish(wire.ChCmd, nil)
	e.g.SendPending(t.Context(), "k-001")
	if cmds := e.bus.Commands(t, "k-001"); len(cmds) != 1 || cmds[0].ID != "c-1" {
		t.Fatalf("sent %+v", cmds)
	}
	if c := delivered(t, e.st, "c-1"); c.State != wire.CmdDelivered {
		t.Fatalf("command is %s, want delivered", c.State)
	}
	if _, err := e.st.SetDesired(t.Context(), "k-001", json.RawMessage(`{"a":1}`), e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	e.g.PushDesired(t.Context(), "k-001")
	if ds := e.bus.Desired(t, "k-001"); len(ds) != 1 || ds[0].Version != 1 {
		t.Fatalf("desired pushed %+v", ds)
	}
}

// Commands written one after the other, each followed (sometimes) by the notice that the
// device has new ones, and the device's hellos in between: the agent, which executes a command
// ID once and ignores its copies, gets every command, in the order they were written; every one
// ends up marked delivered (by the marker, after the publish); the time from each notice to each
// stage is measured.
func TestSendNoticedOrderAndMarks(t *testing.T) {
	e := newEnv(t, ingest.Config{}, "k-001")
	ctx := t.Context()
	e.bus.SetConnected("k-001", true)
	var want []string
	notices := 0
	for i := range 60 {
		id := fmt.Sprintf("c-%02d", i)
		newCommand(t, e.st, id, "k-001", e.clock.Now(), time.Hour)
		want = append(want, id)
		switch i % 4 {
		case 0, 1:
			e.g.SendNoticed(ctx, "k-001", time.Now())
			notices++
		case 2:
			e.bus.Send("k-001", wire.ChHello, wire.Hello{V: wire.Version, Epoch: "e1", NextSeq: 1})
		}
	}
	e.g.SendNoticed(ctx, "k-001", time.Now())
	notices++
	var executed []string // what the agent runs: each ID once, on its first copy
	seen := map[string]bool{}
	for _, c := range e.bus.Commands(t, "k-001") {
		if !seen[c.ID] {
			seen[c.ID] = true
			executed = append(executed, c.ID)
		}
	}
	if !equal(executed, want) {
		t.Fatalf("the agent executed %v, want %v", executed, want)
	}
	for _, id := range want {
		if c := delivered(t, e.st, id); c.State != wire.CmdDelivered {
			t.Fatalf("%s is %s, want delivered", id, c.State)
		}
	}
	var n map[string]int
	if !polltest.Poll(wait, func() bool {
		n = e.downlinkCounts(t)
		return n["taken"] == notices && n["fetched"] == notices && n["published"] == notices && n["marked"] == notices
	}) {
		t.Fatalf("kf_downlink_seconds counts %v, want %d notices measured at every stage (hellos are not notices)", n, notices)
	}
}

// downlinkCounts returns the number of observations of kf_downlink_seconds by stage.
func (e *env) downlinkCounts(t *testing.T) map[string]int {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, mf := range mfs {
		if mf.GetName() == "kf_downlink_seconds" {
			for _, m := range mf.GetMetric() {
				out[m.GetLabel()[0].GetValue()] = int(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

func TestCommandResults(t *testing.T) {
	e := newEnv(t, ingest.Config{}, "k-001")
	ctx := t.Context()
	newCommand(t, e.st, "c-1", "k-001", e.clock.Now(), time.Hour)
	e.bus.SetConnected("k-001", true)
	e.g.SendPending(ctx, "k-001")

	e.clock.Add(time.Second)
	t1 := e.clock.Now()
	results := wire.Batch{V: wire.Version, Epoch: "e1", Records: []wire.Record{
		record(1, wire.KindCmdResult, wire.CommandResult{ID: "c-1", State: wire.CmdAccepted}),
		record(2, wire.KindCmdResult, wire.CommandResult{ID: "c-1", State: wire.CmdSucceeded, Output: json.RawMessage(`{"millis":2140}`)}),
		record(3, wire.KindCmdResult, wire.CommandResult{ID: "c-unknown", State: wire.CmdFailed, Error: "no such command"}),
	}}
	e.bus.Send("k-001", wire.ChUp, results)
	e.bus.WaitAck(t, "k-001", "e1", 3, wait)
	c := command(t, e.st, "c-1")
	if c.State != wire.CmdSucceeded || string(c.Output) != `{"millis":2140}` || !c.UpdatedAt.Equal(t1) {
		t.Fatalf("command after results: %+v", c)
	}

	// The same batch again (the ack was lost): stored once, no second effect.
	e.clock.Add(time.Minute)
	e.bus.Send("k-001", wire.ChUp, results)
	e.bus.Wait(t, wire.Topic("k-001", wire.ChAck), wait, func(ms []ingesttest.Message) bool { return len(ms) == 2 })
	if c2 := command(t, e.st, "c-1"); c2.State != c.State || !c2.UpdatedAt.Equal(t1) {
		t.Fatalf("duplicate result changed the command: %+v", c2)
	}
	if got := e.seqs(t, "k-001"); !equal(got, []uint64{1, 2, 3}) {
		t.Fatalf("stored seqs %v", got)
	}

	// A later failed result cannot move a terminal command.
	e.bus.Send("k-001", wire.ChUp, wire.Batch{V: wire.Version, Epoch: "e1", Records: []wire.Record{
		record(4, wire.KindCmdResult, wire.CommandResult{ID: "c-1", State: wire.CmdFailed, Error: "late"})}})
	e.bus.WaitAck(t, "k-001", "e1", 4, wait)
	if c2 := command(t, e.st, "c-1"); c2.State != wire.CmdSucceeded {
		t.Fatalf("terminal command moved to %s", c2.State)
	}
}

func TestStateRecords(t *testing.T) {
	e := newEnv(t, ingest.Config{}, "k-001")
	ctx := t.Context()
	hb := wire.Heartbeat{UptimeS: 81, AgentVersion: "1.2.3", OutboxDepth: 2}
	e.bus.Send("k-001", wire.ChUp, wire.Batch{V: wire.Version, Epoch: "e1", Records: []wire.Record{
		record(1, wire.KindReported, wire.Reported{Version: 3, Doc: json.RawMessage(`{"logLevel":"info"}`), Error: "printer.profile unknown"}),
		record(2, wire.KindHeartbeat, hb),
		record(3, wire.KindPeripherals, map[string]any{"devices": []any{}}),
		record(4, wire.KindCmdResult, map[string]any{"id": "c-1", "state": "bogus"}), // stored, no effect, counted
		// Bodies the console could not read: stored, no effect (the last good ones stay), counted.
		record(5, wire.KindHeartbeat, map[string]any{"cpu": "high"}),
		record(6, wire.KindPeripherals, map[string]any{"scanner": "offline"}),
	}})
	e.bus.WaitAck(t, "k-001", "e1", 6, wait)
	rep, err := e.st.GetReported(ctx, "k-001")
	if err != nil || rep.Version != 3 || string(rep.Doc) != `{"logLevel":"info"}` || rep.Error != "printer.profile unknown" {
		t.Fatalf("reported %+v, %v", rep, err)
	}
	d, _ := e.st.GetDevice(ctx, "k-001")
	if string(d.Health) != string(wire.Encode(hb)) || !d.HealthAt.Equal(e.clock.Now()) || string(d.Peripherals) != `{"devices":[]}` {
		t.Fatalf("device health %s at %v, peripherals %s", d.Health, d.HealthAt, d.Peripherals)
	}
	if got := e.seqs(t, "k-001"); len(got) != 6 {
		t.Fatalf("stored seqs %v, want all 6 (a bad body is still the device's data)", got)
	}
	if r := e.rejected(t); r["up/malformed"] != 3 {
		t.Fatalf("rejected %v, want the bad cmd.result, heartbeat and peripherals bodies counted", r)
	}
}

func TestMalformedPayloads(t *testing.T) {
	e := newEnv(t, ingest.Config{}, "k-001", "k-002")
	up := wire.Topic("k-001", wire.ChUp)
	good := string(wire.Encode(batch("e1", 1, 1)))
	for _, tc := range []struct {
		name, dev, topic, payload string
	}{
		{"not json", "k-001", up, `{"v":1,`},
		{"array", "k-001", up, `[1,2]`},
		{"no version", "k-001", up, `{"epoch":"e1","records":[]}`},
		{"unknown field", "k-001", up, strings.Replace(good, `"epoch"`, `"x":1,"epoch"`, 1)},
		{"trailing", "k-001", up, good + `{}`},
		{"empty batch", "k-001", up, `{"v":1,"epoch":"e1","records":[]}`},
		{"seq 0", "k-001", up, strings.Replace(good, `"seq":1`, `"seq":0`, 1)},
		{"bad epoch", "k-001", up, strings.Replace(good, `"e1"`, `"E/1"`, 1)},
		{"bad class", "k-001", up, strings.Replace(good, `"class":"t"`, `"class":"x"`, 1)},
		{"version 2", "k-001", up, strings.Replace(good, `"v":1`, `"v":2`, 1)},
		{"invalid UTF-8 in a body", "k-001", up, "{\"v\":1,\"epoch\":\"e1\",\"records\":[{\"seq\":1,\"kind\":\"a\",\"class\":\"t\",\"ts\":1,\"body\":{\"name\":\"\xe5\xbc\"}}]}"},
		{"duplicate key", "k-001", up, strings.Replace(good, `"seq":1`, `"seq":1,"seq":2`, 1)},
		{"duplicate key in a body", "k-001", up, `{"v":1,"epoch":"e1","records":[{"seq":1,"kind":"a","class":"t","ts":1,"body":{"x":1,"X":2}}]}`},
		{"hello invalid UTF-8", "k-001", wire.Topic("k-001", wire.ChHello), "{\"v\":1,\"epoch\":\"e1\",\"nextSeq\":1,\"agentVersion\":\"\xc3\"}"},
		{"too large", "k-001", up, `{"v":1,"epoch":"e1","records":[{"seq":1,"kind":"a","class":"t","ts":1,"body":"` + strings.Repeat("x", wire.MaxPayloadBytes) + `"}]}`},
		{"other device's topic", "k-002", up, good},
		{"hello no nextSeq", "k-001", wire.Topic("k-001", wire.ChHello), `{"v":1,"epoch":"e1","nextSeq":0}`},
		{"hello other device", "k-002", wire.Topic("k-001", wire.ChHello), `{"v":1,"epoch":"e1","nextSeq":1}`},
		{"presence garbage", "k-001", wire.Topic("k-001", wire.ChPresence), `online`},
		{"presence other device", "k-002", wire.Topic("k-001", wire.ChPresence), `{"v":1,"online":false}`},
	} {
		e.bus.Inject(tc.dev, tc.topic, []byte(tc.payload))
	}
	// Inject is synchronous: a refusal happens before it returns, and a queued batch would be
	// acked; send a good batch of k-002 and wait for its ack to know the queue was worked through.
	e.bus.Send("k-002", wire.ChUp, batch("e1", 1, 1))
	e.bus.WaitAck(t, "k-002", "e1", 1, wait)

	want := map[string]float64{
		"up/malformed": 12, "up/unknown_version": 1, "up/too_large": 1, "up/bad_topic": 1,
		"hello/malformed": 2, "hello/bad_topic": 1, "presence/malformed": 1, "presence/bad_topic": 1,
	}
	got := e.rejected(t)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("rejected %s = %v, want %v", k, got[k], v)
		}
	}
	if s := e.g.Stats(); s.Rejected != 20 || s.Batches != 1 {
		t.Errorf("stats %+v, want 20 rejected and only k-002's batch committed", s)
	}
	if got := e.seqs(t, "k-001"); len(got) != 0 {
		t.Fatalf("malformed payload stored: %v", got)
	}
	if ms := e.bus.Published(wire.Topic("k-001", wire.ChAck)); len(ms) != 0 {
		t.Fatalf("malformed payload acked")
	}
	if d, _ := e.st.GetDevice(t.Context(), "k-001"); d.Online || !d.PresenceAt.IsZero() {
		t.Fatalf("a refused hello or presence changed k-001: online %v at %v", d.Online, d.PresenceAt)
	}
}

func TestExpirySweep(t *testing.T) {
	e := newEnv(t, ingest.Config{SweepEvery: 5 * time.Millisecond}, "k-001")
	newCommand(t, e.st, "c-1", "k-001", e.clock.Now(), time.Minute)
	newCommand(t, e.st, "c-2", "k-001", e.clock.Now(), time.Hour)
	e.clock.Add(2 * time.Minute)
	deadline := time.Now().Add(wait)
	for command(t, e.st, "c-1").State != wire.CmdExpired {
		if time.Now().After(deadline) {
			t.Fatal("c-1 not expired by the sweeper")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if c := command(t, e.st, "c-2"); c.State != wire.CmdQueued {
		t.Fatalf("c-2 (not yet due) is %s", c.State)
	}
}

func TestPresence(t *testing.T) {
	e := newEnv(t, ingest.Config{}, "k-001", "k-002")
	online := func(id string) bool {
		d, err := e.st.GetDevice(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		return d.Online
	}
	// Presence is written asynchronously, in arrival order: wait for a marker event on another
	// device to know that everything queued before it was handled.
	marker := false
	settle := func() {
		t.Helper()
		marker = !marker
		e.bus.SetConnected("k-002", marker)
		e.bus.Send("k-002", wire.ChPresence, wire.PresenceMsg{V: wire.Version, Online: marker})
		deadline := time.Now().Add(5 * time.Second)
		for online("k-002") != marker {
			if time.Now().After(deadline) {
				t.Fatal("presence writer did not catch up")
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	e.bus.SetConnected("k-001", true)
	e.bus.Send("k-001", wire.ChPresence, wire.PresenceMsg{V: wire.Version, Online: true, AgentVersion: "1.0.0"})
	settle()
	if !online("k-001") {
		t.Fatal("online presence not recorded")
	}
	// A Will from an old session arrives after the device reconnected: ignored.
	e.clock.Add(time.Second)
	e.bus.Send("k-001", wire.ChPresence, wire.PresenceMsg{V: wire.Version, Online: false})
	e.clock.Add(time.Second)
	settle()
	if !online("k-001") {
		t.Fatal("offline presence of a connected device was recorded")
	}
	e.bus.SetConnected("k-001", false)
	e.clock.Add(time.Second)
	e.bus.Send("k-001", wire.ChPresence, wire.PresenceMsg{V: wire.Version, Online: false})
	e.clock.Add(time.Second)
	settle()
	if online("k-001") {
		t.Fatal("offline presence of a disconnected device was ignored")
	}
	e.g.SetPresence(t.Context(), "k-unknown", true, "") // no panic, nothing to record
	settle()
}

// holdCommit has k-first's one-record batch enter CommitBatches and stay there until the returned
// channel is closed; later commits run freely. Meanwhile batches queue behind it.
func (e *env) holdCommit() chan struct{} {
	hold := make(chan struct{})
	entered := make(chan int, 1)
	e.gate.mu.Lock()
	e.gate.hold, e.gate.entered = hold, entered
	e.gate.mu.Unlock()
	e.bus.Send("k-first", wire.ChUp, batch("e1", 1, 1))
	<-entered
	e.gate.mu.Lock()
	e.gate.hold, e.gate.entered = nil, nil
	e.gate.mu.Unlock()
	return hold
}

// Many batches from many devices queued while a commit runs go into one group commit.
func TestGroupCommitGroups(t *testing.T) {
	const devices = 100
	ids := make([]string, devices)
	for i := range ids {
		ids[i] = fmt.Sprintf("k-%03d", i)
	}
	e := newEnv(t, ingest.Config{}, ids...)
	hold := e.holdCommit()

	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() {
			e.bus.Send(id, wire.ChUp, batch("e1", 1, 10))
			e.bus.Send(id, wire.ChUp, batch("e1", 11, 10))
		})
	}
	wg.Wait()
	close(hold)
	for _, id := range ids {
		e.bus.WaitAck(t, id, "e1", 20, wait)
	}
	s := e.g.Stats()
	if s.Batches != 2*devices+1 || s.Records != 20*devices+1 {
		t.Fatalf("stats %+v", s)
	}
	if s.Commits != 2 {
		t.Fatalf("%d commits for %d batches (calls %v), want 2: the held one and one for everything queued behind it",
			s.Commits, s.Batches, e.gate.Calls())
	}
	// One ack per device: both of its batches were in one group.
	for _, id := range ids {
		if acks := e.bus.Acks(t, id); len(acks) != 1 {
			t.Fatalf("%s got acks %+v, want one up to 20", id, acks)
		}
	}
}

// TestFastLane: while a kiosk's backlog of full batches waits for the committer, another kiosk's
// heartbeats (two, the second sent before the first is committed) are committed in the very next
// group; the backlog's own small batch keeps its place.
func TestFastLane(t *testing.T) {
	e := newEnv(t, ingest.Config{MaxRecords: 300, QueueRecords: 10_000}, "k-bulk", "k-hb", "k-first")
	hold := e.holdCommit()

	for i := range 10 { // 2,000 records: seven groups of 300
		e.bus.Send("k-bulk", wire.ChUp, batch("e1", uint64(1+200*i), 200))
	}
	e.bus.Send("k-bulk", wire.ChUp, batch("e1", 2001, 1)) // small, but behind its own backlog
	e.bus.Send("k-hb", wire.ChUp, batch("e1", 1, 1))
	e.bus.Send("k-hb", wire.ChUp, batch("e1", 2, 1)) // the next heartbeat before the first is committed
	close(hold)
	e.bus.WaitAck(t, "k-hb", "e1", 2, wait)
	e.bus.WaitAck(t, "k-bulk", "e1", 2001, wait)
	e.gate.mu.Lock()
	groups := e.gate.devices
	e.gate.mu.Unlock()
	if len(groups) < 3 || !equal(slices.DeleteFunc(slices.Clone(groups[1]), func(d string) bool { return d != "k-hb" }), []string{"k-hb", "k-hb"}) {
		t.Fatalf("groups %v: both heartbeats should be in the first group after the held one", groups)
	}
	if last := groups[len(groups)-1]; last[len(last)-1] != "k-bulk" {
		t.Errorf("groups %v: k-bulk's small batch overtook its backlog", groups)
	}
	// (The ack up to 2001 says the store holds 1..2001 without a gap.)
}

// TestFastGroupRecords: a group that carries a heartbeat takes no more than FastGroupRecords of a
// backlog's records (the heartbeat's own commit stays short); without one, groups are full.
func TestFastGroupRecords(t *testing.T) {
	e := newEnv(t, ingest.Config{}, "k-bulk", "k-hb", "k-first")
	hold := e.holdCommit()
	for i := range 50 { // 10,000 records
		e.bus.Send("k-bulk", wire.ChUp, batch("e1", uint64(1+200*i), 200))
	}
	e.bus.Send("k-hb", wire.ChUp, batch("e1", 1, 1))
	close(hold)
	e.bus.WaitAck(t, "k-bulk", "e1", 10_000, wait)
	e.gate.mu.Lock()
	groups := e.gate.devices
	e.gate.mu.Unlock()
	if want := 1 + ingest.FastGroupRecords/200; len(groups) < 3 || groups[1][0] != "k-hb" || len(groups[1]) != want {
		t.Fatalf("groups %v: the first after the held one should be the heartbeat and %d backlog batches", groups, want-1)
	}
	if len(groups[2]) != 25 {
		t.Fatalf("groups %v: without a heartbeat a group should take 5,000 records", groups)
	}
}

// TestQueueRecords: once QueueRecords records of full batches wait, their publishers wait too
// (in the broker, their kiosks' bytes stay in TCP), while a heartbeat still takes the fast lane;
// everything is committed once the committer moves on.
func TestQueueRecords(t *testing.T) {
	e := newEnv(t, ingest.Config{QueueRecords: 400}, "k-bulk", "k-hb", "k-first")
	hold := e.holdCommit()

	sent := make(chan int, 10)
	go func() {
		for i := range 10 {
			e.bus.Send("k-bulk", wire.ChUp, batch("e1", uint64(1+200*i), 200))
			sent <- i
		}
	}()
	for range 2 { // two batches of 200 fill the queue
		select {
		case <-sent:
		case <-time.After(wait):
			t.Fatal("publisher blocked before the queue was full")
		}
	}
	select {
	case i := <-sent:
		t.Fatalf("batch %d queued beyond QueueRecords", i)
	case <-time.After(50 * time.Millisecond):
	}
	e.bus.Send("k-hb", wire.ChUp, batch("e1", 1, 1)) // does not block: fast lane
	close(hold)
	e.bus.WaitAck(t, "k-hb", "e1", 1, wait)
	e.bus.WaitAck(t, "k-bulk", "e1", 2000, wait)
}

// MaxRecords ends a gathering early.
func TestGroupCommitMaxRecords(t *testing.T) {
	e := newEnv(t, ingest.Config{MaxRecords: 20, Window: time.Hour}, "k-001")
	e.bus.Send("k-001", wire.ChUp, batch("e1", 1, 10))
	e.bus.Send("k-001", wire.ChUp, batch("e1", 11, 10))
	e.bus.WaitAck(t, "k-001", "e1", 20, wait) // would take an hour without the limit
}

func TestRunCommitsQueuedOnCancel(t *testing.T) {
	e := newEnv(t, ingest.Config{}, "k-001", "k-002", "k-003")
	hold := make(chan struct{})
	entered := make(chan int, 1)
	e.gate.mu.Lock()
	e.gate.hold, e.gate.entered = hold, entered
	e.gate.mu.Unlock()
	e.bus.Send("k-001", wire.ChUp, batch("e1", 1, 1))
	<-entered
	e.gate.mu.Lock()
	e.gate.hold, e.gate.entered = nil, nil
	e.gate.mu.Unlock()
	e.bus.Send("k-002", wire.ChUp, batch("e1", 1, 5))
	e.bus.Send("k-003", wire.ChUp, batch("e1", 1, 7))

	e.cancel() // while the first commit is held, with two batches queued
	close(hold)
	e.stop()
	// Everything received before the cancel is committed and acked by the time Run returns.
	for dev, n := range map[string]uint64{"k-001": 1, "k-002": 5, "k-003": 7} {
		if acks := e.bus.Acks(t, dev); len(acks) != 1 || acks[0].UpTo != n {
			t.Errorf("%s acks %+v, want one up to %d", dev, acks, n)
		}
		if got := e.seqs(t, dev); uint64(len(got)) != n {
			t.Errorf("%s stored %v", dev, got)
		}
	}
	// Run's goroutines are gone (the store's own stay until it is closed).
	goleak.VerifyNone(t, goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"),
		goleak.IgnoreTopFunction("github.com/kioskfleet/kioskfleet/pkg/sqlitex.(*DB).startCheckpoints.func1"))

	// A batch offered after shutdown does not block its publisher.
	done := make(chan struct{})
	go func() { e.bus.Send("k-001", wire.ChUp, batch("e1", 2, 1)); close(done) }()
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatal("publisher blocked after shutdown")
	}
}

// A cancel during a long gathering window commits at once instead of waiting the window out.
func TestCancelEndsTheWindow(t *testing.T) {
	e := newEnv(t, ingest.Config{Window: time.Hour}, "k-001")
	e.bus.Send("k-001", wire.ChUp, batch("e1", 1, 3))
	e.cancel()
	e.stop() // fails the test unless Run returns within the wait
	if acks := e.bus.Acks(t, "k-001"); len(acks) != 1 || acks[0].UpTo != 3 {
		t.Fatalf("acks %+v, want e1 up to 3", acks)
	}
}
