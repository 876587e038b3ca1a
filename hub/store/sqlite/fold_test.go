package sqlite_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/storetest"
)

// TestFoldExactlyOnce: events committed and not yet folded into the rollups when the store
// closes (a crash) are folded after it opens again, each once however often folds run, and
// folds of more events than one fold transaction takes leave none out.
func TestFoldExactlyOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.db")
	s := open(t, path)
	var evs []store.Event
	for i := range 5000 { // more than one fold transaction takes
		evs = append(evs, storetest.Ev(fmt.Sprintf("e-%d", i), fmt.Sprintf("c%d", i%12), store.EventStart, "svc", 0))
	}
	if _, err := s.CommitEvents(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CommitEvents(t.Context(), []store.Event{storetest.Ev("other-1", "c1", store.EventStart, "other", 0)}); err != nil {
		t.Fatal(err)
	}
	s.Close() // nothing folded yet: no query ran

	s = open(t, path)
	defer s.Close()
	q := store.HeatQuery{From: storetest.T0, To: storetest.T0.Add(time.Hour), By: []string{store.ByService}, MinCitizens: 1}
	for range 2 {
		cells, err := s.Heat(t.Context(), q)
		if err != nil || len(cells) != 2 || cells[0].Service != "other" || cells[0].Events != 1 ||
			cells[1].Events != 5000 || cells[1].Citizens != 12 {
			t.Fatalf("heat %+v, %v", cells, err)
		}
		if got, err := s.CoUsed(t.Context(), []string{"other"}, 1, 5); err != nil || len(got) != 1 || got[0].Citizens != 1 {
			t.Fatalf("co-use %+v, %v", got, err)
		}
		if err := s.FoldRollups(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
}
