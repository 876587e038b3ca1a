package storetest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

// RunBulk runs the suite of store.Bulk.
func RunBulk(t *testing.T, open func(t *testing.T) store.Bulk) {
	suite[store.Bulk]{
		{"Jobs", testBulkJobs},
		{"Items", testBulkItems},
	}.run(t, open)
}

func testBulkJobs(t *testing.T, s store.Bulk) {
	ctx := t.Context()
	j := store.BulkJob{ID: "b1", Key: "key-0001", Action: "desired", Request: json.RawMessage(`{"desired":{"volume":3}}`),
		Scope: []string{"440305", "4403"}, CreatedBy: "eng1", Roles: "fieldops", Source: "192.0.2.7", Count: 2,
		CreatedAt: T0, ExpiresAt: T0.Add(time.Hour)}
	must(t, s.CreateBulkJob(ctx, j, []store.BulkItem{{DeviceID: "k2", State: "queued", UpdatedAt: T0}, {DeviceID: "k1", State: "queued", UpdatedAt: T0}}))
	wantErr(t, "duplicate ID", s.CreateBulkJob(ctx, store.BulkJob{ID: "b1", Key: "other-key", Action: "revoke", CreatedBy: "eng1"}, nil), store.ErrExists)
	wantErr(t, "the same key again", s.CreateBulkJob(ctx, store.BulkJob{ID: "b2", Key: "key-0001", Action: "revoke", CreatedBy: "eng1"}, nil), store.ErrExists)
	wantErr(t, "no key", s.CreateBulkJob(ctx, store.BulkJob{ID: "b3", Action: "revoke", CreatedBy: "eng1"}, nil), store.ErrInvalid)
	// The key is the creator's: another staff member may use the same one.
	must(t, s.CreateBulkJob(ctx, store.BulkJob{ID: "b2", Key: "key-0001", Action: "revoke", Request: json.RawMessage(`{}`), CreatedBy: "eng2",
		CreatedAt: T0.Add(time.Minute), ExpiresAt: T0.Add(2 * time.Hour)}, nil))

	got, err := s.GetBulkJob(ctx, "b1")
	if err != nil || got.Key != j.Key || got.Action != "desired" || string(got.Request) != string(j.Request) || len(got.Scope) != 2 ||
		got.Scope[1] != "4403" || got.CreatedBy != "eng1" || got.Roles != "fieldops" || got.Source != "192.0.2.7" || got.Count != 2 ||
		!got.CreatedAt.Equal(T0) || !got.ExpiresAt.Equal(T0.Add(time.Hour)) || !got.DoneAt.IsZero() {
		t.Fatalf("GetBulkJob = %+v, %v", got, err)
	}
	_, err = s.GetBulkJob(ctx, "nope")
	wantErr(t, "unknown job", err, store.ErrNotFound)
	if byKey, err := s.BulkJobByKey(ctx, "eng2", "key-0001"); err != nil || byKey.ID != "b2" || byKey.Scope != nil {
		t.Fatalf("BulkJobByKey(eng2) = %+v, %v", byKey, err)
	}
	_, err = s.BulkJobByKey(ctx, "eng3", "key-0001")
	wantErr(t, "another's key", err, store.ErrNotFound)

	must(t, s.FinishBulkJob(ctx, "b2", T0.Add(3*time.Minute)))
	wantErr(t, "finish an unknown job", s.FinishBulkJob(ctx, "nope", T0), store.ErrNotFound)
	all, err := s.ListBulkJobs(ctx, false, 0)
	if err != nil || len(all) != 2 || all[0].ID != "b2" || all[1].ID != "b1" || !all[0].DoneAt.Equal(T0.Add(3*time.Minute)) {
		t.Fatalf("ListBulkJobs(all) = %+v, %v", all, err)
	}
	running, err := s.ListBulkJobs(ctx, true, 0)
	if err != nil || len(running) != 1 || running[0].ID != "b1" {
		t.Fatalf("ListBulkJobs(unfinished) = %+v, %v", running, err)
	}
	if one, _ := s.ListBulkJobs(ctx, false, 1); len(one) != 1 || one[0].ID != "b2" {
		t.Fatalf("ListBulkJobs(limit 1) = %+v", one)
	}
}

func testBulkItems(t *testing.T, s store.Bulk) {
	ctx := t.Context()
	var items []store.BulkItem
	for _, id := range []string{"k3", "k1", "k2"} {
		items = append(items, store.BulkItem{DeviceID: id, State: "queued", UpdatedAt: T0})
	}
	must(t, s.CreateBulkJob(ctx, store.BulkJob{ID: "b1", Key: "key-0001", Action: "command", Request: json.RawMessage(`{}`), CreatedBy: "eng1",
		Count: 3, CreatedAt: T0, ExpiresAt: T0.Add(time.Hour)}, items))
	must(t, s.UpdateBulkItems(ctx, "b1", []store.BulkItem{
		{DeviceID: "k1", State: "delivered", Ref: "c-1", UpdatedAt: T0.Add(time.Second)},
		{DeviceID: "k3", State: "failed", Ref: "c-3", Error: "device revoked", UpdatedAt: T0.Add(2 * time.Second)},
	}))
	must(t, s.UpdateBulkItems(ctx, "b1", nil))
	got, err := s.BulkItems(ctx, "b1")
	if err != nil || len(got) != 3 {
		t.Fatalf("BulkItems = %+v, %v", got, err)
	}
	want := []store.BulkItem{
		{DeviceID: "k1", State: "delivered", Ref: "c-1", UpdatedAt: T0.Add(time.Second)},
		{DeviceID: "k2", State: "queued", UpdatedAt: T0},
		{DeviceID: "k3", State: "failed", Ref: "c-3", Error: "device revoked", UpdatedAt: T0.Add(2 * time.Second)},
	}
	for i, w := range want {
		g := got[i]
		if g.DeviceID != w.DeviceID || g.State != w.State || g.Ref != w.Ref || g.Error != w.Error || !g.UpdatedAt.Equal(w.UpdatedAt) {
			t.Fatalf("item %d = %+v, want %+v", i, g, w)
		}
	}
	if none, err := s.BulkItems(ctx, "nope"); err != nil || len(none) != 0 {
		t.Fatalf("BulkItems(unknown job) = %+v, %v", none, err)
	}
}
