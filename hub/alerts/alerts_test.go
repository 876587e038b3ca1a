package alerts_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

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
// is one (the sweep), back online resolves it; a person's acknowledgment is kept; the webhook gets
// each notification once although its first two attempts fail.
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
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
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

	// Four notifications, each accepted once, after two failed attempts each.
	eventually(t, "notifications delivered", func() bool { return len(rc.keys()) == 4 })
	want := []string{fmt.Sprintf("alert-%d-open", paper.ID), fmt.Sprintf("alert-%d-resolved", paper.ID),
		fmt.Sprintf("alert-%d-open", off[0].ID), fmt.Sprintf("alert-%d-resolved", off[0].ID)}
	for i, k := range rc.keys() {
		if k != want[i] {
			t.Fatalf("notifications %v, want %v", rc.keys(), want)
		}
	}
	if n := rc.attempts.Load(); n != 12 {
		t.Errorf("%d attempts, want 12 (3 per notification)", n)
	}
}

// TestSilence: an alert of a kiosk under a silence (its rule, while it lasts) is raised and shown
// but not notified; the same kiosk's other rules, and the alerts after the silence ends, are.
func TestSilence(t *testing.T) {
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
	storetest.Enroll(t, st, "sz", "k1")
	if err := st.SetPresences(t.Context(), []store.PresenceUpdate{{DeviceID: "k1", Online: true, At: storetest.T0}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
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

// countingStore counts the engine's reads of one kiosk.
type countingStore struct {
	*sqlite.Store
	gets atomic.Int32
}

func (s *countingStore) GetDevice(ctx context.Context, id string) (store.Device, error) {
	s.gets.Add(1)
	return s.Store.GetDevice(ctx, id)
}

// TestChecksGathered: a burst of notices (a kiosk's records in every group commit of a busy hub)
// costs a check at once and then one per kiosk at the end of CheckDelay, not one per notice. The
// engine runs on synctest's clock: "nothing more in the next CheckDelays" is checked exactly.
func TestChecksGathered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "hub.db"), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		storetest.Enroll(t, st, "sz", "k1")
		storetest.Enroll(t, st, "sz", "k2")
		cs := &countingStore{Store: st}
		fd := feed.New(1024, time.Now)
		eng := alerts.New(alerts.Config{Store: cs, Feed: fd, SweepEvery: time.Hour})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- eng.Run(ctx) }()
		t.Cleanup(func() {
			cancel()
			<-done
		})
		synctest.Wait() // the engine subscribed, swept and waits
		if fd.Subscribers() != 1 {
			t.Fatal("the engine does not follow the feed")
		}
		for i := range 200 {
			fd.Publish(api.Notice{Kind: api.NoticeRecords, DeviceID: fmt.Sprintf("k%d", 1+i%2), At: time.Now()})
		}
		synctest.Wait()
		if n := cs.gets.Load(); n != 1 {
			t.Fatalf("%d device reads before CheckDelay, want 1 (k1 at once)", n)
		}
		<-time.After(alerts.CheckDelay) // the bubble's clock: no real time passes
		synctest.Wait()
		if n := cs.gets.Load(); n != 3 {
			t.Fatalf("%d device reads at the end of CheckDelay, want 3 (k1 at once, then k1 and k2)", n)
		}
		<-time.After(5 * alerts.CheckDelay)
		synctest.Wait()
		if n := cs.gets.Load(); n != 3 {
			t.Fatalf("%d device reads for 200 notices of 2 kiosks, want 3 (k1 at once, then k1 and k2)", n)
		}
	})
}
