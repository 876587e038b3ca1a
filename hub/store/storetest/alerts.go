package storetest

import (
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
