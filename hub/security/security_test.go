package security_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/broker"
	"github.com/kioskfleet/kioskfleet/hub/security"
	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/sqlite"
)

// counting is the hub's store, counting the writes the recorder makes; fail makes them fail.
type counting struct {
	*sqlite.Store
	writes, rows atomic.Int64
	fail         atomic.Bool
}

func (c *counting) AddSecurityEvents(ctx context.Context, evs []store.SecurityEvent) error {
	if c.fail.Load() {
		return errors.New("store down")
	}
	c.writes.Add(1)
	c.rows.Add(int64(len(evs)))
	return c.Store.AddSecurityEvents(ctx, evs)
}

func open(t *testing.T) *counting {
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "hub.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &counting{Store: st}
}

// clock is a settable time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

var t0 = time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)

func list(t *testing.T, st *counting, f store.SecurityEventFilter) []store.SecurityEvent {
	t.Helper()
	evs, err := st.ListSecurityEvents(t.Context(), f)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func total(evs []store.SecurityEvent) (n int64) {
	for _, e := range evs {
		n += e.Count
	}
	return n
}

// A flood of TLS refusals from 5,000 addresses, 100,000 of them in a minute, from 8 goroutines:
// one write per flush, at most MaxKeys rows plus the overflow row, and every refusal counted.
func TestFloodIsBounded(t *testing.T) {
	st := open(t)
	c := &clock{t: t0}
	r := security.New(security.Config{Store: st, MaxKeys: 100, Now: c.Now})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 12_500 {
				r.NoteBroker(broker.Rejection{Reason: broker.ReasonTLS, Remote: fmt.Sprintf("10.%d.%d.%d:%d", g, i%5000/250, i%250, 40000+i),
					Detail: "tls: bad certificate"})
			}
		})
	}
	wg.Wait()
	if err := r.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	evs := list(t, st, store.SecurityEventFilter{})
	if st.writes.Load() != 1 || len(evs) > 101 || total(evs) != 100_000 {
		t.Fatalf("%d writes, %d rows, %d refusals counted; want 1 write, at most 101 rows, 100000", st.writes.Load(), len(evs), total(evs))
	}
	var overflow int64
	for _, e := range evs {
		if e.Kind != security.TLSRefused || e.DeviceID != "" {
			t.Fatalf("row %+v", e)
		}
		if e.Source == security.Overflow {
			overflow = e.Count
		}
	}
	if overflow == 0 {
		t.Fatal("no overflow row: past MaxKeys sources must be folded")
	}
	// Nothing new: no write. The next minute has room for new sources again.
	if err := r.Flush(t.Context()); err != nil || st.writes.Load() != 1 {
		t.Fatalf("an empty flush wrote: %d writes, %v", st.writes.Load(), err)
	}
	c.Add(time.Minute)
	r.NoteBroker(broker.Rejection{Reason: broker.ReasonTLS, Remote: "192.0.2.1:5555"})
	if err := r.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := list(t, st, store.SecurityEventFilter{AfterID: evs[len(evs)-1].ID}); len(got) != 1 || got[0].Source != "192.0.2.1" {
		t.Fatalf("next minute: %+v", got)
	}
}

// Counts of one key in one minute merge across flushes into one row; another kiosk is another
// row; the broker's refusals not for cause are not security events.
func TestMergeAndKinds(t *testing.T) {
	st := open(t)
	c := &clock{t: t0}
	r := security.New(security.Config{Store: st, Now: c.Now})
	r.NoteBroker(broker.Rejection{Reason: broker.ReasonACLDenied, DeviceID: "k1", Remote: "10.0.0.1:1", Detail: "publish not allowed"})
	r.NoteBroker(broker.Rejection{Reason: broker.ReasonAddrLimit, Remote: "10.0.0.1:2"})
	r.NoteBroker(broker.Rejection{Reason: broker.ReasonUnavailable, DeviceID: "k1"})
	if err := r.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	c.Add(10 * time.Second)
	r.NoteBroker(broker.Rejection{Reason: broker.ReasonACLDenied, DeviceID: "k1", Remote: "10.0.0.1:3", Detail: "subscribe not allowed"})
	r.NoteBroker(broker.Rejection{Reason: broker.ReasonACLDenied, DeviceID: "k2", Remote: "10.0.0.2:3"})
	r.Note("login.failed", "", "eng1", "[2001:db8::1]:443", "")
	if err := r.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	evs := list(t, st, store.SecurityEventFilter{})
	if len(evs) != 3 {
		t.Fatalf("rows %+v, want 3", evs)
	}
	k1 := evs[0]
	if k1.Kind != security.ACLDenied || k1.DeviceID != "k1" || k1.Source != "10.0.0.1" || k1.Count != 2 ||
		!k1.At.Equal(t0) || !k1.Last.Equal(t0.Add(10*time.Second)) || k1.Detail != "subscribe not allowed" {
		t.Fatalf("k1's row %+v", k1)
	}
	// The second flush's two rows are written in no set order: find the login one by its kind.
	i := slices.IndexFunc(evs, func(e store.SecurityEvent) bool { return e.Kind == "login.failed" })
	if i < 0 || evs[i].Staff != "eng1" || evs[i].Source != "2001:db8::1" {
		t.Fatalf("login row of %+v", evs)
	}
}

// While the store fails, counts are kept and written with the next flush that succeeds.
func TestStoreDown(t *testing.T) {
	st := open(t)
	r := security.New(security.Config{Store: st, Now: (&clock{t: t0}).Now})
	st.fail.Store(true)
	r.Note(security.DeviceRevoked, "k1", "admin", "", "revoked by staff")
	if err := r.Flush(t.Context()); err == nil {
		t.Fatal("Flush on a failing store: no error")
	}
	r.Note(security.DeviceRevoked, "k1", "admin", "", "revoked by staff")
	st.fail.Store(false)
	if err := r.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if evs := list(t, st, store.SecurityEventFilter{}); len(evs) != 1 || evs[0].Count != 2 {
		t.Fatalf("rows %+v, want one of count 2", evs)
	}
}

// Run writes what was counted when it stops.
func TestRunFlushesAtStop(t *testing.T) {
	st := open(t)
	r := security.New(security.Config{Store: st, FlushEvery: time.Hour})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	r.Note(security.APIForbidden, "", "eng1", "10.0.0.1", "GET /api/v1/devices/k9")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if evs := list(t, st, store.SecurityEventFilter{Staff: "eng1"}); len(evs) != 1 {
		t.Fatalf("rows %+v", evs)
	}
}
