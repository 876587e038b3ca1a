package storetest

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

// SecurityEventStore is what the suite of store.SecurityEvents needs: journal events come into
// the same list.
type SecurityEventStore interface {
	store.SecurityEvents
	store.Journal
	store.Devices
}

// RunSecurityEvents runs the suite of store.SecurityEvents.
func RunSecurityEvents(t *testing.T, open func(t *testing.T) SecurityEventStore) {
	suite[SecurityEventStore]{
		{"CountedPerMinute", testSecurityCounted},
		{"Filters", testSecurityFilters},
		{"Prune", testSecurityPrune},
		{"ConcurrentAdd", testSecurityConcurrent},
	}.run(t, open)
}

func listSecurity(t *testing.T, s SecurityEventStore, f store.SecurityEventFilter) []store.SecurityEvent {
	t.Helper()
	evs, err := s.ListSecurityEvents(t.Context(), f)
	if err != nil {
		t.Fatalf("ListSecurityEvents(%+v): %v", f, err)
	}
	return evs
}

func addSecurity(t *testing.T, s SecurityEventStore, evs ...store.SecurityEvent) {
	t.Helper()
	if err := s.AddSecurityEvents(t.Context(), evs); err != nil {
		t.Fatalf("AddSecurityEvents: %v", err)
	}
}

// Events of one kind, device, staff and source in one minute are one row with their count, the
// first and last time and the latest detail; another minute, source or device is another row.
// A refusal may name no kiosk, or one the hub does not know.
func testSecurityCounted(t *testing.T, s SecurityEventStore) {
	ctx := t.Context()
	wantErr(t, "AddSecurityEvents without a kind", s.AddSecurityEvents(ctx, []store.SecurityEvent{{At: T0}}), store.ErrInvalid)
	wantErr(t, "AddSecurityEvents without a time", s.AddSecurityEvents(ctx, []store.SecurityEvent{{Kind: "tls.refused"}}), store.ErrInvalid)
	if got := listSecurity(t, s, store.SecurityEventFilter{}); len(got) != 0 {
		t.Fatalf("a refused batch wrote %d rows", len(got))
	}
	tls := func(at time.Time, src string, n int64, detail string) store.SecurityEvent {
		return store.SecurityEvent{Kind: "tls.refused", Source: src, Count: n, At: at, Detail: detail}
	}
	addSecurity(t, s, tls(T0.Add(10*time.Second), "10.0.0.9", 500, "bad certificate"), tls(T0.Add(40*time.Second), "10.0.0.9", 0, "expired"))
	addSecurity(t, s, tls(T0.Add(5*time.Second), "10.0.0.9", 7, "unknown authority"),
		tls(T0.Add(70*time.Second), "10.0.0.9", 1, "next minute"), tls(T0.Add(20*time.Second), "10.0.0.10", 1, "other address"),
		store.SecurityEvent{Kind: "mqtt.acl-denied", DeviceID: "no-such-kiosk", Source: "10.0.0.9", At: T0})
	got := listSecurity(t, s, store.SecurityEventFilter{})
	if len(got) != 4 {
		t.Fatalf("%d rows, want 4: %+v", len(got), got)
	}
	first := got[0]
	if first.Kind != "tls.refused" || first.Source != "10.0.0.9" || first.Count != 508 || first.DeviceID != "" ||
		!first.At.Equal(T0.Add(5*time.Second)) || !first.Last.Equal(T0.Add(40*time.Second)) || first.Detail != "unknown authority" {
		t.Fatalf("merged row %+v: want 508 refusals from 10.0.0.9 between T0+5s and T0+40s, the latest detail", first)
	}
	if got[1].Count != 1 || got[1].Detail != "next minute" || got[2].Source != "10.0.0.10" || got[3].DeviceID != "no-such-kiosk" {
		t.Fatalf("rows %+v", got[1:])
	}
	if got[3].Count != 1 || !got[3].Last.Equal(T0) {
		t.Fatalf("a single event: %+v, want count 1 and last = at", got[3])
	}
}

// The list selects by device, staff, kind or family, time and ID, oldest or newest first, and
// holds the journal verifier's events too.
func testSecurityFilters(t *testing.T, s SecurityEventStore) {
	ctx := t.Context()
	Enroll(t, s, "sz", "k1")
	if err := s.AdvanceJournal(ctx, head("k1", 5, 1), 0, []store.SecurityEvent{{Kind: "journal.break", RecordID: 5, Index: 1, Detail: "chain broken", At: T0}}); err != nil {
		t.Fatal(err)
	}
	addSecurity(t, s,
		store.SecurityEvent{Kind: "login.failed", Staff: "eng1", Source: "192.0.2.1", At: T0.Add(time.Minute)},
		store.SecurityEvent{Kind: "login.locked", Staff: "eng1", At: T0.Add(2 * time.Minute)},
		store.SecurityEvent{Kind: "mqtt.acl-denied", DeviceID: "k1", Source: "192.0.2.7", At: T0.Add(3 * time.Minute)},
		store.SecurityEvent{Kind: "device.revoked", DeviceID: "k1", Staff: "admin", At: T0.Add(4 * time.Minute)},
		store.SecurityEvent{Kind: "loginx.other", At: T0.Add(5 * time.Minute)})
	all := listSecurity(t, s, store.SecurityEventFilter{})
	if len(all) != 6 || all[0].Kind != "journal.break" || all[0].Count != 1 || !all[0].Last.Equal(T0) || all[0].RecordID != 5 {
		t.Fatalf("all = %+v", all)
	}
	kinds := func(evs []store.SecurityEvent) (out []string) {
		for _, e := range evs {
			out = append(out, e.Kind)
		}
		return out
	}
	for _, tc := range []struct {
		f    store.SecurityEventFilter
		want []string
	}{
		{store.SecurityEventFilter{DeviceID: "k1"}, []string{"journal.break", "mqtt.acl-denied", "device.revoked"}},
		{store.SecurityEventFilter{Staff: "eng1"}, []string{"login.failed", "login.locked"}},
		{store.SecurityEventFilter{Kind: "login"}, []string{"login.failed", "login.locked"}},
		{store.SecurityEventFilter{Kind: "login.locked"}, []string{"login.locked"}},
		{store.SecurityEventFilter{Kind: "journal.break", DeviceID: "k1"}, []string{"journal.break"}},
		{store.SecurityEventFilter{Since: T0.Add(3 * time.Minute)}, []string{"mqtt.acl-denied", "device.revoked", "loginx.other"}},
		{store.SecurityEventFilter{AfterID: all[3].ID}, []string{"device.revoked", "loginx.other"}},
		{store.SecurityEventFilter{Newest: true, Limit: 2}, []string{"loginx.other", "device.revoked"}},
		{store.SecurityEventFilter{DeviceID: "k2"}, nil},
	} {
		if got := kinds(listSecurity(t, s, tc.f)); !slices.Equal(got, tc.want) {
			t.Errorf("ListSecurityEvents(%+v) = %v, want %v", tc.f, got, tc.want)
		}
	}
}

// Pruning deletes the counted rows last seen before a time, and the oldest beyond a number;
// never a journal event.
func testSecurityPrune(t *testing.T, s SecurityEventStore) {
	ctx := t.Context()
	Enroll(t, s, "sz", "k1")
	if err := s.AdvanceJournal(ctx, head("k1", 5, 1), 0, []store.SecurityEvent{{Kind: "journal.gap", RecordID: 5, At: T0}}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		addSecurity(t, s, store.SecurityEvent{Kind: "tls.refused", Source: "192.0.2.1", At: T0.Add(time.Duration(i) * time.Minute)})
	}
	n, err := s.PruneSecurityEvents(ctx, T0.Add(2*time.Minute), 0)
	if err != nil || n != 2 {
		t.Fatalf("PruneSecurityEvents(before T0+2m) = %d, %v; want 2", n, err)
	}
	if n, err = s.PruneSecurityEvents(ctx, T0, 2); err != nil || n != 1 {
		t.Fatalf("PruneSecurityEvents(keep 2) = %d, %v; want 1", n, err)
	}
	got := listSecurity(t, s, store.SecurityEventFilter{})
	if len(got) != 3 || got[0].Kind != "journal.gap" || !got[1].At.Equal(T0.Add(3*time.Minute)) || !got[2].At.Equal(T0.Add(4*time.Minute)) {
		t.Fatalf("after pruning: %+v", got)
	}
	if n, err = s.PruneSecurityEvents(ctx, T0, 5); err != nil || n != 0 {
		t.Fatalf("PruneSecurityEvents with nothing to prune = %d, %v", n, err)
	}
}

// Hub replicas adding the same key at once: every count is kept, in one row.
func testSecurityConcurrent(t *testing.T, s SecurityEventStore) {
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 5 {
				if err := s.AddSecurityEvents(t.Context(), []store.SecurityEvent{{Kind: "tls.refused", Source: "192.0.2.1", Count: 3, At: T0}}); err != nil {
					t.Errorf("AddSecurityEvents: %v", err)
				}
			}
		})
	}
	wg.Wait()
	got := listSecurity(t, s, store.SecurityEventFilter{})
	if len(got) != 1 || got[0].Count != 8*5*3 {
		t.Fatalf("rows %+v, want one of count %d", got, 8*5*3)
	}
}
