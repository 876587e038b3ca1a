package alerts_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskfleet/kioskfleet/hub/alerts"
	"github.com/kioskfleet/kioskfleet/hub/feed"
	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/sqlite"
	"github.com/kioskfleet/kioskfleet/hub/store/storetest"
	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// receiver is a webhook receiver that fails the first attempts of each notification and
// counts the ones it accepts by their idempotency key.
type receiver struct {
	mu       sync.Mutex
	failures map[string]int // attempts still to fail, by key
	failN    int
	attempts atomic.Int64
	got      map[string]api.Alert
	order    []string
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.attempts.Add(1)
	key := r.Header.Get("Idempotency-Key")
	b, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if _, seen := rc.failures[key]; !seen {
		rc.failures[key] = rc.failN
	}
	if rc.failures[key] > 0 {
		rc.failures[key]--
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	var a api.Alert
	if err := json.Unmarshal(b, &a); err != nil || key == "" {
		http.Error(w, "bad", http.StatusBadRequest)
		return
	}
	if _, dup := rc.got[key]; !dup {
		rc.order = append(rc.order, key)
	}
	rc.got[key] = a
}

func (rc *receiver) keys() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.order...)
}

type clock struct{ ns atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Set(t time.Time)         { c.ns.Store(t.UnixNano()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func commitPeripherals(t *testing.T, st *sqlite.Store, id string, seq uint64, body string, at time.Time) {
	t.Helper()
	b := storetest.NewBatch(id, "e1", seq, 1, 10)
	b.RecvTS = at
	b.Records[0].Effect.Peripherals = json.RawMessage(body)
	if _, err := st.CommitBatches(t.Context(), []store.Batch{b}); err != nil {
		t.Fatal(err)
	}
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
	}
}

// TestRules: a paper-out opens a peripheral alert at once (from the notice of the committed
// record), paper back resolves it; a kiosk offline for less than OfflineAfter is no alert, longer
// is one (the sweep), back online resolves it; a person's acknowledgment is kept (and notified);
// the webhook gets each notification once although its first two attempts fail.
func TestRules(t *testing.T) {
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "hub.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clk := &clock{}
	clk.Set(storetest.T0)
	rc := &receiver{failures: map[string]int{}, failN: 2, got: map[string]api.Alert{}}
	hook := httptest.NewServer(rc)
	t.Cleanup(hook.Close)
	feed := feed.New(64, clk.Now)
	viewer, _ := feed.Subscribe()
	eng := alerts.New(alerts.Config{Store: st, Feed: feed, OfflineAfter: 5 * time.Minute, SweepEvery: time.Hour, Now: clk.Now,
		Notify: &alerts.Webhook{URL: hook.URL, Backoff: 10 * time.Millisecond}})
	storetest.Enroll(t, st, "sz", "k1")
	storetest.Enroll(t, st, "sz", "k2")
	online := []store.PresenceUpdate{{DeviceID: "k1", Online: true, At: storetest.T0}, {DeviceID: "k2", Online: true, At: storetest.T0}}
	if err := st.SetPresences(t.Context(), online); err != nil {
		t.Fatal(err)
	}
	runUntilEnd(t, eng)
	unresolved := func() []store.Alert {
		as, err := st.ListAlerts(t.Context(), store.AlertFilter{Unresolved: true})
		if err != nil {
			t.Fatal(err)
		}
		return as
	}

	// Paper out: the committed record's notice opens the alert.
	commitPeripherals(t, st, "k1", 1, `{"devices":[{"id":"receipt0","class":"receipt-printer","connected":true,"status":"fault","reasons":["paper-out"]},
		{"id":"idreader0","class":"id-reader","connected":true,"status":"ok"}]}`, clk.Now())
	feed.Committed([]store.Batch{{DeviceID: "k1"}})
	eventually(t, "paper-out alert", func() bool { return len(unresolved()) == 1 })
	paper := unresolved()[0]
	if paper.Rule != alerts.RulePeripheralFault || paper.Subject != "receipt0" || paper.Detail != "paper-out" || paper.DeviceID != "k1" {
		t.Fatalf("alert %+v", paper)
	}
	eventually(t, "alert notice for live viewers", func() bool {
		for len(viewer.C) > 0 {
			if ev := <-viewer.C; ev.Kind == api.NoticeAlert && ev.DeviceID == "k1" {
				return true
			}
		}
		return false
	})
	// The same condition again: no second alert.
	feed.Committed([]store.Batch{{DeviceID: "k1"}})
	// A technician acknowledges it; paper back resolves it (by the hub).
	if _, err := st.AckAlert(t.Context(), paper.ID, "nanshan1", clk.Now()); err != nil {
		t.Fatal(err)
	}
	commitPeripherals(t, st, "k1", 2, `{"devices":[{"id":"receipt0","class":"receipt-printer","connected":true,"status":"ok"}]}`, clk.Now())
	feed.Committed([]store.Batch{{DeviceID: "k1"}})
	eventually(t, "paper-out resolved", func() bool { return len(unresolved()) == 0 })
	if a, _ := st.GetAlert(t.Context(), paper.ID); a.AckBy != "nanshan1" || a.ResolvedBy != "" || a.State != store.AlertResolved {
		t.Fatalf("resolved alert %+v", a)
	}

	// k2 goes offline: not an alert for 5 minutes, then one; back online resolves it.
	if err := st.SetPresences(t.Context(), []store.PresenceUpdate{{DeviceID: "k2", Online: false, At: clk.Now()}}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(4 * time.Minute)
	eng.Sweep(t.Context())
	if n := len(unresolved()); n != 0 {
		t.Fatalf("%d alerts 4 minutes offline", n)
	}
	clk.Advance(2 * time.Minute)
	eng.Sweep(t.Context())
	off := unresolved()
	if len(off) != 1 || off[0].Rule != alerts.RuleOffline || off[0].DeviceID != "k2" {
		t.Fatalf("6 minutes offline: %+v", off)
	}
	// Online again, the offline alert is resolved.
	if err := st.SetPresences(t.Context(), []store.PresenceUpdate{{DeviceID: "k2", Online: true, At: clk.Now()}}); err != nil {
		t.Fatal(err)
	}
	feed.PresenceWritten([]store.PresenceUpdate{{DeviceID: "k2", Online: true, At: clk.Now()}})
	eventually(t, "offline resolved", func() bool { return len(unresolved()) == 0 })

	// Five notifications (the technician's acknowledgment too), each accepted once, after two
	// failed attempts each, in order.
	eventually(t, "notifications delivered", func() bool { return len(rc.keys()) == 5 })
	want := []string{fmt.Sprintf("alert-%d-open", paper.ID), fmt.Sprintf("alert-%d-acknowledged", paper.ID),
		fmt.Sprintf("alert-%d-resolved", paper.ID), fmt.Sprintf("alert-%d-open", off[0].ID), fmt.Sprintf("alert-%d-resolved", off[0].ID)}
	for i, k := range rc.keys() {
		if k != want[i] {
			t.Fatalf("notifications %v, want %v", rc.keys(), want)
		}
	}
	if n := rc.attempts.Load(); n != 15 {
		t.Errorf("%d attempts, want 15 (3 per notification)", n)
	}
}

// notifying runs an engine on a new store, notifying a webhook receiver, with the kiosks given
// enrolled and online: "id" at a site of 440305, "id@region" at a site of that region.
func notifying(t *testing.T, kiosks ...string) (*sqlite.Store, *clock, *receiver, *alerts.Engine) {
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "hub.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clk := &clock{}
	clk.Set(storetest.T0)
	rc := &receiver{failures: map[string]int{}, got: map[string]api.Alert{}}
	hook := httptest.NewServer(rc)
	t.Cleanup(hook.Close)
	eng := alerts.New(alerts.Config{Store: st, Feed: feed.New(64, clk.Now), OfflineAfter: 5 * time.Minute, SweepEvery: time.Hour, Now: clk.Now,
		Notify: &alerts.Webhook{URL: hook.URL, Backoff: 10 * time.Millisecond}})
	for _, k := range kiosks {
		id, region, ok := strings.Cut(k, "@")
		site := "sz"
		if ok {
			site = "site-" + region
			if err := st.CreateSite(t.Context(), store.Site{ID: site, Name: "Hall " + region, Region: region}); err != nil {
				t.Fatal(err)
			}
		}
		storetest.Enroll(t, st, site, id)
		if err := st.SetPresences(t.Context(), []store.PresenceUpdate{{DeviceID: id, Online: true, At: storetest.T0}}); err != nil {
			t.Fatal(err)
		}
	}
	runUntilEnd(t, eng)
	return st, clk, rc, eng
}

// TestSilence: an alert of a kiosk under a silence (its rule, while it lasts) is raised and shown
// but not notified; the same kiosk's other rules, and the alerts after the silence ends, are.
func TestSilence(t *testing.T) {
	st, clk, rc, eng := notifying(t, "k1")
	if _, err := st.CreateSilence(t.Context(), store.Silence{DeviceID: "k1", Rule: alerts.RulePeripheralFault, CreatedBy: "eng1",
		StartsAt: storetest.T0, EndsAt: storetest.T0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	commitPeripherals(t, st, "k1", 1, `{"devices":[{"id":"receipt0","class":"receipt-printer","connected":true,"status":"fault","reasons":["paper-out"]},
		{"id":"idreader0","class":"id-reader","connected":true,"status":"degraded","reasons":["sam-warm"]}]}`, clk.Now())
	eng.Check(t.Context(), "k1")
	as, err := st.ListAlerts(t.Context(), store.AlertFilter{Unresolved: true})
	if err != nil || len(as) != 2 {
		t.Fatalf("alerts: %+v %v", as, err)
	}
	// The degraded reader is notified (another rule); the paper-out is not. After the silence,
	// the paper-out's resolution is notified (in order: a wrongly sent opening would come first).
	clk.Advance(2 * time.Hour)
	commitPeripherals(t, st, "k1", 2, `{"devices":[{"id":"receipt0","class":"receipt-printer","connected":true,"status":"ok"},
		{"id":"idreader0","class":"id-reader","connected":true,"status":"degraded","reasons":["sam-warm"]}]}`, clk.Now())
	eng.Check(t.Context(), "k1")
	eventually(t, "the paper's resolution notified", func() bool { return len(rc.keys()) >= 2 })
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.order) != 2 || rc.got[rc.order[0]].Rule != alerts.RulePeripheralDegraded ||
		rc.got[rc.order[1]].Rule != alerts.RulePeripheralFault || rc.got[rc.order[1]].State != "resolved" {
		t.Fatalf("notified: %v", rc.got)
	}
}

// TestRegionSilence: a silence of a region (a city's maintenance window) quiets the alerts of
// every kiosk under it, and of no other.
func TestRegionSilence(t *testing.T) {
	st, clk, rc, eng := notifying(t, "k-shenzhen", "k-guangzhou@440106")
	if _, err := st.CreateSilence(t.Context(), store.Silence{Region: "4403", CreatedBy: "admin", Reason: "Shenzhen network works",
		StartsAt: storetest.T0, EndsAt: storetest.T0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	paperOut := `{"devices":[{"id":"receipt0","class":"receipt-printer","connected":true,"status":"fault","reasons":["paper-out"]}]}`
	for _, id := range []string{"k-shenzhen", "k-guangzhou"} { // in this order: a wrongly sent Shenzhen alert comes first
		commitPeripherals(t, st, id, 1, paperOut, clk.Now())
		eng.Check(t.Context(), id)
	}
	if as, err := st.ListAlerts(t.Context(), store.AlertFilter{Unresolved: true}); err != nil || len(as) != 2 {
		t.Fatalf("alerts: %+v %v (a silenced alert is still raised)", as, err)
	}
	eventually(t, "Guangzhou's alert notified", func() bool { return len(rc.keys()) >= 1 })
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.order) != 1 || rc.got[rc.order[0]].DeviceID != "k-guangzhou" {
		t.Fatalf("notified: %v", rc.got)
	}
}

// countingStore counts the engine's reads of one kiosk, of several (lists: sweeps and gathered
// checks) and the kiosks those listed.
type countingStore struct {
	*sqlite.Store
	gets, lists, listed atomic.Int32
}

func (s *countingStore) GetDevice(ctx context.Context, id string) (store.Device, error) {
	s.gets.Add(1)
	return s.Store.GetDevice(ctx, id)
}

func (s *countingStore) ListDevices(ctx context.Context, f store.DeviceFilter) ([]store.Device, error) {
	s.lists.Add(1)
	ds, err := s.Store.ListDevices(ctx, f)
	s.listed.Add(int32(len(ds)))
	return ds, err
}

// runCounted runs an engine (swept at start, then hourly) over a store of the kiosks ids that
// counts its reads, following a new feed, until t ends.
func runCounted(t *testing.T, ids ...string) (*countingStore, *feed.Feed) {
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "hub.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, id := range ids {
		storetest.Enroll(t, st, "sz", id)
	}
	cs := &countingStore{Store: st}
	fd := feed.New(16, time.Now)
	eng := alerts.New(alerts.Config{Store: cs, Feed: fd, SweepEvery: time.Hour})
	runUntilEnd(t, eng)
	return cs, fd
}

// TestLostNoticesSweepGathered: a hub whose commits overflow the engine's subscription again and
// again (more notices at once than it holds) costs a sweep at once and then at most one per
// CheckDelay, not one per loss (the sweeps then ran back to back, issue 18).
func TestLostNoticesSweepGathered(t *testing.T) {
	cs, fd := runCounted(t, "k1")
	eventually(t, "the engine following the feed", func() bool { return fd.Subscribers() == 1 && cs.lists.Load() == 1 })
	burst := make([]api.Notice, alerts.NoticeBuffer+100)
	for i := range burst {
		burst[i] = api.Notice{Kind: api.NoticeRecords, DeviceID: "k1", At: time.Now()}
	}
	// Overflow it for 1.5 CheckDelays: the sweep at start, one at the first loss, one at the
	// end of the first CheckDelay; a fourth at most if the second CheckDelay ends meanwhile.
	start, lost := time.Now(), fd.Lost()
	for time.Since(start) < alerts.CheckDelay*3/2 {
		fd.Publish(burst...)
		runtime.Gosched()
	}
	if fd.Lost() == lost {
		t.Fatal("no notice lost: the test proves nothing")
	}
	eventually(t, "the gathered sweep", func() bool { return cs.lists.Load() >= 3 })
	if n := cs.lists.Load(); n > 4 {
		t.Fatalf("%d sweeps in 1.5 CheckDelays of lost notices, want at most 4", n)
	}
}

// TestChecksGathered: a burst of notices (a kiosk's records in every group commit of a busy hub)
// costs a check at once and then one per kiosk at the end of CheckDelay, not one per notice. The
// engine runs on synctest's clock: "nothing more in the next CheckDelays" is checked exactly.
func TestChecksGathered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs, fd := runCounted(t, "k1", "k2")
		synctest.Wait() // the engine subscribed, swept and waits
		if fd.Subscribers() != 1 {
			t.Fatal("the engine does not follow the feed")
		}
		for i := range 200 {
			fd.Publish(api.Notice{Kind: api.NoticeRecords, DeviceID: fmt.Sprintf("k%d", 1+i%2), At: time.Now()})
		}
		<-time.After(alerts.CheckDelay) // the bubble's clock: no real time passes
		synctest.Wait()
		// The sweep at start listed both; k1 is read at once, then k1 and k2 in one list.
		check := func(when string) {
			if g, l, n := cs.gets.Load(), cs.lists.Load(), cs.listed.Load(); g != 1 || l != 2 || n != 4 {
				t.Fatalf("%s: %d device reads and %d lists of %d kiosks (the first at start, of 2) for 200 notices of 2 kiosks, "+
					"want k1 read at once, then k1 and k2 in one list", when, g, l, n)
			}
		}
		check("at the end of CheckDelay")
		<-time.After(5 * alerts.CheckDelay)
		synctest.Wait()
		check("5 CheckDelays later")
	})
}

// runUntilEnd runs eng until t ends.
func runUntilEnd(t *testing.T, eng *alerts.Engine) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// writeCounter counts the engine's alert writes (each a transaction) and silence reads.
type writeCounter struct {
	*sqlite.Store
	raiseOne, resolveOne, raiseMany, resolveMany, silences atomic.Int32
}

func (s *writeCounter) RaiseAlert(ctx context.Context, a store.Alert) (store.Alert, bool, error) {
	s.raiseOne.Add(1)
	return s.Store.RaiseAlert(ctx, a)
}

func (s *writeCounter) ResolveAlert(ctx context.Context, id int64, by string, at time.Time) (store.Alert, error) {
	s.resolveOne.Add(1)
	return s.Store.ResolveAlert(ctx, id, by, at)
}

func (s *writeCounter) RaiseAlerts(ctx context.Context, as []store.Alert) ([]store.Alert, error) {
	s.raiseMany.Add(1)
	return s.Store.RaiseAlerts(ctx, as)
}

func (s *writeCounter) ResolveAlerts(ctx context.Context, ids []int64, by string, at time.Time) ([]store.Alert, error) {
	s.resolveMany.Add(1)
	return s.Store.ResolveAlerts(ctx, ids, by, at)
}

func (s *writeCounter) ListSilences(ctx context.Context, at time.Time) ([]store.Silence, error) {
	s.silences.Add(1)
	return s.Store.ListSilences(ctx, at)
}

// lineCounter is a slog handler counting records by message.
type lineCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (l *lineCounter) Enabled(context.Context, slog.Level) bool { return true }
func (l *lineCounter) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *lineCounter) WithGroup(string) slog.Handler            { return l }
func (l *lineCounter) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n[r.Message]++
	return nil
}

func (l *lineCounter) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n[msg]
}

// recorder is a notifier that counts what it is told, by webhook idempotency key.
type recorder struct {
	mu    sync.Mutex
	got   map[string]int
	order []string // keys, in the order told
}

func (r *recorder) Notify(_ context.Context, a api.Alert) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := fmt.Sprintf("alert-%d-%s", a.ID, a.State)
	r.got[k]++
	r.order = append(r.order, k)
	return nil
}

func (r *recorder) told() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.order)
}

func (r *recorder) counts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.got)
}

// TestSweepWritesInBulk: a region back after an outage. 500 kiosks offline long enough are
// raised an alert each by one sweep, and resolved by the next once they are online again; each
// alert is told to live viewers once and notified once as opened and once as resolved, and
// each sweep writes its alerts in one call of the store (a transaction each was 39% of the hub's
// CPU while 19,000 kiosks reconnected); the silences are listed once per batch of notices
// delivered.
func TestSweepWritesInBulk(t *testing.T) {
	const n = 500
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "hub.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ids := make([]string, n)
	down := make([]store.PresenceUpdate, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("k%03d", i)
		storetest.Enroll(t, st, "sz", ids[i])
		down[i] = store.PresenceUpdate{DeviceID: ids[i], Online: false, At: storetest.T0}
	}
	if err := st.SetPresences(t.Context(), down); err != nil {
		t.Fatal(err)
	}
	clk := &clock{}
	clk.Set(storetest.T0.Add(time.Minute)) // not yet an alert: the sweep at start raises none
	ws := &writeCounter{Store: st}
	rec := &recorder{got: map[string]int{}}
	fd := feed.New(0, clk.Now)
	viewer, err := fd.SubscribeBuffer(4 * n)
	if err != nil {
		t.Fatal(err)
	}
	logs := &lineCounter{n: map[string]int{}}
	eng := alerts.New(alerts.Config{Store: ws, Feed: fd, Notify: rec, OfflineAfter: 5 * time.Minute, SweepEvery: time.Hour, Now: clk.Now,
		Log: slog.New(logs)})
	runUntilEnd(t, eng)
	// The sweep at start raises nothing and resolves nothing; resolving is its last call.
	eventually(t, "the sweep at start", func() bool { return fd.Subscribers() == 2 && ws.resolveMany.Load() == 1 })

	// told checks that the last sweep told viewers of one alert of each kiosk (tell publishes
	// before Sweep returns) and that it took one write of each kind.
	told := func(when string) {
		t.Helper()
		per := map[string]int{}
		for len(viewer.C) > 0 {
			if ev := <-viewer.C; ev.Kind == api.NoticeAlert {
				per[ev.DeviceID]++
			}
		}
		for _, id := range ids {
			if per[id] != 1 {
				t.Fatalf("%s: %d alert notices of %s, want 1", when, per[id], id)
			}
		}
		if len(per) != n {
			t.Fatalf("%s: alert notices of %d kiosks, want %d", when, len(per), n)
		}
		if r, s := ws.raiseOne.Load(), ws.resolveOne.Load(); r+s != 0 {
			t.Fatalf("%s: %d alerts raised and %d resolved one at a time", when, r, s)
		}
	}
	sweep := func(when string, wantOpen int) {
		t.Helper()
		r, s := ws.raiseMany.Load(), ws.resolveMany.Load()
		eng.Sweep(t.Context())
		told(when)
		if r, s := ws.raiseMany.Load()-r, ws.resolveMany.Load()-s; r != 1 || s != 1 {
			t.Fatalf("%s: %d writes of raises, %d of resolutions; want one each", when, r, s)
		}
		open, err := st.ListAlerts(t.Context(), store.AlertFilter{Unresolved: true, Limit: 2 * n})
		if err != nil || len(open) != wantOpen {
			t.Fatalf("%s: %d unresolved alerts, want %d (%v)", when, len(open), wantOpen, err)
		}
	}

	clk.Advance(time.Hour)
	sweep("an hour offline", n)
	up := make([]store.PresenceUpdate, n)
	for i, id := range ids {
		up[i] = store.PresenceUpdate{DeviceID: id, Online: true, At: clk.Now()}
	}
	if err := st.SetPresences(t.Context(), up); err != nil {
		t.Fatal(err)
	}
	sweep("back online", 0)

	all, err := st.ListAlerts(t.Context(), store.AlertFilter{Limit: 2 * n})
	if err != nil || len(all) != n {
		t.Fatalf("%d alerts in all, want %d (%v)", len(all), n, err)
	}
	// The log: the first LogEach of each kind one by one, the rest summed up, per sweep.
	if o, r, sum := logs.count("alert opened"), logs.count("alert resolved: condition cleared"),
		logs.count("alerts changed in one check: the first of each logged one by one"); o != alerts.LogEach || r != alerts.LogEach || sum != 2 {
		t.Errorf("logged %d alerts opened, %d resolved, %d summaries; want %d, %d, 2", o, r, sum, alerts.LogEach, alerts.LogEach)
	}
	eventually(t, "every alert notified opened and resolved", func() bool { return len(rec.counts()) == 2*n })
	got := rec.counts()
	if batches := 2 * ((n + alerts.NoticeBatch - 1) / alerts.NoticeBatch); ws.silences.Load() > int32(batches) {
		t.Errorf("silences listed %d times for %d batches of notices", ws.silences.Load(), batches)
	}
	for _, a := range all {
		if a.Rule != alerts.RuleOffline || a.State != store.AlertResolved || a.ResolvedBy != "" {
			t.Fatalf("alert %+v, want an offline alert resolved by the hub", a)
		}
		for _, state := range []string{"open", "resolved"} {
			if k := fmt.Sprintf("alert-%d-%s", a.ID, state); got[k] != 1 {
				t.Fatalf("%s notified %d times, want once", k, got[k])
			}
		}
	}
}

// hanging is a notifier that counts what it is told, by webhook idempotency key, but hangs on
// the notification block names until the engine stops, as a hub killed in the middle of a
// delivery.
type hanging struct {
	block string
	recorder
}

func (f *hanging) Notify(ctx context.Context, a api.Alert) error {
	if fmt.Sprintf("alert-%d-%s", a.ID, a.State) == f.block {
		<-ctx.Done()
		return ctx.Err()
	}
	return f.recorder.Notify(ctx, a)
}

// downReceiver is a notifier whose receiver is down: it reports each attempt, with the hub's time.
type downReceiver struct {
	clk   *clock
	calls chan downCall
}

type downCall struct {
	key string
	at  time.Time
}

func (d *downReceiver) Notify(_ context.Context, a api.Alert) error {
	d.calls <- downCall{fmt.Sprintf("alert-%d-%s", a.ID, a.State), d.clk.Now()}
	return errors.New("503 Service Unavailable")
}

// next returns the next attempt, failing t if none comes within 10 s.
func (d *downReceiver) next(t *testing.T) downCall {
	t.Helper()
	select {
	case c := <-d.calls:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery attempted within 10 s")
		return downCall{}
	}
}

// TestNotifyDurable: notices owed are never lost. While the receiver is down the engine tries
// once per RetryAfter (not once per notice); a hub stopped then, or in the middle of a delivery,
// leaves its notices to the next one, which takes them back at once (its claims released) and
// delivers each change once, in order per alert (opened before resolved).
func TestNotifyDurable(t *testing.T) {
	const n = 40
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "hub.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	down := make([]store.PresenceUpdate, n)
	for i := range down {
		id := fmt.Sprintf("k%03d", i)
		storetest.Enroll(t, st, "sz", id)
		down[i] = store.PresenceUpdate{DeviceID: id, Online: false, At: storetest.T0}
	}
	if err := st.SetPresences(t.Context(), down); err != nil {
		t.Fatal(err)
	}
	clk := &clock{}
	clk.Set(storetest.T0.Add(time.Minute)) // the sweep at start raises nothing
	var reg *prometheus.Registry
	start := func(notify alerts.Notifier) (*alerts.Engine, func()) {
		eng := alerts.New(alerts.Config{Store: st, Feed: feed.New(0, clk.Now), Notify: notify, OfflineAfter: 5 * time.Minute,
			SweepEvery: time.Hour, RetryAfter: 20 * time.Millisecond, Now: clk.Now})
		reg = prometheus.NewRegistry()
		if err := eng.Register(reg); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- eng.Run(ctx) }()
		stop := sync.OnceFunc(func() {
			cancel()
			<-done
		})
		t.Cleanup(stop)
		return eng, stop
	}

	// The receiver down: the 40 alerts raised, their notices owed. The first notice is tried,
	// and after the retry time (the hub's clock) the same one again: not the batch's next ones.
	d := &downReceiver{clk: clk, calls: make(chan downCall, 4*n)}
	eng, stop := start(d)
	clk.Advance(time.Hour)
	eng.Sweep(t.Context())
	tried := d.next(t)
	clk.Advance(time.Minute) // past the retry time
	second := d.next(t)
	if second.key != tried.key || second.at.Before(tried.at.Add(time.Minute)) {
		t.Fatalf("tried %s at %v, then %s at %v: want the same notice again, after the retry time", tried.key, tried.at, second.key, second.at)
	}
	eventually(t, "the backlog in kf_alert_notifications_owed", func() bool { return gauge(t, reg, "kf_alert_notifications_owed") == n })
	stop()
	if len(d.calls) != 0 {
		t.Fatalf("%d more attempts before the next retry time, want none", len(d.calls))
	}

	// The next hub, the receiver up, hangs on the 5th alert's delivery and is stopped there; the
	// alerts are resolved meanwhile.
	open, err := st.ListAlerts(t.Context(), store.AlertFilter{Unresolved: true, Limit: 2 * n})
	if err != nil || len(open) != n {
		t.Fatalf("%d alerts open (%v), want %d", len(open), err, n)
	}
	f := &hanging{recorder: recorder{got: map[string]int{}}}
	f.block = fmt.Sprintf("alert-%d-open", open[len(open)-5].ID) // newest first: the 5th raised
	_, stop = start(f)
	eventually(t, "four delivered", func() bool { return len(f.counts()) == 4 })
	up := make([]store.PresenceUpdate, n) // back online, or the next hub's sweep raises them again
	for i := range up {
		up[i] = store.PresenceUpdate{DeviceID: down[i].DeviceID, Online: true, At: clk.Now()}
	}
	if err := st.SetPresences(t.Context(), up); err != nil {
		t.Fatal(err)
	}
	resolveAll(t, st)
	stop()
	first := f.counts()

	// The next hub delivers the rest: every change once, in all.
	f2 := &hanging{recorder: recorder{got: map[string]int{}}}
	start(f2)
	eventually(t, "every change delivered", func() bool { return len(first)+len(f2.counts()) == 2*n })
	eventually(t, "no backlog", func() bool { return gauge(t, reg, "kf_alert_notifications_owed") == 0 })
	for k := range first {
		if f2.counts()[k] != 0 {
			t.Errorf("%s delivered by both hubs", k)
		}
	}
	told := append(f.told(), f2.told()...)
	for _, a := range open {
		for _, state := range []string{"open", "resolved"} {
			k := fmt.Sprintf("alert-%d-%s", a.ID, state)
			if first[k]+f2.counts()[k] != 1 {
				t.Errorf("%s delivered %d times, want once", k, first[k]+f2.counts()[k])
			}
		}
		if o, r := slices.Index(told, fmt.Sprintf("alert-%d-open", a.ID)), slices.Index(told, fmt.Sprintf("alert-%d-resolved", a.ID)); o > r {
			t.Errorf("alert %d: resolved delivered before opened", a.ID)
		}
	}
}

// gauge returns the value of a gauge in reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return int(mf.GetMetric()[0].GetGauge().GetValue())
		}
	}
	t.Fatalf("%s not registered", name)
	return 0
}

// resolveAll resolves every unresolved alert, as a person would.
func resolveAll(t *testing.T, st *sqlite.Store) {
	t.Helper()
	open, err := st.ListAlerts(t.Context(), store.AlertFilter{Unresolved: true})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]int64, len(open))
	for i, a := range open {
		ids[i] = a.ID
	}
	if _, err := st.ResolveAlerts(t.Context(), ids, "ops", storetest.T0); err != nil {
		t.Fatal(err)
	}
}

// TestNoNotifierKeepsThenDrops: a hub without a notifier leaves the notices owed for
// NoNotifierKeep (a replica with one may deliver them), then drops them: of two notices, the one
// older than that goes and the younger stays (a hub that dropped at once, or all, never leaves
// exactly the younger one).
func TestNoNotifierKeepsThenDrops(t *testing.T) {
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "hub.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	storetest.Enroll(t, st, "sz", "k1")
	storetest.Enroll(t, st, "sz", "k2")
	if err := st.SetPresences(t.Context(), []store.PresenceUpdate{{DeviceID: "k1", Online: false, At: storetest.T0},
		{DeviceID: "k2", Online: true, At: storetest.T0}}); err != nil {
		t.Fatal(err)
	}
	clk := &clock{}
	clk.Set(storetest.T0.Add(time.Hour)) // k1 offline an hour: the sweep at start raises its alert
	eng := alerts.New(alerts.Config{Store: st, Feed: feed.New(0, clk.Now), OfflineAfter: 5 * time.Minute, SweepEvery: time.Hour,
		RetryAfter: 10 * time.Millisecond, Now: clk.Now})
	runUntilEnd(t, eng)
	unresolved := func(want int) func() bool {
		return func() bool {
			as, err := st.ListAlerts(t.Context(), store.AlertFilter{Unresolved: true})
			return err == nil && len(as) == want
		}
	}
	eventually(t, "k1's alert raised", unresolved(1))
	clk.Advance(50 * time.Minute) // k2's paper out 50 minutes later
	commitPeripherals(t, st, "k2", 1, `{"devices":[{"id":"receipt0","class":"receipt-printer","connected":true,"status":"fault","reasons":["paper-out"]}]}`, clk.Now())
	eng.Check(t.Context(), "k2")
	eventually(t, "k2's alert raised", unresolved(2))
	owed := func() int {
		n, err := st.CountAlertNotices(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := owed(); n != 2 {
		t.Fatalf("%d notices owed, want 2", n)
	}
	clk.Advance(15 * time.Minute) // k1's notice 65 minutes old, k2's 15
	eventually(t, "k1's notice dropped", func() bool { return owed() == 1 })
	ns, err := st.ClaimAlertNotices(t.Context(), "probe", clk.Now(), clk.Now().Add(time.Minute), 10)
	if err != nil || len(ns) != 1 || ns[0].Alert.DeviceID != "k2" {
		t.Fatalf("notices left: %+v (%v), want k2's", ns, err)
	}
}
