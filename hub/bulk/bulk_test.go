package bulk_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/bulk"
	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/postgres"
	"github.com/kioskfleet/kioskfleet/hub/store/sqlite"
	"github.com/kioskfleet/kioskfleet/hub/store/storetest"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/pgtest"
	"github.com/kioskfleet/kioskfleet/pkg/polltest"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// TestMain runs the package on a PostgreSQL server of its own (pgtest) for TestTwoReplicas.
func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// hub records what the engine pushed and cut.
type hub struct {
	mu                sync.Mutex
	sent, pushed, cut []string
	notices           []api.Notice
}

func (h *hub) SendPending(_ context.Context, id string) { h.add(&h.sent, id) }
func (h *hub) PushDesired(_ context.Context, id string) { h.add(&h.pushed, id) }
func (h *hub) Disconnect(id string)                     { h.add(&h.cut, id) }
func (h *hub) Notify(ns ...api.Notice) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.notices = append(h.notices, ns...)
}

func (h *hub) add(to *[]string, id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	*to = append(*to, id)
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	t     *testing.T
	st    store.Store
	e     *bulk.Engine
	hub   *hub
	clock *clock
	seq   map[string]uint64
}

// Kiosks of the fixture: three in Nanshan (440305), one in Futian (440304), one in Guangzhou
// (440104); n2 has its receipt printer out of paper, n3 is offline, g1 is revoked.
var (
	nanshan = []string{"n1", "n2", "n3"}
	futian  = "f1"
	gz      = "g1"
)

var (
	engineer = bulk.Actor{Name: "eng1", Roles: []string{"fieldops"}, Source: "192.0.2.7", Scope: []string{"440305"}}
	admin    = bulk.Actor{Name: "admin", Roles: []string{"admin"}}
)

func newFixture(t *testing.T) *fixture {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "hub.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	return newFixtureOn(t, st)
}

// newFixtureOn is newFixture on st, which it closes when t ends.
func newFixtureOn(t *testing.T, st store.Store) *fixture {
	t.Cleanup(func() { st.Close() })
	f := &fixture{t: t, st: st, hub: &hub{}, clock: &clock{t: storetest.T0}, seq: map[string]uint64{}}
	f.e = f.engine(f.hub)
	ctx := t.Context()
	for _, s := range []store.Site{{ID: "ns", Name: "Nanshan", Region: "440305"}, {ID: "ft", Name: "Futian", Region: "440304"}, {ID: "gz", Name: "GZ", Region: "440104"}} {
		if err := st.CreateSite(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	var ups []store.PresenceUpdate
	for _, id := range append(slices.Clone(nanshan), futian, gz) {
		storetest.Enroll(t, st, map[byte]string{'n': "ns", 'f': "ft", 'g': "gz"}[id[0]], id)
		ups = append(ups, store.PresenceUpdate{DeviceID: id, Online: id != "n3", At: storetest.T0})
	}
	if err := st.SetPresences(ctx, ups); err != nil {
		t.Fatal(err)
	}
	if err := st.RevokeDevice(ctx, gz, storetest.T0); err != nil {
		t.Fatal(err)
	}
	f.commit("n2", store.Effect{Peripherals: wire.Encode(wire.Peripherals{Devices: []wire.Peripheral{
		{ID: "receipt0", Class: "receipt-printer", Connected: true, Status: wire.PeripheralFault, Reasons: []string{"paper-out"}}}})})
	f.commit("n1", store.Effect{Peripherals: wire.Encode(wire.Peripherals{Devices: []wire.Peripheral{
		{ID: "receipt0", Class: "receipt-printer", Connected: true, Status: wire.PeripheralOK}}})})
	return f
}

// commit commits one record of kiosk id with effect.
func (f *fixture) commit(id string, effect store.Effect) {
	f.t.Helper()
	f.seq[id]++
	b := storetest.NewBatch(id, "e1", f.seq[id], 1, 10)
	b.Records[0].Effect = effect
	if _, err := f.st.CommitBatches(f.t.Context(), []store.Batch{b}); err != nil {
		f.t.Fatal(err)
	}
}

// engine returns another engine on the fixture's store and clock (a hub replica's), reporting to h.
func (f *fixture) engine(h *hub) *bulk.Engine {
	f.t.Helper()
	e, err := bulk.New(bulk.Config{Store: f.st, Sessions: h, Dispatch: h, Notify: h.Notify, Now: f.clock.Now})
	if err != nil {
		f.t.Fatal(err)
	}
	return e
}

func (f *fixture) create(who bulk.Actor, req api.BulkRequest) api.BulkJob {
	f.t.Helper()
	j, err := f.e.Create(f.t.Context(), who, req)
	if err != nil {
		f.t.Fatal(err)
	}
	return j
}

// step steps job id once and returns its kiosks' states, "device=state".
func (f *fixture) step(id string) []string {
	f.t.Helper()
	j, err := f.st.GetBulkJob(f.t.Context(), id)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.e.Step(f.t.Context(), j); err != nil {
		f.t.Fatal(err)
	}
	items, err := f.e.Items(f.t.Context(), nil, id)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []string
	for _, it := range items {
		out = append(out, it.DeviceID+"="+it.State)
	}
	return out
}

func want[T comparable](t *testing.T, what string, got, want []T) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

func n(i int) *int { return &i }

func TestSelect(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		who    bulk.Actor
		filter api.BulkFilter
		want   []string
	}{
		{admin, api.BulkFilter{}, []string{"f1", "n1", "n2", "n3"}}, // g1 is revoked
		{admin, api.BulkFilter{Region: "4403"}, []string{"f1", "n1", "n2", "n3"}},
		{engineer, api.BulkFilter{}, []string{"n1", "n2", "n3"}},
		{engineer, api.BulkFilter{Region: "4403"}, []string{"n1", "n2", "n3"}}, // the scope bounds a wider filter
		{engineer, api.BulkFilter{Region: "440304"}, nil},                      // another county: nothing, not an error
		{engineer, api.BulkFilter{Site: "ft"}, nil},
		{engineer, api.BulkFilter{Status: "online"}, []string{"n1", "n2"}},
		{engineer, api.BulkFilter{Status: "degraded"}, []string{"n2"}},
		{engineer, api.BulkFilter{Status: "offline"}, []string{"n3"}},
		{engineer, api.BulkFilter{Model: "K1"}, []string{"n1", "n2", "n3"}},
		{engineer, api.BulkFilter{Model: "K9"}, nil},
		{engineer, api.BulkFilter{Tag: "lobby"}, []string{"n1"}},
	}
	if err := f.st.SetTags(t.Context(), "n1", []string{"lobby"}); err != nil {
		t.Fatal(err)
	}
	if err := f.st.SetTags(t.Context(), "f1", []string{"lobby"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		j := f.create(c.who, api.BulkRequest{Filter: c.filter, Action: api.BulkDesired, Desired: json.RawMessage(`{"volume":3}`), DryRun: true})
		if !j.DryRun || j.Count != len(c.want) || !slices.Equal(j.Devices, c.want) || j.ID != "" {
			t.Errorf("%s %+v: dry run = %d %v (id %q), want %v", c.who.Name, c.filter, j.Count, j.Devices, j.ID, c.want)
		}
	}
	if js, _ := f.st.ListBulkJobs(t.Context(), false, 0); len(js) != 0 {
		t.Fatalf("a dry run stored jobs: %+v", js)
	}
}

func TestRequestChecked(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		req  api.BulkRequest
		want []string
	}{
		{api.BulkRequest{Action: "reboot-all", DryRun: true}, []string{`action "reboot-all"`}},
		{api.BulkRequest{Action: api.BulkRevoke, DryRun: true}, []string{"filter: name the kiosks to revoke"}},
		{api.BulkRequest{Action: api.BulkCommand, Command: &api.CreateCommand{Name: "Bad Name", Args: json.RawMessage(`{`)}, DryRun: true},
			[]string{`command.name "Bad Name"`, "command.args"}},
		{api.BulkRequest{Action: api.BulkDesired, Desired: json.RawMessage(`[1]`), TTL: "9999h", DryRun: true}, []string{"desired: a JSON object", `ttl "9999h"`}},
		{api.BulkRequest{Action: api.BulkDesired, Desired: json.RawMessage(`{"bundles":{}}`), DryRun: true}, []string{"desired.bundles: belongs to rollouts"}},
		{api.BulkRequest{Action: api.BulkDesired, Desired: json.RawMessage(`{"a":1}`), Filter: api.BulkFilter{Region: "44x", Status: "sad"}, DryRun: true},
			[]string{`filter.region "44x"`, `filter.status "sad"`}},
		{api.BulkRequest{Action: api.BulkDesired, Desired: json.RawMessage(`{"a":1}`)}, []string{"expect:", "idempotencyKey:"}},
		{api.BulkRequest{Action: api.BulkDesired, Desired: json.RawMessage(`{"a":1}`), Expect: n(3), IdempotencyKey: "short"}, []string{"idempotencyKey:"}},
	} {
		_, err := f.e.Create(t.Context(), engineer, c.req)
		if !errors.Is(err, bulk.ErrInvalid) {
			t.Errorf("%+v: err = %v, want ErrInvalid", c.req, err)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: %v does not say %q", c.req, err, w)
			}
		}
	}
}

// TestDesired: a confirmed desired-state change reaches the engineer's three kiosks only, merged
// into what each had; each kiosk is an audit entry; progress follows the kiosks' reports; a
// retried request answers the same job; the job finishes once every kiosk is acked or failed.
func TestDesired(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	if _, err := f.st.SetDesired(ctx, "n1", json.RawMessage(`{"volume":9,"bundles":{"tax":"1.0.0"},"screen":{"dim":true}}`), storetest.T0); err != nil {
		t.Fatal(err)
	}
	req := api.BulkRequest{Action: api.BulkDesired, Desired: json.RawMessage(`{"volume": 3, "screen": {"dim": null}}`), DryRun: true}
	dry := f.create(engineer, req)
	req.DryRun, req.Expect, req.IdempotencyKey = false, n(dry.Count+1), "key-desired-1"
	if _, err := f.e.Create(ctx, engineer, req); !errors.Is(err, bulk.ErrCountChanged) {
		t.Fatalf("a stale count: err = %v, want ErrCountChanged", err)
	}
	req.Expect = n(dry.Count)
	j := f.create(engineer, req)
	if j.ID == "" || j.Count != 3 || j.Counts.Queued != 3 || j.State != api.BulkRunning || j.CreatedBy != "eng1" || j.Replayed {
		t.Fatalf("job = %+v", j)
	}
	again := f.create(engineer, req) // a retry, e.g. after a lost answer
	if again.ID != j.ID || !again.Replayed {
		t.Fatalf("retry = %+v, want job %s replayed", again, j.ID)
	}
	other := req
	other.Desired = json.RawMessage(`{"volume":4}`)
	if _, err := f.e.Create(ctx, engineer, other); !errors.Is(err, bulk.ErrKeyReused) {
		t.Fatalf("the key with another request: err = %v", err)
	}

	want(t, "after the first step", f.step(j.ID), []string{"n1=delivered", "n2=delivered", "n3=queued"})
	for id, doc := range map[string]string{"n1": `{"bundles":{"tax":"1.0.0"},"screen":{},"volume":3}`, "n2": `{"screen":{},"volume":3}`, "n3": `{"screen":{},"volume":3}`} {
		d, err := f.st.GetDesired(ctx, id)
		if err != nil || string(d.Doc) != doc {
			t.Errorf("%s desired = %s, %v; want %s", id, d.Doc, err, doc)
		}
	}
	if d, err := f.st.GetDesired(ctx, futian); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the other county's kiosk got a desired state: %+v", d)
	}
	slices.Sort(f.hub.pushed)
	want(t, "pushed", f.hub.pushed, nanshan)
	audit, err := f.st.ListAudit(ctx, store.StaffActionFilter{Actor: "eng1"})
	if err != nil || len(audit) != 3 {
		t.Fatalf("audit = %+v, %v", audit, err)
	}
	var targets []string
	for _, a := range audit {
		if a.Action != "bulk desired "+j.ID || a.Roles != "fieldops" || a.Source != "192.0.2.7" || a.Status != 200 || a.Result != "ok" {
			t.Errorf("audit entry %+v", a)
		}
		targets = append(targets, a.Target)
	}
	slices.Sort(targets)
	want(t, "audited targets", targets, []string{"/api/v1/devices/n1/desired", "/api/v1/devices/n2/desired", "/api/v1/devices/n3/desired"})

	// Stepping again sends nothing twice.
	want(t, "second step", f.step(j.ID), []string{"n1=delivered", "n2=delivered", "n3=queued"})
	if d, _ := f.st.GetDesired(ctx, "n2"); d.Version != 1 || len(f.hub.pushed) != 3 {
		t.Fatalf("sent again: n2 at version %d, %d pushes", d.Version, len(f.hub.pushed))
	}
	// n1 applies it, n2 refuses it; n3 stays offline until the job expires.
	d1, _ := f.st.GetDesired(ctx, "n1")
	f.commit("n1", store.Effect{Reported: &wire.Reported{Version: d1.Version, Doc: d1.Doc}})
	f.commit("n2", store.Effect{Reported: &wire.Reported{Version: 1, Doc: json.RawMessage(`{}`), Error: "volume: out of range"}})
	want(t, "after the reports", f.step(j.ID), []string{"n1=acked", "n2=failed", "n3=queued"})
	if g, _ := f.e.Get(ctx, engineer.Scope, j.ID); g.Counts != (api.BulkCounts{Queued: 1, Acked: 1, Failed: 1}) || g.State != api.BulkRunning {
		t.Fatalf("job = %+v", g)
	}
	f.clock.add(time.Hour)
	want(t, "after the expiry", f.step(j.ID), []string{"n1=acked", "n2=failed", "n3=failed"})
	g, _ := f.e.Get(ctx, nil, j.ID)
	if g.State != api.BulkDone || g.DoneAt.IsZero() {
		t.Fatalf("job after expiry = %+v", g)
	}
	items, _ := f.e.Items(ctx, nil, j.ID)
	if items[1].Error != "the kiosk refused it: volume: out of range" || items[2].Error != "not confirmed before the job expired" {
		t.Fatalf("items = %+v", items)
	}
	if len(f.hub.notices) == 0 || f.hub.notices[0].Kind != api.NoticeBulk {
		t.Fatalf("no bulk notices: %+v", f.hub.notices)
	}

	// Another county's engineer does not see the job; an admin does.
	other2 := bulk.Actor{Name: "eng2", Scope: []string{"440304"}}
	if _, err := f.e.Get(ctx, other2.Scope, j.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another county's Get: %v", err)
	}
	if js, _ := f.e.List(ctx, other2.Scope); len(js) != 0 {
		t.Fatalf("another county's List: %+v", js)
	}
	if js, _ := f.e.List(ctx, []string{"44"}); len(js) != 1 {
		t.Fatalf("the province's List: %+v", js)
	}
}

// TestCommand: a command goes to each selected kiosk once under an ID of the job's; its state
// becomes the kiosk's progress.
func TestCommand(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	j := f.create(admin, api.BulkRequest{Filter: api.BulkFilter{Status: "online"}, Action: api.BulkCommand,
		Command: &api.CreateCommand{Name: "ping", Args: json.RawMessage(`{"n": 1}`)}, Expect: n(3), IdempotencyKey: "key-command-1"})
	want(t, "first step", f.step(j.ID), []string{"f1=queued", "n1=queued", "n2=queued"})
	want(t, "second step", f.step(j.ID), []string{"f1=queued", "n1=queued", "n2=queued"})
	var ids []string
	for _, d := range []string{"f1", "n1", "n2"} {
		cs, err := f.st.ListCommands(ctx, d, 0)
		if err != nil || len(cs) != 1 || cs[0].Name != "ping" || string(cs[0].Args) != `{"n":1}` || !cs[0].ExpiresAt.Equal(storetest.T0.Add(time.Hour)) {
			t.Fatalf("%s commands = %+v, %v", d, cs, err)
		}
		ids = append(ids, cs[0].ID)
	}
	if err := f.st.MarkDelivered(ctx, ids, storetest.T0); err != nil {
		t.Fatal(err)
	}
	f.commit("n1", store.Effect{Command: &wire.CommandResult{ID: ids[1], State: wire.CmdSucceeded}})
	f.commit("n2", store.Effect{Command: &wire.CommandResult{ID: ids[2], State: wire.CmdFailed, Error: "printer busy"}})
	want(t, "after the results", f.step(j.ID), []string{"f1=delivered", "n1=acked", "n2=failed"})
	items, _ := f.e.Items(ctx, nil, j.ID)
	if items[2].Error != "command failed: printer busy" || items[1].Ref != ids[1] {
		t.Fatalf("items = %+v", items)
	}
}

// TestRevoke: revoking by filter revokes and disconnects each kiosk at once (acked), and the job
// is done in one step.
func TestRevoke(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	j := f.create(engineer, api.BulkRequest{Filter: api.BulkFilter{Status: "offline"}, Action: api.BulkRevoke, Expect: n(1), IdempotencyKey: "key-revoke-1"})
	want(t, "step", f.step(j.ID), []string{"n3=acked"})
	if d, _ := f.st.GetDevice(ctx, "n3"); !d.Revoked {
		t.Fatal("n3 not revoked")
	}
	want(t, "cut", f.hub.cut, []string{"n3"})
	if g, _ := f.e.Get(ctx, nil, j.ID); g.State != api.BulkDone {
		t.Fatalf("job = %+v", g)
	}
	// Now that n3 is revoked a desired change selects two kiosks; one revoked meanwhile fails.
	j2 := f.create(engineer, api.BulkRequest{Action: api.BulkDesired, Desired: json.RawMessage(`{"a":1}`), Expect: n(2), IdempotencyKey: "key-desired-2"})
	if err := f.st.RevokeDevice(ctx, "n2", storetest.T0); err != nil {
		t.Fatal(err)
	}
	want(t, "desired after a revocation", f.step(j2.ID), []string{"n1=delivered", "n2=failed"})
}

// TestRun: Run steps a new job at once, until its kiosks are done.
func TestRun(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { f.e.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	j := f.create(engineer, api.BulkRequest{Filter: api.BulkFilter{Status: "offline"}, Action: api.BulkRevoke, Expect: n(1), IdempotencyKey: "key-run-0001"})
	var g api.BulkJob
	var err error
	if !polltest.Poll(10*time.Second, func() bool {
		g, err = f.e.Get(t.Context(), nil, j.ID)
		return err == nil && g.State == api.BulkDone && g.Counts.Acked == 1
	}) {
		t.Fatalf("job not done: %+v %v", g, err)
	}
}

// TestClaimEnds: kiosks another replica claimed are left to it until its claim ends (the
// replica died); then this one acts on them.
func TestClaimEnds(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	j := f.create(engineer, api.BulkRequest{Action: api.BulkDesired, Desired: json.RawMessage(`{"a":1}`), Expect: n(3), IdempotencyKey: "key-claims-1"})
	dead, err := f.st.ClaimBulkItems(ctx, j.ID, store.BulkClaim{Owner: "dead", State: api.BulkQueued, Now: storetest.T0,
		Until: storetest.T0.Add(time.Minute), N: 2})
	if err != nil || len(dead) != 2 {
		t.Fatalf("claim = %+v, %v", dead, err)
	}
	want(t, "while another replica holds n1, n2", f.step(j.ID), []string{"n1=queued", "n2=queued", "n3=queued"})
	want(t, "pushed", f.hub.pushed, []string{"n3"})
	if g, _ := f.e.Get(ctx, nil, j.ID); g.State != api.BulkRunning {
		t.Fatalf("job = %+v", g)
	}
	f.clock.add(time.Minute + time.Second)
	want(t, "after its claim ended", f.step(j.ID), []string{"n1=delivered", "n2=delivered", "n3=queued"})
	want(t, "pushed", f.hub.pushed, []string{"n3", "n1", "n2"})
}

// TestTwoReplicas: two engines (two hub replicas) on one PostgreSQL database step one job at
// the same moment, several times: each kiosk's desired document is set once (version 1), pushed
// once and audited once.
func TestTwoReplicas(t *testing.T) {
	st, err := postgres.Open(t.Context(), pgtest.DB(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixtureOn(t, st)
	ctx := t.Context()
	const kiosks = 250
	for i := range kiosks {
		storetest.Enroll(t, st, "ns", fmt.Sprintf("m%03d", i))
	}
	j := f.create(admin, api.BulkRequest{Filter: api.BulkFilter{Site: "ns"}, Action: api.BulkDesired, Desired: json.RawMessage(`{"volume":3}`),
		Expect: n(kiosks + len(nanshan)), IdempotencyKey: "key-replicas-1"})
	job, err := st.GetBulkJob(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	hubs := []*hub{{}, {}}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, h := range hubs {
		e := f.engine(h)
		wg.Go(func() {
			<-start
			for range 3 {
				if err := e.Step(ctx, job); err != nil {
					t.Error(err)
				}
			}
		})
	}
	close(start)
	wg.Wait()
	pushed := map[string]int{}
	for i, h := range hubs {
		t.Logf("replica %d pushed to %d kiosks", i, len(h.pushed))
		for _, id := range h.pushed {
			pushed[id]++
		}
	}
	items, err := st.BulkItems(ctx, j.ID)
	if err != nil || len(items) != j.Count {
		t.Fatalf("items = %d, %v", len(items), err)
	}
	for _, it := range items {
		d, err := st.GetDesired(ctx, it.DeviceID)
		if err != nil || d.Version != 1 || pushed[it.DeviceID] != 1 || it.Ref != "1" {
			t.Errorf("%s: desired version %d (%v), pushed %d times, item %+v; want set and pushed once", it.DeviceID, d.Version, err, pushed[it.DeviceID], it)
		}
	}
	audit, err := st.ListAudit(ctx, store.StaffActionFilter{Actor: "admin", Limit: 1000})
	if err != nil || len(audit) != j.Count {
		t.Fatalf("audit: %d entries, %v; want %d", len(audit), err, j.Count)
	}
}

func TestMergePatch(t *testing.T) {
	// RFC 7396 Appendix A, the cases on objects.
	for _, c := range [][3]string{
		{`{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
		{`{"a":"b"}`, `{"a":null}`, `{}`},
		{`{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
		{`{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"c"}`, `{"a":["b"]}`, `{"a":["b"]}`},
		{`{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`, `{"a":{"b":"d"}}`},
		{`{"a":[{"b":"c"}]}`, `{"a":[1]}`, `{"a":[1]}`},
		{`{"e":null}`, `{"a":1}`, `{"a":1,"e":null}`},
		{`[1,2]`, `{"a":"b","c":null}`, `{"a":"b"}`},
		{`{}`, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`},
		{``, `{"a":1}`, `{"a":1}`},
	} {
		got, err := bulk.MergePatch([]byte(c[0]), []byte(c[1]))
		if err != nil || string(got) != c[2] {
			t.Errorf("merge %s with %s = %s, %v; want %s", c[0], c[1], got, err, c[2])
		}
	}
}

// FuzzMergePatch: a merge patch of any JSON object to any document gives a JSON object, and
// applying it again changes nothing (RFC 7396 patches are idempotent).
func FuzzMergePatch(f *testing.F) {
	f.Add([]byte(`{"a":{"b":1}}`), []byte(`{"a":{"b":null,"c":[1]}}`))
	f.Add([]byte(`[1]`), []byte(`{"x":"y"}`))
	f.Add([]byte(``), []byte(`{}`))
	f.Fuzz(func(t *testing.T, target, patch []byte) {
		var p map[string]json.RawMessage
		if json.Unmarshal(patch, &p) != nil || p == nil {
			return // check refuses a patch that is not an object
		}
		once, err := bulk.MergePatch(target, patch)
		if err != nil {
			t.Fatalf("merge: %v", err)
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(once, &obj); err != nil || obj == nil {
			t.Fatalf("result %s is not an object: %v", once, err)
		}
		twice, err := bulk.MergePatch(once, patch)
		if err != nil || !bulk.SameJSON(once, twice) {
			t.Fatalf("not idempotent: %s then %s (%v)", once, twice, err)
		}
	})
}
