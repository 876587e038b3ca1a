package storetest

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

// RolloutStore is what the rollouts suite needs: rollouts, and devices to tag.
type RolloutStore interface {
	store.Rollouts
	store.Devices
}

// RunRollouts runs the suite of store.Rollouts.
func RunRollouts(t *testing.T, open func(t *testing.T) RolloutStore) {
	suite[RolloutStore]{
		{"Rollouts", testRollouts},
		{"Tags", testTags},
	}.run(t, open)
}

func testRollouts(t *testing.T, s RolloutStore) {
	ctx := t.Context()
	r := store.Rollout{ID: "r1", Kind: "bundle", App: "tax-print", Version: "1.4.0", State: "running", Spec: json.RawMessage(`{"waves":[1,100]}`),
		CreatedBy: "u-op", CreatedAt: T0}
	var ds []store.RolloutDevice
	for i, id := range []string{"k3", "k1", "k2"} {
		ds = append(ds, store.RolloutDevice{DeviceID: id, Wave: i % 2, Previous: "1.3.0", State: "waiting", UpdatedAt: T0})
	}
	must(t, s.CreateRollout(ctx, r, ds))
	wantErr(t, "duplicate rollout", s.CreateRollout(ctx, r, nil), store.ErrExists)
	must(t, s.CreateRollout(ctx, store.Rollout{ID: "r0", Kind: "agent", App: "kiosk-agent", Version: "0.2.0", State: "completed", CreatedAt: T0.Add(-time.Hour)}, nil))
	got, err := s.GetRollout(ctx, "r1")
	if err != nil || got.Rev != 1 || got.State != "running" || string(got.Spec) != `{"waves":[1,100]}` || string(got.Progress) != `{}` || !got.CreatedAt.Equal(T0) {
		t.Fatalf("GetRollout = %+v, %v", got, err)
	}
	_, err = s.GetRollout(ctx, "nope")
	wantErr(t, "unknown rollout", err, store.ErrNotFound)
	all, _ := s.ListRollouts(ctx)
	active, _ := s.ListRollouts(ctx, "running", "paused")
	if len(all) != 2 || all[0].ID != "r1" || len(active) != 1 || active[0].ID != "r1" {
		t.Fatalf("ListRollouts: all %v, active %v", all, active)
	}
	got.State, got.Wave, got.Progress, got.Reason, got.UpdatedAt = "paused", 1, json.RawMessage(`{"started":[1]}`), "by hand", T0.Add(time.Minute)
	upd, err := s.UpdateRollout(ctx, got)
	if err != nil || upd.Rev != 2 {
		t.Fatalf("UpdateRollout = %+v, %v", upd, err)
	}
	_, err = s.UpdateRollout(ctx, got) // the old revision
	wantErr(t, "update from a stale revision", err, store.ErrStale)
	_, err = s.UpdateRollout(ctx, store.Rollout{ID: "nope", Rev: 1})
	wantErr(t, "update of an unknown rollout", err, store.ErrNotFound)
	again, _ := s.GetRollout(ctx, "r1")
	if again.State != "paused" || again.Wave != 1 || string(again.Progress) != `{"started":[1]}` || again.Reason != "by hand" || again.Rev != 2 {
		t.Fatalf("after update: %+v", again)
	}
	devs, err := s.RolloutDevices(ctx, "r1")
	var ids []string
	for _, d := range devs {
		ids = append(ids, d.DeviceID)
	}
	if err != nil || !slices.Equal(ids, []string{"k2", "k3", "k1"}) || devs[0].Previous != "1.3.0" {
		t.Fatalf("RolloutDevices = %v, %v: want by wave, then ID", ids, err)
	}
	must(t, s.UpdateRolloutDevices(ctx, "r1", []store.RolloutDevice{{DeviceID: "k1", State: "failed", Error: "health", Previous: "1.3.0", UpdatedAt: T0.Add(time.Hour)}}))
	devs, _ = s.RolloutDevices(ctx, "r1")
	if d := devs[2]; d.State != "failed" || d.Error != "health" || !d.UpdatedAt.Equal(T0.Add(time.Hour)) || d.Wave != 1 {
		t.Fatalf("after UpdateRolloutDevices: %+v", d)
	}
}

func testTags(t *testing.T, s RolloutStore) {
	ctx := t.Context()
	Enroll(t, s, "sz", "k1")
	Enroll(t, s, "sz", "k2")
	must(t, s.SetTags(ctx, "k1", []string{"pilot", "lobby"}))
	must(t, s.SetTags(ctx, "k2", []string{"pilot"}))
	must(t, s.SetTags(ctx, "k2", []string{"basement"})) // replaces
	wantErr(t, "tags of an unknown device", s.SetTags(ctx, "nope", []string{"x"}), store.ErrNotFound)
	tags, err := s.Tags(ctx)
	if err != nil || !slices.Equal(tags["k1"], []string{"lobby", "pilot"}) || !slices.Equal(tags["k2"], []string{"basement"}) {
		t.Fatalf("Tags = %v, %v", tags, err)
	}
	must(t, s.SetTags(ctx, "k1", nil))
	if tags, _ := s.Tags(ctx); len(tags["k1"]) != 0 {
		t.Fatalf("k1 untagged, still %v", tags["k1"])
	}
}
