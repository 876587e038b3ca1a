package storetest

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

// RunBulk runs the suite of store.Bulk.
func RunBulk(t *testing.T, open func(t *testing.T) store.Bulk) {
	suite[store.Bulk]{
		{"Jobs", testBulkJobs},
		{"Items", testBulkItems},
		{"Claims", testBulkClaims},
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

// testBulkClaims: a kiosk not yet acted on is claimed by one owner at a time; its owner claims it
// again, another owner once the claim ended; a kiosk with a reference, or in another state, is
// never claimed.
func testBulkClaims(t *testing.T, s store.Bulk) {
	ctx := t.Context()
	var items []store.BulkItem
	for _, id := range []string{"k5", "k4", "k3", "k2", "k1"} {
		items = append(items, store.BulkItem{DeviceID: id, State: "queued", UpdatedAt: T0})
	}
	must(t, s.CreateBulkJob(ctx, store.BulkJob{ID: "b1", Key: "key-0001", Action: "desired", Request: json.RawMessage(`{}`), CreatedBy: "eng1",
		Count: 5, CreatedAt: T0, ExpiresAt: T0.Add(time.Hour)}, items))
	must(t, s.UpdateBulkItems(ctx, "b1", []store.BulkItem{
		{DeviceID: "k1", State: "delivered", Ref: "3", UpdatedAt: T0}, // acted on
		{DeviceID: "k5", State: "failed", Error: "kiosk revoked", UpdatedAt: T0},
	}))
	claim := func(owner string, now time.Time, n int) []string {
		t.Helper()
		got, err := s.ClaimBulkItems(ctx, "b1", store.BulkClaim{Owner: owner, State: "queued", Now: now, Until: now.Add(time.Minute), N: n})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, it := range got {
			if it.State != "queued" || it.Ref != "" || !it.UpdatedAt.Equal(T0) {
				t.Fatalf("claimed %+v", it)
			}
			ids = append(ids, it.DeviceID)
		}
		return ids
	}
	check := func(what string, got []string, want ...string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Fatalf("%s: claimed %v, want %v", what, got, want)
		}
	}
	check("a claims 2", claim("a", T0, 2), "k2", "k3")
	check("b claims the rest", claim("b", T0, 10), "k4")
	check("a again, before its claim ends", claim("a", T0.Add(30*time.Second), 10), "k2", "k3")
	check("c, before the claims end", claim("c", T0.Add(59*time.Second), 10))
	must(t, s.UpdateBulkItems(ctx, "b1", []store.BulkItem{{DeviceID: "k2", State: "queued", Ref: "4", UpdatedAt: T0}}))
	check("c, after b's claim ended", claim("c", T0.Add(61*time.Second), 10), "k4")
	check("c, after a's claim ended (k2 has a reference), and its own", claim("c", T0.Add(91*time.Second), 10), "k3", "k4")
	if got, err := s.ClaimBulkItems(ctx, "nope", store.BulkClaim{Owner: "a", State: "queued", Now: T0, Until: T0.Add(time.Minute), N: 10}); err != nil || len(got) != 0 {
		t.Fatalf("ClaimBulkItems(unknown job) = %+v, %v", got, err)
	}
}
