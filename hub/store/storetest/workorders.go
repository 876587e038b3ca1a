package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

// WorkOrderStore is what the silences and work orders suite needs: alerts of enrolled kiosks.
type WorkOrderStore interface {
	store.Silences
	store.WorkOrders
	store.Alerts
	store.Devices
}

// RunWorkOrders runs the suite of store.Silences and store.WorkOrders.
func RunWorkOrders(t *testing.T, open func(t *testing.T) WorkOrderStore) {
	suite[WorkOrderStore]{
		{"Silences", testSilences},
		{"WorkOrders", testWorkOrders},
	}.run(t, open)
}

func testSilences(t *testing.T, s WorkOrderStore) {
	ctx := t.Context()
	Enroll(t, s, "s1", "k1")
	_, err := s.CreateSilence(ctx, store.Silence{DeviceID: "nope", CreatedBy: "eng1", StartsAt: T0, EndsAt: T0.Add(time.Hour)})
	wantErr(t, "unknown device", err, store.ErrNotFound)
	_, err = s.CreateSilence(ctx, store.Silence{DeviceID: "k1", CreatedBy: "eng1", StartsAt: T0, EndsAt: T0})
	wantErr(t, "an end not after the start", err, store.ErrInvalid)
	a, err := s.CreateSilence(ctx, store.Silence{DeviceID: "k1", Rule: "peripheral-fault", Reason: "printer swap", CreatedBy: "eng1",
		StartsAt: T0, EndsAt: T0.Add(2 * time.Hour)})
	if err != nil || a.ID == 0 {
		t.Fatalf("CreateSilence = %+v, %v", a, err)
	}
	b, err := s.CreateSilence(ctx, store.Silence{DeviceID: "k1", CreatedBy: "eng2", StartsAt: T0.Add(time.Hour), EndsAt: T0.Add(3 * time.Hour)})
	if err != nil || b.ID <= a.ID {
		t.Fatalf("second CreateSilence = %+v, %v", b, err)
	}
	ids := func(at time.Time) (out []int64) {
		t.Helper()
		ss, err := s.ListSilences(ctx, at)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range ss {
			out = append(out, x.ID)
		}
		return out
	}
	if got := ids(T0.Add(30 * time.Minute)); len(got) != 1 || got[0] != a.ID {
		t.Fatalf("active at +30m: %v", got)
	}
	if got := ids(T0.Add(90 * time.Minute)); len(got) != 2 || got[0] != b.ID {
		t.Fatalf("active at +90m: %v", got)
	}
	if got := ids(T0.Add(3 * time.Hour)); len(got) != 0 {
		t.Fatalf("active at +3h (both ended): %v", got)
	}
	if got := ids(time.Time{}); len(got) != 2 {
		t.Fatalf("all: %v", got)
	}
	ended, err := s.EndSilence(ctx, a.ID, "eng3", T0.Add(time.Minute))
	if err != nil || !ended.EndsAt.Equal(T0.Add(time.Minute)) || ended.EndedBy != "eng3" || ended.Reason != "printer swap" || ended.Rule != "peripheral-fault" {
		t.Fatalf("EndSilence = %+v, %v", ended, err)
	}
	again, err := s.EndSilence(ctx, a.ID, "eng4", T0.Add(time.Hour)) // ended already: unchanged
	if err != nil || !again.EndsAt.Equal(T0.Add(time.Minute)) || again.EndedBy != "eng3" {
		t.Fatalf("EndSilence of an ended one = %+v, %v", again, err)
	}
	_, err = s.EndSilence(ctx, 999, "eng3", T0)
	wantErr(t, "end an unknown silence", err, store.ErrNotFound)
	if !b.Matches("k1", "440305", "offline", T0.Add(90*time.Minute)) || b.Matches("k2", "440305", "offline", T0.Add(90*time.Minute)) ||
		b.Matches("k1", "440305", "offline", T0) || a.Matches("k1", "440305", "offline", T0.Add(time.Minute)) {
		t.Fatal("Silence.Matches")
	}

	// A region's silence: every kiosk under its prefix, none elsewhere; a device or a region,
	// not both, and a prefix of a province, city or county.
	for _, bad := range []store.Silence{
		{DeviceID: "k1", Region: "4403"},
		{},
		{Region: "4"},
		{Region: "44030x"},
	} {
		bad.CreatedBy, bad.StartsAt, bad.EndsAt = "eng1", T0, T0.Add(time.Hour)
		_, err := s.CreateSilence(ctx, bad)
		wantErr(t, fmt.Sprintf("silence of device %q, region %q", bad.DeviceID, bad.Region), err, store.ErrInvalid)
	}
	sz, err := s.CreateSilence(ctx, store.Silence{Region: "4403", Reason: "network works in Shenzhen", CreatedBy: "admin",
		StartsAt: T0, EndsAt: T0.Add(time.Hour)})
	if err != nil || sz.Region != "4403" || sz.DeviceID != "" {
		t.Fatalf("CreateSilence of a region = %+v, %v", sz, err)
	}
	if ss, err := s.ListSilences(ctx, T0.Add(time.Minute)); err != nil || len(ss) != 1 || ss[0] != sz {
		t.Fatalf("ListSilences = %+v, %v; want %+v", ss, err, sz)
	}
	at := T0.Add(time.Minute)
	if !sz.Matches("k7", "440305", "offline", at) || !sz.Matches("k8", "440304", "peripheral-fault", at) ||
		sz.Matches("k9", "440106", "offline", at) || sz.Matches("k7", "440305", "offline", T0.Add(time.Hour)) {
		t.Fatal("Silence.Matches of a region")
	}
	if ended, err := s.EndSilence(ctx, sz.ID, "admin", at); err != nil || ended.Region != "4403" || !ended.EndsAt.Equal(at) {
		t.Fatalf("EndSilence of a region = %+v, %v", ended, err)
	}
}

func testWorkOrders(t *testing.T, s WorkOrderStore) {
	ctx := t.Context()
	Enroll(t, s, "s1", "k1")
	al, _, err := s.RaiseAlert(ctx, store.Alert{DeviceID: "k1", Rule: "peripheral-fault", Subject: "receipt0", Detail: "paper-out", OpenedAt: T0})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.CreateWorkOrder(ctx, store.WorkOrder{AlertID: 999, Assignee: "li", CreatedBy: "eng1", CreatedAt: T0})
	wantErr(t, "unknown alert", err, store.ErrNotFound)
	_, err = s.CreateWorkOrder(ctx, store.WorkOrder{AlertID: al.ID, CreatedBy: "eng1", CreatedAt: T0})
	wantErr(t, "no assignee", err, store.ErrInvalid)
	w, err := s.CreateWorkOrder(ctx, store.WorkOrder{AlertID: al.ID, Assignee: "li", Bring: "paper roll", Note: "side door", CreatedBy: "eng1", CreatedAt: T0})
	if err != nil || w.ID == 0 || w.DeviceID != "k1" || !w.Open {
		t.Fatalf("CreateWorkOrder = %+v, %v", w, err)
	}
	_, err = s.CreateWorkOrder(ctx, store.WorkOrder{AlertID: al.ID, Assignee: "wang", CreatedBy: "eng1", CreatedAt: T0})
	wantErr(t, "a second open work order of the alert", err, store.ErrExists)
	got, err := s.GetWorkOrder(ctx, w.ID)
	if err != nil || got.AlertID != al.ID || got.Assignee != "li" || got.Bring != "paper roll" || got.Note != "side door" || !got.Open ||
		got.CreatedBy != "eng1" || !got.CreatedAt.Equal(T0) || !got.ClosedAt.IsZero() {
		t.Fatalf("GetWorkOrder = %+v, %v", got, err)
	}
	_, err = s.GetWorkOrder(ctx, 999)
	wantErr(t, "unknown work order", err, store.ErrNotFound)
	closed, err := s.CloseWorkOrder(ctx, w.ID, "li", "new roll in", T0.Add(time.Hour))
	if err != nil || closed.Open || closed.ClosedBy != "li" || closed.Closing != "new roll in" || !closed.ClosedAt.Equal(T0.Add(time.Hour)) {
		t.Fatalf("CloseWorkOrder = %+v, %v", closed, err)
	}
	_, err = s.CloseWorkOrder(ctx, w.ID, "li", "", T0.Add(2*time.Hour))
	wantErr(t, "close a closed one", err, store.ErrConflict)
	_, err = s.CloseWorkOrder(ctx, 999, "li", "", T0)
	wantErr(t, "close an unknown one", err, store.ErrNotFound)
	w2, err := s.CreateWorkOrder(ctx, store.WorkOrder{AlertID: al.ID, Assignee: "wang", CreatedBy: "eng1", CreatedAt: T0.Add(3 * time.Hour)})
	if err != nil {
		t.Fatalf("a new work order once the first is closed: %v", err)
	}
	for _, c := range []struct {
		f    store.WorkOrderFilter
		want []int64
	}{
		{store.WorkOrderFilter{}, []int64{w2.ID, w.ID}},
		{store.WorkOrderFilter{Open: true}, []int64{w2.ID}},
		{store.WorkOrderFilter{Assignee: "li"}, []int64{w.ID}},
		{store.WorkOrderFilter{DeviceID: "k2"}, nil},
		{store.WorkOrderFilter{Limit: 1}, []int64{w2.ID}},
	} {
		ws, err := s.ListWorkOrders(ctx, c.f)
		var ids []int64
		for _, x := range ws {
			ids = append(ids, x.ID)
		}
		if err != nil || len(ids) != len(c.want) || (len(ids) > 0 && ids[0] != c.want[0]) {
			t.Errorf("ListWorkOrders(%+v) = %v, %v; want %v", c.f, ids, err, c.want)
		}
	}
}
