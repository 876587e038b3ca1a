package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kioskfleet/kioskfleet/hub/cluster"
	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/postgres"
	"github.com/kioskfleet/kioskfleet/hub/store/sqlite"
	"github.com/kioskfleet/kioskfleet/hub/store/storetest"
	"github.com/kioskfleet/kioskfleet/pkg/pgtest"
)

func TestMain(m *testing.M) {
	code := pgtest.Run(m)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// node is one replica under test: the real store, a broker that holds the sessions the test
// says, and a downlink that records what it was asked to send (and records presence in the
// store, as the ingest does).
type node struct {
	name string
	st   store.Store
	rep  *cluster.Replica

	mu    sync.Mutex
	live  map[string]bool
	sent  []string // "command:k1", "desired:k1"
	cut   []string
	forgt []string
}

func (n *node) Connected(id string) bool { n.mu.Lock(); defer n.mu.Unlock(); return n.live[id] }
func (n *node) Disconnect(id string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.live[id] {
		delete(n.live, id)
		n.cut = append(n.cut, id)
	}
}
func (n *node) Live() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var ids []string
	for id := range n.live {
		ids = append(ids, id)
	}
	return ids
}
func (n *node) Recheck() {}
func (n *node) SendNoticed(_ context.Context, id string, _ time.Time) {
	n.mu.Lock()
	n.sent = append(n.sent, "command:"+id)
	n.mu.Unlock()
}
func (n *node) PushDesired(_ context.Context, id string) {
	n.mu.Lock()
	n.sent = append(n.sent, "desired:"+id)
	n.mu.Unlock()
}
func (n *node) SetPresence(ctx context.Context, id string, online bool, _ string) {
	_ = n.st.SetPresences(ctx, []store.PresenceUpdate{{DeviceID: id, Online: online, At: time.Now(), Replica: n.name}})
}
func (n *node) ForgetClient(id string) { n.mu.Lock(); n.forgt = append(n.forgt, id); n.mu.Unlock() }
func (n *node) ForgetClients()         {}
func (n *node) ForgetKeys()            { n.mu.Lock(); n.forgt = append(n.forgt, "keys"); n.mu.Unlock() }

// connect makes the node hold id's session and records it online, as a hello does.
func (n *node) connect(t *testing.T, id string) {
	n.mu.Lock()
	n.live[id] = true
	n.mu.Unlock()
	n.SetPresence(t.Context(), id, true, "")
}

func (n *node) has(list *[]string, want string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Contains(*list, want)
}

const lease = 3 * time.Second

// start runs a replica named name on st until t ends, or until the returned kill is called: a
// kill -9, that releases nothing.
func start(t *testing.T, name string, st store.Store) (*node, func()) {
	t.Helper()
	n := &node{name: name, st: st, live: map[string]bool{}}
	var err error
	n.rep, err = cluster.New(cluster.Config{Replica: name, Lease: lease, Sweep: time.Hour}, st, n, n, n)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.rep.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.rep.Run(ctx); close(done) }()
	var once sync.Once
	kill := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(kill)
	return n, kill
}

func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func online(t *testing.T, st store.Store, id string) store.Device {
	t.Helper()
	d, err := st.GetDevice(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func openPG(t *testing.T, url string) store.Store {
	s, err := postgres.Open(context.Background(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Two replicas on one PostgreSQL database: what one writes reaches the device at the other at
// once (by notice, not by a sweep: the sweep runs hourly here); the revocation of a device cuts
// it where it is connected; identity caches are told.
func TestNoticesAcrossReplicas(t *testing.T) {
	url := pgtest.DB(t)
	a, _ := start(t, "a", openPG(t, url))
	b, _ := start(t, "b", openPG(t, url))
	storetest.Enroll(t, a.st, "sz", "k1")
	storetest.Enroll(t, a.st, "sz", "k2")
	b.connect(t, "k1")
	ctx := t.Context()
	if err := a.st.CreateCommand(ctx, store.Command{ID: "c1", DeviceID: "k1", Name: "ping", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.st.SetDesired(ctx, "k1", json.RawMessage(`{}`), time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := a.st.CreateCommand(ctx, store.Command{ID: "c2", DeviceID: "k2", Name: "ping", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "b sends k1 its command and desired state", func() bool {
		return b.has(&b.sent, "command:k1") && b.has(&b.sent, "desired:k1")
	})
	if a.has(&a.sent, "command:k1") || b.has(&b.sent, "command:k2") || a.has(&a.sent, "command:k2") {
		t.Errorf("sent by a replica that does not hold the device: a %v, b %v", a.sent, b.sent)
	}
	if err := a.st.RevokeDevice(ctx, "k1", time.Now()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "k1 cut at b", func() bool { return b.has(&b.cut, "k1") })
	if err := a.st.PutClient(ctx, store.Client{ID: "web"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "b forgets client web", func() bool { return b.has(&b.forgt, "web") })
}

// A replica killed (no release) has its devices marked offline by the other's sweep within its
// lease; a device that moved to the other replica stays online there.
func TestLeaseExpiresKilledReplica(t *testing.T) {
	url := pgtest.DB(t)
	a, killA := start(t, "a", openPG(t, url))
	b, _ := start(t, "b", openPG(t, url))
	for _, id := range []string{"k1", "k2", "k3"} {
		storetest.Enroll(t, a.st, "sz", id)
	}
	a.connect(t, "k1")
	a.connect(t, "k2")
	b.connect(t, "k3")
	killA()
	killed := time.Now()
	b.connect(t, "k2") // k2 reconnects to b at once
	eventually(t, 2*lease, "k1 offline after a's lease", func() bool { return !online(t, b.st, "k1").Online })
	t.Logf("k1 offline %v after a was killed (lease %v)", time.Since(killed).Round(10*time.Millisecond), lease)
	if d := online(t, b.st, "k2"); !d.Online || d.Replica != "b" {
		t.Errorf("k2, moved to b: online %v at %q", d.Online, d.Replica)
	}
	if d := online(t, b.st, "k3"); !d.Online {
		t.Error("k3 at b taken offline")
	}
	// a starts again under its name: it holds nothing, and takes a lease again.
	a2, _ := start(t, "a", openPG(t, url))
	a2.connect(t, "k1")
	time.Sleep(lease + lease/3) // a lease and a sweep: a2's devices stay online
	if d := online(t, b.st, "k1"); !d.Online || d.Replica != "a" {
		t.Errorf("k1 back at a: online %v at %q", d.Online, d.Replica)
	}
}

// A replica whose lease was swept while it could not renew (here: swept by hand) reports its
// live sessions online again at its next renewal.
func TestLapsedLeaseReportsSessionsAgain(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "hub.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	storetest.Enroll(t, st, "sz", "k1")
	a, _ := start(t, "a", st)
	a.connect(t, "k1")
	if _, err := st.ReleaseReplica(t.Context(), "a", time.Now()); err != nil { // as a sweep would
		t.Fatal(err)
	}
	if online(t, st, "k1").Online {
		t.Fatal("k1 online after the release")
	}
	eventually(t, 2*lease, "k1 online again after a's next renewal", func() bool { return online(t, st, "k1").Online })
}

// The periodic sweep sends what waits for devices this replica holds, and only those (a lone
// hub on SQLite runs it too).
func TestSweepSendsWhatWaits(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "hub.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := t.Context()
	for _, id := range []string{"k1", "k2"} {
		storetest.Enroll(t, st, "sz", id)
		if err := st.CreateCommand(ctx, store.Command{ID: "c-" + id, DeviceID: id, Name: "ping", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.SetDesired(ctx, id, json.RawMessage(`{}`), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	n := &node{name: "a", st: st, live: map[string]bool{"k1": true}}
	rep, err := cluster.New(cluster.Config{Replica: "a", Lease: lease, Sweep: 100 * time.Millisecond}, st, n, n, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Start(ctx); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { rep.Run(rctx); close(done) }()
	defer func() { cancel(); <-done }()
	eventually(t, 5*time.Second, "k1's command and desired state swept", func() bool {
		return n.has(&n.sent, "command:k1") && n.has(&n.sent, "desired:k1")
	})
	if n.has(&n.sent, "command:k2") || n.has(&n.sent, "desired:k2") {
		t.Errorf("sent to k2, held by no one: %v", n.sent)
	}
}

// told is a store that tells the changes the test pushes, as PostgreSQL's notices would.
type told struct {
	store.Store
	changes chan store.Change
}

func (s *told) Listen(ctx context.Context, onListen func(), onChange func(store.Change)) error {
	onListen()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case c := <-s.changes:
			onChange(c)
		}
	}
}

// serial is a downlink that notes when two sendings to one device overlap, and which notice
// (by number) each device's latest sending followed. A sending lasts until the next notice is
// pushed (or the last one was): notices always come while devices are being served, so that a
// replica that let two workers serve one device would be seen doing it.
type serial struct {
	*node
	gen atomic.Int64 // notices pushed so far

	mu        sync.Mutex
	busy      map[string]bool
	overlaps  []string
	served    map[string]int64
	unnoticed int
	sendings  int
	next      chan struct{} // closed when the next notice is pushed
	last      bool          // the last notice was pushed
}

// push counts a notice, to be pushed next, and ends the sendings under way.
func (s *serial) push(last bool) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.next)
	s.next, s.last = make(chan struct{}), last
	return s.gen.Add(1)
}

func (s *serial) SendNoticed(_ context.Context, id string, noticed time.Time) {
	g := s.gen.Load() // what a fetch of the device's commands here would find
	s.mu.Lock()
	if s.busy[id] {
		s.overlaps = append(s.overlaps, id)
	}
	s.busy[id] = true
	if noticed.IsZero() {
		s.unnoticed++
	}
	s.sendings++
	next, last := s.next, s.last
	s.mu.Unlock()
	if !last {
		<-next // a fetch and a publish, while the next notice comes
	}
	s.mu.Lock()
	s.busy[id] = false
	s.served[id] = max(s.served[id], g)
	s.mu.Unlock()
}

// Notices for a few devices, faster than the workers send: a device is served by one worker at
// a time (so its commands go out in order, and are not published and marked twice at once),
// every notice is followed by a sending that sees it, and each sending knows when its notice
// came (for the latency metrics).
func TestDownlinkOneWorkerPerDevice(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "hub.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	devices := []string{"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"}
	n := &node{name: "a", st: st, live: map[string]bool{}}
	for _, id := range devices {
		n.live[id] = true
	}
	s := &serial{node: n, busy: map[string]bool{}, served: map[string]int64{}, next: make(chan struct{})}
	ts := &told{Store: st, changes: make(chan store.Change)}
	rep, err := cluster.New(cluster.Config{Replica: "a", Lease: lease, Sweep: time.Hour, Workers: 4}, ts, n, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { rep.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	want := map[string]int64{}
	const notices = 500
	for i := range notices {
		id := devices[(i*5+i/7)%len(devices)]
		want[id] = s.push(i == notices-1)
		ts.changes <- store.Change{Kind: store.ChangeCommand, ID: id}
	}
	eventually(t, 10*time.Second, "every device served after its last notice", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for id, g := range want {
			if s.served[id] < g {
				return false
			}
		}
		return true
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	t.Logf("%d sendings for %d notices", s.sendings, notices)
	if len(s.overlaps) > 0 {
		t.Errorf("%d sendings overlapped another to the same device: %v", len(s.overlaps), s.overlaps)
	}
	if s.unnoticed > 0 {
		t.Errorf("%d sendings on a notice without its time", s.unnoticed)
	}
}
