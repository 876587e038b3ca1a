package rollout_test

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
	"syscall"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/rollout"
	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/postgres"
	"github.com/kioskfleet/kioskfleet/hub/store/sqlite"
	"github.com/kioskfleet/kioskfleet/hub/store/storetest"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/pgtest"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// TestMain runs the package on a PostgreSQL server of its own (pgtest) for BenchmarkCreate.
func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

type pushes struct {
	mu  sync.Mutex
	ids []string
}

func (p *pushes) PushDesired(_ context.Context, id string) {
	p.mu.Lock()
	p.ids = append(p.ids, id)
	p.mu.Unlock()
}

type clock struct{ t time.Time }

func (c *clock) Now() time.Time { return c.t }

// fleet is a store with n kiosks (k00..) online and app tax-print 1.0.0 and 1.1.0 published on the
// kiosk channel; each kiosk runs 1.0.0.
type fleet struct {
	t     testing.TB
	st    store.Store
	e     *rollout.Engine
	push  *pushes
	clock *clock
	seq   map[string]uint64
}

func newFleet(t testing.TB, n int) *fleet {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "hub.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return newFleetOn(t, st, n)
}

// newFleetOn is newFleet on a store of the caller's.
func newFleetOn(t testing.TB, st store.Store, n int) *fleet {
	f := &fleet{t: t, st: st, push: &pushes{}, clock: &clock{t: storetest.T0}, seq: map[string]uint64{}}
	var err error
	f.e, err = rollout.New(rollout.Config{Store: st, Dispatch: f.push, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	var ups []store.PresenceUpdate
	var reports []store.Batch
	for i := range n {
		id := fmt.Sprintf("k%02d", i)
		storetest.Enroll(t, st, "sz", id)
		ups = append(ups, store.PresenceUpdate{DeviceID: id, Online: true, At: storetest.T0})
		reports = append(reports, f.reported(id, "1.0.0", "", ""))
	}
	if err := st.SetPresences(ctx, ups); err != nil {
		t.Fatal(err)
	}
	for b := range slices.Chunk(reports, 1000) {
		if _, err := st.CommitBatches(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range []string{"1.0.0", "1.1.0"} {
		storetest.CatalogFixture(t, st, "tax", "tax-print", api.KindKioskBundle, v)
		_, err := st.ApplyChanges(ctx, []store.AppChange{
			{AppID: "tax-print", Version: v, From: "draft", To: "submitted", Actor: "u", At: storetest.T0},
			{AppID: "tax-print", Version: v, From: "submitted", To: "approved", Actor: "u", At: storetest.T0},
			{AppID: "tax-print", Version: v, Channel: api.ChannelKiosk, From: "approved", To: "published", Actor: "u", At: storetest.T0}})
		if err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// report commits a reported state of kiosk id: tax-print active, and failed (with why) if set.
func (f *fleet) report(id, active, failed, why string) {
	f.t.Helper()
	if _, err := f.st.CommitBatches(f.t.Context(), []store.Batch{f.reported(id, active, failed, why)}); err != nil {
		f.t.Fatal(err)
	}
}

// reported is the batch of report.
func (f *fleet) reported(id, active, failed, why string) store.Batch {
	f.seq[id]++
	st := wire.UpdateStatus{Bundles: map[string]wire.BundleStatus{"tax-print": {Active: active, State: wire.BundleActive}}}
	if failed != "" {
		st.Bundles["tax-print"] = wire.BundleStatus{Active: active, State: wire.BundleFailed, Failed: failed, Error: why}
	}
	doc := wire.Encode(map[string]any{"updates": st})
	b := storetest.NewBatch(id, "e1", f.seq[id], 1, 10)
	r := wire.Reported{Version: int64(f.seq[id]), Doc: doc}
	b.Records[0].Kind, b.Records[0].Body, b.Records[0].Effect.Reported = wire.KindReported, wire.Encode(r), &r
	return b
}

func (f *fleet) step(id string) api.Rollout {
	f.t.Helper()
	if err := f.e.Step(f.t.Context(), id); err != nil {
		f.t.Fatal(err)
	}
	r, err := f.e.Get(f.t.Context(), id)
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

// wants returns the tax-print version kiosk id's desired state names.
func (f *fleet) wants(id string) string {
	d, err := f.st.GetDesired(f.t.Context(), id)
	if err != nil {
		return ""
	}
	var doc struct {
		Bundles map[string]string `json:"bundles"`
	}
	json.Unmarshal(d.Doc, &doc)
	return doc.Bundles["tax-print"]
}

// byState lists a rollout's kiosks in state.
func (f *fleet) byState(id, state string) []string {
	ds, err := f.e.Devices(f.t.Context(), id)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []string
	for _, d := range ds {
		if d.State == state {
			out = append(out, d.DeviceID)
		}
	}
	return out
}

func spec(waves ...int) api.RolloutSpec {
	return api.RolloutSpec{Kind: api.RolloutBundle, App: "tax-print", Version: "1.1.0", Waves: waves, Soak: "10m"}
}

// TestWaves: each wave is given the version through the kiosks' desired state (other settings
// kept), goes on once its online kiosks are done and it soaked, leaves an offline kiosk assigned
// (it gets the version when it returns); the rollout completes and keeps following the kiosk.
func TestWaves(t *testing.T) {
	f := newFleet(t, 20)
	ctx := t.Context()
	if _, err := f.st.SetDesired(ctx, "k00", json.RawMessage(`{"heartbeatInterval":"20s"}`), storetest.T0); err != nil {
		t.Fatal(err)
	}
	r, err := f.e.Create(ctx, "u-op", spec(10, 50, 100))
	if err != nil {
		t.Fatal(err)
	}
	if r.State != api.RolloutRunning || r.Wave != 1 || len(r.Waves) != 3 || r.Waves[0].Counts.Devices != 2 || r.Waves[1].Counts.Devices != 8 ||
		r.Waves[2].Counts.Devices != 10 || r.Waves[0].Counts.Assigned != 2 || r.Totals.Waiting != 18 {
		t.Fatalf("created: %+v", r)
	}
	wave1 := f.byState(r.ID, api.DeviceAssigned)
	for _, id := range wave1 {
		if f.wants(id) != "1.1.0" {
			t.Fatalf("%s not given 1.1.0", id)
		}
	}
	if d, _ := f.st.GetDesired(ctx, "k00"); !strings.Contains(string(d.Doc), `"heartbeatInterval":"20s"`) {
		t.Fatalf("other settings lost: %s", d.Doc)
	}
	// Wave 1 done; it soaks 10 minutes before wave 2.
	for _, id := range wave1 {
		f.report(id, "1.1.0", "", "")
	}
	r = f.step(r.ID)
	if r.Waves[0].Counts.Updated != 2 || r.Waves[0].DoneAt.IsZero() || r.Wave != 1 {
		t.Fatalf("wave 1 done: %+v", r.Waves[0])
	}
	f.clock.t = f.clock.t.Add(11 * time.Minute)
	r = f.step(r.ID)
	if r.Wave != 2 || r.Waves[1].Counts.Assigned != 8 {
		t.Fatalf("wave 2: %+v", r)
	}
	// Wave 2: one kiosk goes offline; the others are done: the wave is done without it.
	wave2 := f.byState(r.ID, api.DeviceAssigned)
	offline := wave2[0]
	if err := f.st.SetPresences(ctx, []store.PresenceUpdate{{DeviceID: offline, Online: false, At: f.clock.t}}); err != nil {
		t.Fatal(err)
	}
	for _, id := range wave2[1:] {
		f.report(id, "1.1.0", "", "")
	}
	r = f.step(r.ID)
	if !r.Waves[1].DoneAt.IsZero() {
		t.Fatalf("wave 2 done at once although a kiosk went offline during it (restarting into the version, maybe): %+v", r.Waves[1])
	}
	f.clock.t = f.clock.t.Add(2*time.Minute + time.Second) // the restart grace
	r = f.step(r.ID)
	if r.Waves[1].DoneAt.IsZero() || r.Waves[1].Counts.Offline != 1 {
		t.Fatalf("wave 2 with one kiosk offline: %+v", r.Waves[1])
	}
	f.clock.t = f.clock.t.Add(11 * time.Minute)
	r = f.step(r.ID) // wave 3
	for _, id := range f.byState(r.ID, api.DeviceAssigned) {
		if id != offline {
			f.report(id, "1.1.0", "", "")
		}
	}
	f.step(r.ID)
	f.clock.t = f.clock.t.Add(11 * time.Minute)
	r = f.step(r.ID)
	if r.State != api.RolloutCompleted || r.Totals.Updated != 19 || r.Totals.Assigned != 1 {
		t.Fatalf("completed: %+v", r)
	}
	// The offline kiosk returns and installs it: the rollout follows it still.
	if f.wants(offline) != "1.1.0" {
		t.Fatal("the offline kiosk lost its assignment")
	}
	f.report(offline, "1.1.0", "", "")
	r = f.step(r.ID)
	if r.Totals.Updated != 20 {
		t.Fatalf("after the offline kiosk caught up: %+v", r.Totals)
	}
}

// TestAbortAtThreshold: the rollout stops by itself once at least 5% of at least 20 kiosks done
// failed; the next wave never gets the version, and kiosks given it but not yet done are given
// their previous version back.
func TestAbortAtThreshold(t *testing.T) {
	f := newFleet(t, 60)
	ctx := t.Context()
	r, err := f.e.Create(ctx, "u-op", spec(40, 100)) // 24, then 36
	if err != nil {
		t.Fatal(err)
	}
	wave1 := f.byState(r.ID, api.DeviceAssigned)
	// 18 updated and 1 failed: 19 done, under the 20 needed to judge.
	for i, id := range wave1[:19] {
		if i == 0 {
			f.report(id, "1.0.0", "1.1.0", "health check: the shell did not load it")
		} else {
			f.report(id, "1.1.0", "", "")
		}
	}
	r = f.step(r.ID)
	if r.State != api.RolloutRunning || r.Totals.Failed != 1 {
		t.Fatalf("19 done: %+v", r)
	}
	f.report(wave1[19], "1.1.0", "", "") // 20 done, 1 failed: 5%
	r = f.step(r.ID)
	if r.State != api.RolloutAborted || !strings.Contains(r.Reason, "automatic: 1 of 20") {
		t.Fatalf("at the threshold: %+v", r)
	}
	for _, id := range wave1[20:] { // given 1.1.0, not done: back to 1.0.0
		if f.wants(id) != "1.0.0" {
			t.Errorf("%s still wants %s", id, f.wants(id))
		}
	}
	if n := len(f.byState(r.ID, api.DeviceWithdrawn)); n != 4+36 {
		t.Fatalf("%d withdrawn, want 40", n)
	}
	f.clock.t = f.clock.t.Add(time.Hour)
	if r = f.step(r.ID); r.Waves[1].StartedAt.IsZero() == false {
		t.Fatal("wave 2 started after the abort")
	}
	if _, err := f.e.Act(ctx, "u", r.ID, api.RolloutAction{Action: "resume"}); !errors.Is(err, rollout.ErrConflict) {
		t.Fatalf("resume an aborted rollout: %v", err)
	}
}

// TestPauseResumeRollback: a paused rollout starts no wave; a rollback gives the kiosks it reached
// their previous version and follows them until they run it.
func TestPauseResumeRollback(t *testing.T) {
	f := newFleet(t, 10)
	ctx := t.Context()
	s := spec(50, 100)
	s.Soak = "0s"
	r, err := f.e.Create(ctx, "u-op", s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.e.Act(ctx, "u-op", r.ID, api.RolloutAction{Action: "abort"}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("abort without a reason: %v", err)
	}
	wave1 := f.byState(r.ID, api.DeviceAssigned)
	for _, id := range wave1 {
		f.report(id, "1.1.0", "", "")
	}
	if r, err = f.e.Act(ctx, "u-op", r.ID, api.RolloutAction{Action: "pause", Reason: "holiday"}); err != nil || r.State != api.RolloutPaused {
		t.Fatalf("pause: %+v %v", r, err)
	}
	f.clock.t = f.clock.t.Add(time.Hour)
	if r = f.step(r.ID); r.Wave != 1 || r.Totals.Updated != 5 {
		t.Fatalf("paused rollout moved: %+v", r)
	}
	if r, err = f.e.Act(ctx, "u-op", r.ID, api.RolloutAction{Action: "resume"}); err != nil || r.Wave != 2 {
		t.Fatalf("resume: %+v %v", r, err)
	}
	r, err = f.e.Act(ctx, "u-op", r.ID, api.RolloutAction{Action: "rollback", Reason: "citizens complain"})
	if err != nil || r.State != api.RolloutRolledBack || r.Totals.Reverted != 5 || r.Totals.Waiting != 5 {
		t.Fatalf("rollback: %+v %v", r, err)
	}
	for _, id := range wave1 {
		if f.wants(id) != "1.0.0" {
			t.Fatalf("%s wants %s after the rollback", id, f.wants(id))
		}
		f.report(id, "1.0.0", "", "")
	}
	f.step(r.ID)
	if n := len(f.byState(r.ID, api.DeviceReverted)); n != 5 {
		t.Fatalf("%d reverted", n)
	}
}

func TestCreateRefusals(t *testing.T) {
	f := newFleet(t, 3)
	ctx := t.Context()
	if err := f.st.SetTags(ctx, "k01", []string{"pilot"}); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		s    api.RolloutSpec
		want error
	}{
		"unpublished version": {api.RolloutSpec{Kind: "bundle", App: "tax-print", Version: "9.0.0"}, store.ErrNotFound},
		"bad waves":           {api.RolloutSpec{Kind: "bundle", App: "tax-print", Version: "1.1.0", Waves: []int{50, 20}}, store.ErrInvalid},
		"no kiosk selected":   {api.RolloutSpec{Kind: "bundle", App: "tax-print", Version: "1.1.0", Selector: api.Selector{Region: "11"}}, store.ErrInvalid},
		"agent not signed":    {api.RolloutSpec{Kind: "agent", Version: "0.9.0"}, store.ErrInvalid},
	} {
		if _, err := f.e.Create(ctx, "u", tc.s); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	s := spec(100)
	s.Selector.Tag = "pilot"
	r, err := f.e.Create(ctx, "u", s)
	if err != nil || r.Totals.Devices != 1 {
		t.Fatalf("by tag: %+v %v", r, err)
	}
	if _, err := f.e.Create(ctx, "u", spec(100)); !errors.Is(err, rollout.ErrConflict) {
		t.Fatalf("a second rollout of the app: %v", err)
	}
}

// BenchmarkCreate measures creating a rollout over 19,000 kiosks (the largest fleet of one hub,
// docs/benchmarks.md) in one wave of 100%, on SQLite and on PostgreSQL: selecting the kiosks,
// reading what each runs, shuffling them into the rollout, and writing every kiosk's desired
// state. Each rollout is aborted, untimed, before the next.
func BenchmarkCreate(b *testing.B) {
	const kiosks = 19000
	b.Run("SQLite", func(b *testing.B) { benchCreate(b, newFleet(b, kiosks), kiosks) })
	b.Run("PostgreSQL", func(b *testing.B) {
		st, err := postgres.Open(context.Background(), pgtest.DB(b), nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		benchCreate(b, newFleetOn(b, st, kiosks), kiosks)
	})
}

func benchCreate(b *testing.B, f *fleet, kiosks int) {
	ctx := b.Context()
	spec := api.RolloutSpec{Kind: api.RolloutBundle, App: "tax-print", Version: "1.1.0", Waves: []int{100}, Soak: "0s"}
	b.ResetTimer()
	var cpu time.Duration
	for range b.N {
		f.clock.t = f.clock.t.Add(time.Minute) // a new rollout ID
		cpu0 := processCPU()
		r, err := f.e.Create(ctx, "op", spec)
		cpu += processCPU() - cpu0
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if r.Totals.Assigned != kiosks {
			b.Fatalf("%d kiosks assigned, want %d", r.Totals.Assigned, kiosks)
		}
		if _, err := f.e.Act(ctx, "op", r.ID, api.RolloutAction{Action: "abort", Reason: "next"}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/rollout")
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/rollout")
}

// processCPU is the CPU time this process used so far (user and system).
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
