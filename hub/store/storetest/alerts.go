package storetest

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

// AlertStore is what the suite of store.Alerts needs.
type AlertStore interface {
	store.Alerts
	store.Devices
}

// RunAlerts runs the suite of store.Alerts.
func RunAlerts(t *testing.T, open func(t *testing.T) AlertStore) {
	suite[AlertStore]{
		{"LifeCycle", testAlertLifeCycle},
		{"ConcurrentRaise", testAlertConcurrentRaise},
		{"BulkRaise", testAlertBulkRaise},
		{"BulkResolve", testAlertBulkResolve},
		{"BulkLarge", testAlertBulkLarge},
		{"Notices", testAlertNotices},
		{"NoticesConcurrentClaims", testAlertNoticesConcurrentClaims},
	}.run(t, open)
}

func testAlertLifeCycle(t *testing.T, s AlertStore) {
	ctx := t.Context()
	Enroll(t, s, "sz", "k1")
	Enroll(t, s, "sz", "k2")
	paper := store.Alert{DeviceID: "k1", Rule: "peripheral-fault", Subject: "receipt0", Detail: "paper-out", OpenedAt: T0}
	_, _, err := s.RaiseAlert(ctx, store.Alert{DeviceID: "nope", Rule: "offline", OpenedAt: T0})
	wantErr(t, "RaiseAlert of an unknown device", err, store.ErrNotFound)
	_, _, err = s.RaiseAlert(ctx, store.Alert{DeviceID: "k1", OpenedAt: T0})
	wantErr(t, "RaiseAlert without a rule", err, store.ErrInvalid)

	a, created, err := s.RaiseAlert(ctx, paper)
	if err != nil || !created || a.ID == 0 || a.State != store.AlertOpen || !a.OpenedAt.Equal(T0) || a.Detail != "paper-out" {
		t.Fatalf("raise: %+v %v %v", a, created, err)
	}
	// Raised again while unresolved: the same alert, not a second one.
	again := paper
	again.OpenedAt = T0.Add(time.Minute)
	if b, created, err := s.RaiseAlert(ctx, again); err != nil || created || b != a {
		t.Fatalf("raise again: %+v %v %v", b, created, err)
	}
	// Another subject, rule or kiosk is another alert.
	other, _, _ := s.RaiseAlert(ctx, store.Alert{DeviceID: "k1", Rule: "peripheral-fault", Subject: "idreader0", OpenedAt: T0})
	off, _, _ := s.RaiseAlert(ctx, store.Alert{DeviceID: "k2", Rule: "offline", OpenedAt: T0})
	if other.ID == a.ID || off.ID == a.ID || other.ID == off.ID {
		t.Fatal("alerts of other subjects or kiosks share an ID")
	}

	ack, err := s.AckAlert(ctx, a.ID, "nanshan1", T0.Add(2*time.Minute))
	if err != nil || ack.State != store.AlertAcknowledged || ack.AckBy != "nanshan1" || !ack.AckAt.Equal(T0.Add(2*time.Minute)) {
		t.Fatalf("ack: %+v %v", ack, err)
	}
	if twice, err := s.AckAlert(ctx, a.ID, "other", T0.Add(3*time.Minute)); err != nil || twice != ack {
		t.Fatalf("ack twice: %+v %v", twice, err)
	}
	res, err := s.ResolveAlert(ctx, a.ID, "nanshan1", T0.Add(4*time.Minute))
	if err != nil || res.State != store.AlertResolved || res.ResolvedBy != "nanshan1" || res.AckBy != "nanshan1" || !res.ResolvedAt.Equal(T0.Add(4*time.Minute)) {
		t.Fatalf("resolve: %+v %v", res, err)
	}
	_, err = s.ResolveAlert(ctx, a.ID, "other", T0.Add(5*time.Minute))
	wantErr(t, "resolve a resolved alert", err, store.ErrConflict)
	_, err = s.AckAlert(ctx, a.ID, "other", T0.Add(5*time.Minute))
	wantErr(t, "ack a resolved alert", err, store.ErrConflict)
	_, err = s.AckAlert(ctx, 999999, "other", T0)
	wantErr(t, "ack an unknown alert", err, store.ErrNotFound)
	if got, err := s.GetAlert(ctx, a.ID); err != nil || got != res {
		t.Fatalf("get: %+v %v", got, err)
	}
	// Once resolved, the condition coming back is a new alert.
	b, created, err := s.RaiseAlert(ctx, again)
	if err != nil || !created || b.ID == a.ID {
		t.Fatalf("raise after resolve: %+v %v %v", b, created, err)
	}

	ids := func(f store.AlertFilter) []int64 {
		as, err := s.ListAlerts(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, a := range as {
			out = append(out, a.ID)
		}
		return out
	}
	if got := ids(store.AlertFilter{DeviceID: "k1"}); len(got) != 3 || got[0] != b.ID || got[2] != a.ID {
		t.Errorf("k1's alerts, newest first: %v", got)
	}
	if got := ids(store.AlertFilter{Unresolved: true}); len(got) != 3 || got[0] != b.ID {
		t.Errorf("unresolved alerts: %v", got)
	}
	if got := ids(store.AlertFilter{DeviceIDs: []string{"k2", "k3"}, Unresolved: true}); len(got) != 1 || got[0] != off.ID {
		t.Errorf("unresolved alerts of k2 and k3: %v", got)
	}
	if got := ids(store.AlertFilter{DeviceIDs: []string{"k1", "k2"}}); len(got) != 4 || got[0] != b.ID {
		t.Errorf("alerts of k1 and k2, newest first: %v", got)
	}
	if got := ids(store.AlertFilter{DeviceID: "k2", DeviceIDs: []string{"k1"}}); len(got) != 0 {
		t.Errorf("alerts of k2 among k1's: %v", got)
	}
	if got := ids(store.AlertFilter{Limit: 1}); len(got) != 1 || got[0] != b.ID {
		t.Errorf("limit 1: %v", got)
	}
}

// testAlertConcurrentRaise: many raises of one condition at once open one alert.
func testAlertConcurrentRaise(t *testing.T, s AlertStore) {
	Enroll(t, s, "sz", "k1")
	var wg sync.WaitGroup
	var created atomic.Int64
	for range 8 {
		wg.Go(func() {
			_, c, err := s.RaiseAlert(t.Context(), store.Alert{DeviceID: "k1", Rule: "offline", OpenedAt: T0})
			if err != nil {
				t.Error(err)
			}
			if c {
				created.Add(1)
			}
		})
	}
	wg.Wait()
	if created.Load() != 1 {
		t.Fatalf("%d alerts created", created.Load())
	}
}

// alertIDs returns the IDs of as.
func alertIDs(as []store.Alert) []int64 {
	out := make([]int64, len(as))
	for i, a := range as {
		out[i] = a.ID
	}
	return out
}

// testAlertBulkRaise: RaiseAlerts creates each condition once and returns those by ID: not one with an
// unresolved alert in the store or earlier in the same call, nor one of an unknown device; an
// invalid alert refuses the whole call; no alerts, nothing done.
func testAlertBulkRaise(t *testing.T, s AlertStore) {
	ctx := t.Context()
	Enroll(t, s, "sz", "k1")
	Enroll(t, s, "sz", "k2")
	if got, err := s.RaiseAlerts(ctx, nil); err != nil || len(got) != 0 {
		t.Fatalf("raise none: %+v %v", got, err)
	}
	off1 := store.Alert{DeviceID: "k1", Rule: "offline", Detail: "offline since 08:00", OpenedAt: T0}
	_, err := s.RaiseAlerts(ctx, []store.Alert{off1, {DeviceID: "k2", OpenedAt: T0}})
	wantErr(t, "RaiseAlerts with an alert without a rule", err, store.ErrInvalid)
	if as, err := s.ListAlerts(ctx, store.AlertFilter{}); err != nil || len(as) != 0 {
		t.Fatalf("after a refused RaiseAlerts: %+v %v", as, err)
	}

	open, _, err := s.RaiseAlert(ctx, off1)
	if err != nil {
		t.Fatal(err)
	}
	at := T0.Add(time.Minute)
	off2 := store.Alert{DeviceID: "k2", Rule: "offline", Detail: "offline since 08:01", OpenedAt: at}
	paper := store.Alert{DeviceID: "k1", Rule: "peripheral-fault", Subject: "receipt0", Detail: "paper-out", OpenedAt: at}
	reader := store.Alert{DeviceID: "k1", Rule: "peripheral-fault", Subject: "idreader0", Detail: "disconnected", OpenedAt: at}
	again := off1
	again.OpenedAt = at
	unknown := store.Alert{DeviceID: "nope", Rule: "offline", OpenedAt: at}
	twice := off2
	twice.Detail = "the second of one call"
	created, err := s.RaiseAlerts(ctx, []store.Alert{again, off2, unknown, paper, twice, reader})
	if err != nil {
		t.Fatal(err)
	}
	// The order of IDs is the backend's (PostgreSQL inserts in the order of the keys).
	want := []store.Alert{off2, paper, reader}
	if len(created) != len(want) {
		t.Fatalf("created %+v, want the alerts of k2 offline, k1's receipt0 and idreader0", created)
	}
	for _, a := range created {
		i := slices.IndexFunc(want, func(w store.Alert) bool {
			return w.DeviceID == a.DeviceID && w.Rule == a.Rule && w.Subject == a.Subject
		})
		if i < 0 {
			t.Fatalf("created %+v, not asked for or twice", a)
		}
		w := want[i]
		want = slices.Delete(want, i, i+1)
		w.ID, w.State = a.ID, store.AlertOpen
		if a != w || a.ID == 0 || a.ID == open.ID {
			t.Errorf("created %+v, want %+v with a new ID (the first of one key in the call)", a, w)
		}
		if got, err := s.GetAlert(ctx, a.ID); err != nil || got != a {
			t.Errorf("get created %d: %+v %v", a.ID, got, err)
		}
	}
	if !slices.IsSorted(alertIDs(created)) {
		t.Errorf("created not by ID: %v", alertIDs(created))
	}
	if as, err := s.ListAlerts(ctx, store.AlertFilter{Unresolved: true}); err != nil || len(as) != 4 {
		t.Fatalf("unresolved after RaiseAlerts: %+v %v, want 4", as, err)
	}
	if got, err := s.GetAlert(ctx, open.ID); err != nil || got != open {
		t.Fatalf("the alert that was open: %+v %v, want it unchanged %+v", got, err, open)
	}
	// All of them again: nothing new.
	if again, err := s.RaiseAlerts(ctx, []store.Alert{again, off2, paper, reader}); err != nil || len(again) != 0 {
		t.Fatalf("raise the open ones again: %+v %v", again, err)
	}
}

// testAlertBulkResolve: ResolveAlerts resolves exactly the unresolved alerts of its IDs (open
// or acknowledged, the acknowledgment kept) and returns those, by ID; resolved and unknown IDs
// are skipped and left as they were; the condition raised again is a new alert.
func testAlertBulkResolve(t *testing.T, s AlertStore) {
	ctx := t.Context()
	Enroll(t, s, "sz", "k1")
	Enroll(t, s, "sz", "k2")
	if got, err := s.ResolveAlerts(ctx, nil, "", T0); err != nil || len(got) != 0 {
		t.Fatalf("resolve none: %+v %v", got, err)
	}
	raised, err := s.RaiseAlerts(ctx, []store.Alert{
		{DeviceID: "k1", Rule: "offline", OpenedAt: T0},
		{DeviceID: "k2", Rule: "offline", OpenedAt: T0},
		{DeviceID: "k1", Rule: "peripheral-degraded", Subject: "receipt0", Detail: "paper-low", OpenedAt: T0},
		{DeviceID: "k2", Rule: "peripheral-fault", Subject: "receipt0", Detail: "paper-out", OpenedAt: T0},
	})
	if err != nil || len(raised) != 4 {
		t.Fatalf("raise: %+v %v", raised, err)
	}
	a, b, c, d := raised[0], raised[1], raised[2], raised[3]
	byPerson, err := s.ResolveAlert(ctx, b.ID, "eng1", T0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	acked, err := s.AckAlert(ctx, c.ID, "eng2", T0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	at := T0.Add(2 * time.Minute)
	got, err := s.ResolveAlerts(ctx, []int64{c.ID, b.ID, 999999, a.ID, c.ID}, "", at)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(alertIDs(got), []int64{a.ID, c.ID}) {
		t.Fatalf("resolved %v, want %v (not %d, resolved before; not 999999, unknown)", alertIDs(got), []int64{a.ID, c.ID}, b.ID)
	}
	wantA, wantC := a, acked
	for _, w := range []*store.Alert{&wantA, &wantC} {
		w.State, w.ResolvedBy, w.ResolvedAt = store.AlertResolved, "", at
	}
	if got[0] != wantA || got[1] != wantC {
		t.Fatalf("resolved %+v, want %+v", got, []store.Alert{wantA, wantC})
	}
	for _, w := range []store.Alert{wantA, byPerson, wantC, d} {
		if st, err := s.GetAlert(ctx, w.ID); err != nil || st != w {
			t.Errorf("alert %d stored as %+v %v, want %+v", w.ID, st, err, w)
		}
	}
	if again, err := s.ResolveAlerts(ctx, []int64{a.ID, b.ID, c.ID}, "", at.Add(time.Minute)); err != nil || len(again) != 0 {
		t.Fatalf("resolve the resolved again: %+v %v", again, err)
	}
	back, err := s.RaiseAlerts(ctx, []store.Alert{{DeviceID: "k1", Rule: "offline", OpenedAt: at}})
	if err != nil || len(back) != 1 || back[0].ID == a.ID {
		t.Fatalf("raise after a bulk resolve: %+v %v, want a new alert", back, err)
	}
}

// testAlertBulkLarge: one call raises and resolves more alerts than a statement of one
// parameter per field could bind (SQLite's limit is 32766 parameters).
func testAlertBulkLarge(t *testing.T, s AlertStore) {
	ctx := t.Context()
	Enroll(t, s, "sz", "k1")
	const n = 7000 // 35,000 fields
	as := make([]store.Alert, n)
	for i := range as {
		as[i] = store.Alert{DeviceID: "k1", Rule: "peripheral-fault", Subject: fmt.Sprint("p", i), OpenedAt: T0}
	}
	raised, err := s.RaiseAlerts(ctx, as)
	if err != nil || len(raised) != n {
		t.Fatalf("raise %d: %d created, %v", n, len(raised), err)
	}
	resolved, err := s.ResolveAlerts(ctx, alertIDs(raised), "", T0.Add(time.Minute))
	if err != nil || !slices.Equal(alertIDs(resolved), alertIDs(raised)) {
		t.Fatalf("resolve %d: %d resolved, %v", n, len(resolved), err)
	}
	if open, err := s.ListAlerts(ctx, store.AlertFilter{Unresolved: true}); err != nil || len(open) != 0 {
		t.Fatalf("%d unresolved after resolving all, %v", len(open), err)
	}
}

// testAlertNotices: every change of an alert owes one notice, written with it (raised one by one
// or in bulk, acknowledged, resolved one by one or in bulk; not a raise of an alert already
// unresolved, nor a move that did not happen). Notices are claimed oldest first, one at a time per
// alert in the order of its changes, each with the alert as it was then; a claim holds a notice
// from others until it runs out or its claimer releases it; a deferred one waits; a done one is
// gone.
func testAlertNotices(t *testing.T, s AlertStore) {
	ctx := t.Context()
	Enroll(t, s, "sz", "k1")
	Enroll(t, s, "sz", "k2")
	min := func(n int) time.Time { return T0.Add(time.Duration(n) * time.Minute) }
	a, _, err := s.RaiseAlert(ctx, store.Alert{DeviceID: "k1", Rule: "peripheral-fault", Subject: "receipt0", OpenedAt: T0})
	if err != nil {
		t.Fatal(err)
	}
	if _, created, err := s.RaiseAlert(ctx, store.Alert{DeviceID: "k1", Rule: "peripheral-fault", Subject: "receipt0", OpenedAt: min(1)}); err != nil || created {
		t.Fatalf("raise again: %v %v", created, err)
	}
	bulk, err := s.RaiseAlerts(ctx, []store.Alert{{DeviceID: "k2", Rule: "offline", OpenedAt: min(1)}, {DeviceID: "k1", Rule: "offline", OpenedAt: min(1)}})
	if err != nil || len(bulk) != 2 {
		t.Fatalf("raise in bulk: %v %v", bulk, err)
	}
	b, c := bulk[0], bulk[1]
	if _, err := s.AckAlert(ctx, a.ID, "ops", min(2)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AckAlert(ctx, a.ID, "ops", min(3)); err != nil { // already acknowledged: no move
		t.Fatal(err)
	}
	if _, err := s.ResolveAlert(ctx, a.ID, "ops", min(4)); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ResolveAlerts(ctx, []int64{b.ID, a.ID}, "", min(5)); err != nil || len(got) != 1 {
		t.Fatalf("resolve in bulk: %v %v", got, err)
	}

	type key struct {
		alert int64
		state store.AlertState
	}
	claim := func(who string, now time.Time, limit int) ([]store.AlertNotice, []key) {
		t.Helper()
		ns, err := s.ClaimAlertNotices(ctx, who, now, now.Add(time.Hour), limit)
		if err != nil {
			t.Fatal(err)
		}
		var ks []key
		for _, n := range ns {
			ks = append(ks, key{n.Alert.ID, n.State})
		}
		return ns, ks
	}
	ids := func(ns []store.AlertNotice) []int64 {
		var out []int64
		for _, n := range ns {
			out = append(out, n.ID)
		}
		return out
	}
	if n, err := s.CountAlertNotices(ctx); err != nil || n != 6 {
		t.Fatalf("%d notices owed (%v), want 6: 3 opened, 1 acknowledged, 2 resolved", n, err)
	}
	// The first change of each alert, in the order they were made.
	first, got := claim("r1", T0, 10)
	if want := []key{{a.ID, store.AlertOpen}, {b.ID, store.AlertOpen}, {c.ID, store.AlertOpen}}; !slices.Equal(got, want) {
		t.Fatalf("first claim: %v, want %v", got, want)
	}
	if n := first[0]; n.Alert.State != store.AlertOpen || n.Alert.AckBy != "" || !n.Alert.AckAt.IsZero() || !n.Alert.ResolvedAt.IsZero() ||
		!n.At.Equal(T0) || n.Alert.Subject != "receipt0" || n.Alert.DeviceID != "k1" {
		t.Fatalf("a's first notice: %+v, want the alert as it was opened", n)
	}
	if _, got := claim("r2", min(30), 10); len(got) != 0 {
		t.Fatalf("claimed by r1, and the next of each alert behind them: r2 claimed %v", got)
	}
	// a's open notice delivered: its acknowledgment is next, as it was then.
	if err := s.DoneAlertNotices(ctx, ids(first[:1])); err != nil {
		t.Fatal(err)
	}
	second, got := claim("r2", min(30), 10)
	if want := []key{{a.ID, store.AlertAcknowledged}}; !slices.Equal(got, want) {
		t.Fatalf("after a's open notice: %v, want %v", got, want)
	}
	if n := second[0]; n.Alert.AckBy != "ops" || !n.Alert.AckAt.Equal(min(2)) || !n.Alert.ResolvedAt.IsZero() || !n.At.Equal(min(2)) {
		t.Fatalf("a's acknowledgment: %+v", n)
	}
	// b's open notice deferred past r1's claim: when that runs out, only c's is free.
	if err := s.DeferAlertNotices(ctx, ids(first[1:2]), min(180)); err != nil {
		t.Fatal(err)
	}
	if _, got := claim("r3", min(61), 10); !slices.Equal(got, []key{{c.ID, store.AlertOpen}}) {
		t.Fatalf("r1's claim ran out, b's deferred: %v", got)
	}
	// r2 released its claims (back from a crash): a's acknowledgment is free again at once.
	if err := s.ReleaseAlertNotices(ctx, "r2"); err != nil {
		t.Fatal(err)
	}
	if _, got := claim("r2", min(62), 10); !slices.Equal(got, []key{{a.ID, store.AlertAcknowledged}}) {
		t.Fatalf("after r2's release: %v", got)
	}
	// Delivering everything, in turn, gives each change once, in order per alert.
	var delivered []key
	now := min(200)
	for round := 0; round < 10; round++ {
		if err := s.ReleaseAlertNotices(ctx, "r2"); err != nil {
			t.Fatal(err)
		}
		if err := s.ReleaseAlertNotices(ctx, "r3"); err != nil {
			t.Fatal(err)
		}
		ns, got := claim("r4", now, 1)
		if len(ns) == 0 {
			break
		}
		delivered = append(delivered, got...)
		if err := s.DoneAlertNotices(ctx, ids(ns)); err != nil {
			t.Fatal(err)
		}
	}
	want := []key{{a.ID, store.AlertAcknowledged}, {a.ID, store.AlertResolved}, {b.ID, store.AlertOpen}, {b.ID, store.AlertResolved}, {c.ID, store.AlertOpen}}
	slices.SortFunc(delivered, func(x, y key) int { return cmp.Or(cmp.Compare(x.alert, y.alert), cmp.Compare(x.state, y.state)) })
	slices.SortFunc(want, func(x, y key) int { return cmp.Or(cmp.Compare(x.alert, y.alert), cmp.Compare(x.state, y.state)) })
	if !slices.Equal(delivered, want) {
		t.Fatalf("delivered %v, want %v", delivered, want)
	}

	// Dropped: the notices of changes before a time, unless someone holds them.
	if again, err := s.RaiseAlerts(ctx, []store.Alert{{DeviceID: c.DeviceID, Rule: c.Rule, OpenedAt: min(300)}}); err != nil || len(again) != 0 {
		t.Fatalf("c raised again while unresolved: %v %v", again, err) // and so no notice
	}
	d, _, err := s.RaiseAlert(ctx, store.Alert{DeviceID: "k2", Rule: "peripheral-fault", Subject: "a4", OpenedAt: min(300)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ResolveAlert(ctx, d.ID, "", min(400)); err != nil {
		t.Fatal(err)
	}
	held, _ := claim("r5", min(400), 1) // d's open notice, held until min(460)
	if len(held) != 1 || held[0].Alert.ID != d.ID {
		t.Fatalf("claimed %v, want d's open notice", held)
	}
	if n, err := s.DropAlertNotices(ctx, min(500), min(401)); err != nil || n != 1 {
		t.Fatalf("dropped %d (%v), want 1: d's resolution, not its held opening", n, err)
	}
	if n, err := s.DropAlertNotices(ctx, min(350), min(500)); err != nil || n != 1 {
		t.Fatalf("dropped %d (%v), want 1: d's opening, its claim run out", n, err)
	}
	if ns, _ := claim("r6", min(600), 10); len(ns) != 0 {
		t.Fatalf("notices left after dropping: %v", ns)
	}
	if n, err := s.CountAlertNotices(ctx); err != nil || n != 0 {
		t.Fatalf("%d notices owed at the end (%v), want 0", n, err)
	}
}

// testAlertNoticesConcurrentClaims: deliverers claiming at once (replicas) never hold the same
// notice, and between them claim every one.
func testAlertNoticesConcurrentClaims(t *testing.T, s AlertStore) {
	ctx := t.Context()
	const n, claimers = 60, 4
	var raise []store.Alert
	for i := range n {
		id := fmt.Sprintf("k%02d", i)
		Enroll(t, s, "sz", id)
		raise = append(raise, store.Alert{DeviceID: id, Rule: "offline", OpenedAt: T0})
	}
	if _, err := s.RaiseAlerts(ctx, raise); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	held := map[int64]string{}
	var wg sync.WaitGroup
	for c := range claimers {
		who := fmt.Sprintf("r%d", c)
		wg.Go(func() {
			for {
				ns, err := s.ClaimAlertNotices(ctx, who, T0, T0.Add(time.Hour), 5)
				if err != nil {
					t.Error(err)
					return
				}
				if len(ns) == 0 {
					return
				}
				mu.Lock()
				for _, x := range ns {
					if other, ok := held[x.ID]; ok {
						t.Errorf("notice %d claimed by %s and %s", x.ID, other, who)
					}
					held[x.ID] = who
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(held) != n {
		t.Fatalf("%d notices claimed, want %d", len(held), n)
	}
}
