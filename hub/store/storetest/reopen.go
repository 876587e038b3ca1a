package storetest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// Reopen writes one of everything through a store, closes it, opens the same database again (a
// restart, or another replica) and finds it all there, parked records included. open opens the
// backend's database under test, the same one at every call; Reopen closes what it opens.
func Reopen(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := t.Context()
	s := open(t)
	Enroll(t, s, "sz", "k1")
	if _, err := s.CommitBatches(ctx, []store.Batch{NewBatch("k1", "e", 1, 10, 200), NewBatch("k1", "e", 15, 5, 200)}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateCommand(ctx, store.Command{ID: "c1", DeviceID: "k1", Name: "reboot", CreatedAt: T0,
		ExpiresAt: T0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetDesired(ctx, "k1", json.RawMessage(`{"a":1}`), T0); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPresence(ctx, "k1", true, "2.0.0", T0); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t)
	defer s.Close()
	if d, err := s.GetDevice(ctx, "k1"); err != nil || !d.Online || d.AgentVersion != "2.0.0" || d.SiteID != "sz" {
		t.Fatalf("device after reopen: %+v, %v", d, err)
	}
	if up, err := s.Watermark(ctx, "k1", "e"); err != nil || up != 10 {
		t.Fatalf("watermark after reopen = %d, %v; want 10", up, err)
	}
	// The parked records (15..19) survived too: filling the gap jumps to 19.
	m, err := s.CommitBatches(ctx, []store.Batch{NewBatch("k1", "e", 11, 4, 200)})
	if err != nil || m[0].UpTo != 19 {
		t.Fatalf("fill after reopen = %+v, %v; want 19", m, err)
	}
	if rs, err := s.ListRecords(ctx, store.RecordFilter{DeviceID: "k1"}); err != nil || len(rs) != 19 {
		t.Fatalf("records after reopen: %d, %v", len(rs), err)
	}
	if c, err := s.GetCommand(ctx, "c1"); err != nil || c.State != wire.CmdQueued {
		t.Fatalf("command after reopen: %+v, %v", c, err)
	}
	if d, err := s.GetDesired(ctx, "k1"); err != nil || d.Version != 1 {
		t.Fatalf("desired after reopen: %+v, %v", d, err)
	}
	if err := s.Check(ctx); err != nil {
		t.Fatal(err)
	}
}
