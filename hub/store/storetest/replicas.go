package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
)

// ReplicaStore is what the suite of store.Replicas needs of a store.
type ReplicaStore interface {
	store.Replicas
	store.Presence
	store.Devices
}

// RunReplicas runs the suite of store.Replicas.
func RunReplicas(t *testing.T, open func(t *testing.T) ReplicaStore) {
	suite[ReplicaStore]{
		{"PresenceByReplica", testPresenceByReplica},
		{"Leases", testLeases},
		{"Release", testRelease},
		{"Pin", testPin},
	}.run(t, open)
}

func presence(t *testing.T, s ReplicaStore, us ...store.PresenceUpdate) {
	t.Helper()
	if err := s.SetPresences(t.Context(), us); err != nil {
		t.Fatal(err)
	}
}

func device(t *testing.T, s store.Devices, id string) store.Device {
	t.Helper()
	d, err := s.GetDevice(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func on(id, replica string, at time.Time) store.PresenceUpdate {
	return store.PresenceUpdate{DeviceID: id, Online: true, At: at, Replica: replica}
}

func off(id, replica string, at time.Time) store.PresenceUpdate {
	return store.PresenceUpdate{DeviceID: id, Online: false, At: at, Replica: replica}
}

// A kiosk moving from replica a to b: b's online holds, a's late offline does not undo it.
func testPresenceByReplica(t *testing.T, s ReplicaStore) {
	Enroll(t, s, "sz", "k1")
	presence(t, s, on("k1", "a", T0.Add(time.Second)))
	if d := device(t, s, "k1"); !d.Online || d.Replica != "a" {
		t.Fatalf("online at a: online %v replica %q", d.Online, d.Replica)
	}
	presence(t, s, on("k1", "b", T0.Add(3*time.Second)))
	presence(t, s, off("k1", "a", T0.Add(4*time.Second))) // a saw its session end late
	if d := device(t, s, "k1"); !d.Online || d.Replica != "b" || !d.PresenceAt.Equal(T0.Add(3*time.Second)) {
		t.Fatalf("after a's late offline: online %v replica %q at %v; want online at b since T0+3s", d.Online, d.Replica, d.PresenceAt)
	}
	presence(t, s, off("k1", "b", T0.Add(5*time.Second)))
	if d := device(t, s, "k1"); d.Online || d.Replica != "b" {
		t.Fatalf("after b's offline: online %v replica %q; want offline, last held by b", d.Online, d.Replica)
	}
	// An offline change without a replica applies whoever held the session.
	presence(t, s, on("k1", "a", T0.Add(6*time.Second)), off("k1", "", T0.Add(7*time.Second)))
	if d := device(t, s, "k1"); d.Online {
		t.Fatal("offline without a replica not applied")
	}
}

// Leases: a replica that stops renewing has its devices marked offline by a sweep, at its last
// renewal; devices of live replicas stay; a replica whose lease was swept learns it (lapsed).
func testLeases(t *testing.T, s ReplicaStore) {
	ctx := t.Context()
	for _, id := range []string{"k1", "k2", "k3", "k4"} {
		Enroll(t, s, "sz", id)
	}
	const lease = 15 * time.Second
	renew := func(replica string, at time.Time, wantLapsed bool) {
		t.Helper()
		lapsed, err := s.RenewLease(ctx, replica, at, at.Add(lease))
		if err != nil || lapsed != wantLapsed {
			t.Fatalf("RenewLease(%s, T0+%v) = %v, %v; want lapsed %v", replica, at.Sub(T0), lapsed, err, wantLapsed)
		}
	}
	expire := func(at time.Time, want ...string) {
		t.Helper()
		got, err := s.ExpireLeases(ctx, at)
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("ExpireLeases(T0+%v) = %v, %v; want %v", at.Sub(T0), got, err, want)
		}
	}
	renew("a", T0, true) // first renewal: no lease before
	renew("b", T0, true)
	renew("a", T0.Add(5*time.Second), false)
	presence(t, s, on("k1", "a", T0.Add(time.Second)), on("k2", "a", T0.Add(time.Second)), on("k3", "b", T0.Add(time.Second)))
	expire(T0.Add(10 * time.Second)) // every lease live
	renew("b", T0.Add(10*time.Second), false)
	// a last renewed at T0+5s, until T0+20s; b until T0+25s.
	expire(T0.Add(20 * time.Second)) // at its very end a lease still holds
	expire(T0.Add(21*time.Second), "k1", "k2")
	for _, id := range []string{"k1", "k2"} {
		if d := device(t, s, id); d.Online || !d.PresenceAt.Equal(T0.Add(5*time.Second)) {
			t.Fatalf("%s after a's lease ended: online %v at T0+%v; want offline at a's last renewal, T0+5s", id, d.Online, d.PresenceAt.Sub(T0))
		}
	}
	if d := device(t, s, "k3"); !d.Online {
		t.Fatal("k3, at b with a live lease, marked offline")
	}
	// Their sessions end in their histories, lost with a, at a's last renewal.
	if h := history(t, s, "k2", 0); len(h) != 1 || h[0].Replica != "a" || !h[0].StartedAt.Equal(T0.Add(time.Second)) ||
		!h[0].EndedAt.Equal(T0.Add(5*time.Second)) || h[0].Reason != fleet.DisconnectHubLost {
		t.Errorf("k2 history after a's lease ended: %+v", h)
	}
	// k1 reconnected to b before the sweep (at T0+8s): b's report, written after the sweep, holds.
	presence(t, s, on("k1", "b", T0.Add(8*time.Second)))
	if d := device(t, s, "k1"); !d.Online || d.Replica != "b" {
		t.Fatalf("k1 online at b after the sweep: online %v replica %q", d.Online, d.Replica)
	}
	// a was only slow: its next renewal is lapsed, so it reports its sessions again.
	renew("a", T0.Add(22*time.Second), true)
	presence(t, s, on("k2", "a", T0.Add(22*time.Second)))
	if d := device(t, s, "k2"); !d.Online || d.Replica != "a" {
		t.Fatal("k2 not online again after a's lapsed renewal")
	}
	expire(T0.Add(23 * time.Second))
	// A device online under a replica that never had a lease (written before leases existed)
	// is swept at once.
	presence(t, s, store.PresenceUpdate{DeviceID: "k4", Online: true, At: T0.Add(23 * time.Second)})
	expire(T0.Add(24*time.Second), "k4")
	_, err := s.RenewLease(ctx, "", T0, T0)
	wantErr(t, "RenewLease without a replica", err, store.ErrInvalid)
}

// A replica starting again releases what its previous process held, and only that.
func testRelease(t *testing.T, s ReplicaStore) {
	ctx := t.Context()
	for _, id := range []string{"k1", "k2", "k3"} {
		Enroll(t, s, "sz", id)
	}
	for _, r := range []string{"a", "b"} {
		if _, err := s.RenewLease(ctx, r, T0, T0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	presence(t, s, on("k1", "a", T0), on("k2", "a", T0), on("k3", "b", T0), off("k2", "a", T0.Add(time.Second)))
	got, err := s.ReleaseReplica(ctx, "a", T0.Add(2*time.Second))
	if err != nil || !slices.Equal(got, []string{"k1"}) {
		t.Fatalf("ReleaseReplica(a) = %v, %v; want [k1]", got, err)
	}
	if d := device(t, s, "k1"); d.Online || !d.PresenceAt.Equal(T0.Add(2*time.Second)) {
		t.Fatalf("k1 released: online %v at %v", d.Online, d.PresenceAt)
	}
	if d := device(t, s, "k3"); !d.Online {
		t.Fatal("releasing a took b's device offline")
	}
	// The session k1 held with a's previous process ends in its history as lost with the hub.
	if h := history(t, s, "k1", 0); len(h) != 1 || h[0].Replica != "a" || !h[0].StartedAt.Equal(T0) ||
		!h[0].EndedAt.Equal(T0.Add(2*time.Second)) || h[0].Reason != fleet.DisconnectHubLost || h[0].Detail == "" {
		t.Errorf("k1 history after release: %+v", h)
	}
	if h := history(t, s, "k3", 0); len(h) != 0 {
		t.Errorf("k3 history after releasing another replica: %+v", h)
	}
	if lapsed, err := s.RenewLease(ctx, "a", T0.Add(3*time.Second), T0.Add(time.Minute)); err != nil || !lapsed {
		t.Fatalf("RenewLease after release = %v, %v; want lapsed", lapsed, err)
	}
}

func testPin(t *testing.T, s ReplicaStore) {
	ctx := t.Context()
	if err := s.PinFingerprint(ctx, "ca", []byte{1, 2}); err != nil {
		t.Fatal(err)
	}
	if err := s.PinFingerprint(ctx, "ca", []byte{1, 2}); err != nil {
		t.Fatalf("pinning the same value again: %v", err)
	}
	if err := s.PinFingerprint(ctx, "secret", []byte{3}); err != nil {
		t.Fatal(err)
	}
	if err := s.PinFingerprint(ctx, "ca", []byte{1, 3}); !errors.Is(err, store.ErrMismatch) {
		t.Fatalf("pinning another value: %v, want ErrMismatch", err)
	}
}
