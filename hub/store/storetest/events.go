package storetest

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// EventStore is what the events suite needs: the domain, and Records and Devices for kiosks'
// event records.
type EventStore interface {
	store.Events
	store.Records
	store.Devices
}

// RunEvents runs the suite of store.Events.
func RunEvents(t *testing.T, open func(t *testing.T) EventStore) {
	suite[EventStore]{
		{"CommitDedup", testEventsDedup},
		{"RefuseIDNumber", testEventsIDNumber},
		{"HeatSuppressed", testHeat},
		{"Funnel", testFunnel},
		{"SearchMisses", testSearchMisses},
		{"PurgeKeepsRollups", testPurge},
		{"CoUse", testCoUse},
		{"KioskRecords", testEventRecords},
		{"ConcurrentCells", testEventsConcurrent},
		{"RekeyPseudonym", testRekeyPseudonym},
	}.run(t, open)
}

// Ev returns a valid event of citizen (a pseudonym) with the given ID, type and service, at T0
// plus at, on channel web, in region 440305.
func Ev(id, citizen, typ, service string, at time.Duration) store.Event {
	return store.Event{ID: id, Version: 1, Type: typ, Channel: store.ChannelWeb, ClientID: "web-portal", Pseudonym: citizen,
		Session: "s-" + citizen, Service: service, Region: "440305", DeviceTS: T0.Add(at), RecvTS: T0.Add(at + time.Second)}
}

func commitEvents(t *testing.T, s store.Events, evs ...store.Event) []bool {
	t.Helper()
	news, err := s.CommitEvents(t.Context(), evs)
	if err != nil {
		t.Fatal(err)
	}
	return news
}

// citizens returns n events of type typ for service, one per citizen prefix-0..n-1.
func citizens(prefix string, n int, typ, service string, at time.Duration) []store.Event {
	var evs []store.Event
	for i := range n {
		evs = append(evs, Ev(fmt.Sprintf("%s-%s-%s-%d", prefix, typ, service, i), fmt.Sprintf("%s%d", prefix, i), typ, service, at))
	}
	return evs
}

func testEventsDedup(t *testing.T, s EventStore) {
	a, b := Ev("e1", "p1", store.EventView, "svc", 0), Ev("e2", "p1", store.EventStart, "svc", time.Minute)
	b.Props = map[string]string{"step": "2", "form": "残疾人证"}
	other := a
	other.ClientID = "mobile-app" // the same ID from another client is another event
	news := commitEvents(t, s, a, b, a, other)
	if !slices.Equal(news, []bool{true, true, false, true}) {
		t.Fatalf("news %v", news)
	}
	if news := commitEvents(t, s, b, a); !slices.Equal(news, []bool{false, false}) {
		t.Fatalf("resent: news %v", news)
	}
	got, err := s.ListEvents(t.Context(), store.EventFilter{})
	if err != nil || len(got) != 3 {
		t.Fatalf("ListEvents = %d events, %v", len(got), err)
	}
	g := got[1]
	if g.ID != "e2" || g.Type != store.EventStart || g.Pseudonym != "p1" || g.Props["form"] != "残疾人证" || !g.DeviceTS.Equal(b.DeviceTS) ||
		!g.RecvTS.Equal(b.RecvTS) || g.Version != 1 || g.Region != "440305" || g.Seq <= got[0].Seq {
		t.Fatalf("stored %+v", g)
	}
	if got, _ := s.ListEvents(t.Context(), store.EventFilter{AfterSeq: got[0].Seq, Type: store.EventView}); len(got) != 1 || got[0].ClientID != "mobile-app" {
		t.Fatalf("filtered: %+v", got)
	}
	// The rollups counted each event once.
	heat, err := s.Heat(t.Context(), store.HeatQuery{From: T0.Add(-time.Hour), To: T0.Add(time.Hour), MinCitizens: 1})
	if err != nil || len(heat) != 1 || heat[0].Events != 3 || heat[0].Citizens != 1 {
		t.Fatalf("heat %+v, %v", heat, err)
	}
}

// idNumber is a valid GB 11643 number (of the standard's annex).
const idNumber = "11010519491231002X"

func testEventsIDNumber(t *testing.T, s EventStore) {
	for _, mod := range []func(*store.Event){
		func(e *store.Event) { e.Props = map[string]string{"note": "id " + idNumber} },
		func(e *store.Event) { e.Props = map[string]string{"q": "1101 0519 4912 3100 2X"} },
		func(e *store.Event) { e.Props = map[string]string{idNumber: "1"} },
		func(e *store.Event) { e.Session = idNumber },
		func(e *store.Event) { e.ID = "" },
		func(e *store.Event) { e.DeviceTS = time.Time{} },
	} {
		e := Ev("bad", "p1", store.EventSearch, "svc", 0)
		mod(&e)
		_, err := s.CommitEvents(t.Context(), []store.Event{Ev("good", "p1", store.EventView, "svc", 0), e})
		wantErr(t, "CommitEvents", err, store.ErrInvalid)
	}
	if got, _ := s.ListEvents(t.Context(), store.EventFilter{}); len(got) != 0 {
		t.Fatalf("a refused call stored %d events", len(got))
	}
}

func testHeat(t *testing.T, s EventStore) {
	// svc-a: 9 citizens at 08:00 (suppressed), 10 citizens at 09:00 in a sub-region on mobile.
	commitEvents(t, s, citizens("a", 9, store.EventView, "svc-a", 10*time.Minute)...)
	ten := citizens("b", 10, store.EventView, "svc-a", 70*time.Minute)
	for i := range ten {
		ten[i].Channel, ten[i].Region = store.ChannelMobile, "440306"
	}
	ten = append(ten, ten[0]) // the same citizen twice: still 10
	ten[len(ten)-1].ID = "again"
	commitEvents(t, s, ten...)
	day := func(d int) time.Time { return time.Date(2026, 11, 25+d, 0, 0, 0, 0, time.FixedZone("CST", 8*3600)) }
	q := store.HeatQuery{From: T0, To: T0.Add(2 * time.Hour), By: []string{store.ByService, store.ByChannel, store.ByRegion, store.ByHour}, MinCitizens: 10}
	cells, err := s.Heat(t.Context(), q)
	if err != nil || len(cells) != 1 {
		t.Fatalf("heat %+v, %v; want the 09:00 cell only", cells, err)
	}
	if c := cells[0]; c.Service != "svc-a" || c.Channel != store.ChannelMobile || c.Region != "440306" || !c.Hour.Equal(T0.Add(time.Hour)) ||
		c.Events != 11 || c.Citizens != 10 {
		t.Fatalf("cell %+v", c)
	}
	// Over the day (daily rollup) and without grouping by hour or channel: 19 citizens together.
	for _, q := range []store.HeatQuery{
		{From: day(0), To: day(1), By: []string{store.ByService}, MinCitizens: 10},
		{From: T0, To: T0.Add(2 * time.Hour), By: []string{store.ByService}, MinCitizens: 10},
		{From: day(0), To: day(1), Region: "4403", MinCitizens: 10},
	} {
		cells, err := s.Heat(t.Context(), q)
		if err != nil || len(cells) != 1 || cells[0].Citizens != 19 || cells[0].Events != 20 {
			t.Fatalf("heat %+v: %+v, %v", q, cells, err)
		}
	}
	// Filters: the web channel has 9 citizens, suppressed; region 440305 likewise.
	for _, q := range []store.HeatQuery{
		{From: day(0), To: day(1), Channel: store.ChannelWeb, MinCitizens: 10},
		{From: day(0), To: day(1), Region: "440305", MinCitizens: 10},
		{From: day(1), To: day(2), MinCitizens: 1},
	} {
		if cells, err := s.Heat(t.Context(), q); err != nil || len(cells) != 0 {
			t.Fatalf("heat %+v: %+v, %v; want none", q, cells, err)
		}
	}
	if cells, _ := s.Heat(t.Context(), store.HeatQuery{From: day(0), To: day(1), Channel: store.ChannelWeb, MinCitizens: 9}); len(cells) != 1 || cells[0].Citizens != 9 {
		t.Fatalf("heat at k=9: %+v", cells)
	}
}

func testFunnel(t *testing.T, s EventStore) {
	commitEvents(t, s, citizens("f", 30, store.EventView, "svc", 0)...)
	commitEvents(t, s, citizens("f", 20, store.EventStart, "svc", time.Minute)...)
	commitEvents(t, s, citizens("f", 12, store.EventSubmit, "svc", 2*time.Minute)...)
	commitEvents(t, s, citizens("f", 9, store.EventComplete, "svc", 3*time.Minute)...)
	steps, err := s.Funnel(t.Context(), store.FunnelQuery{From: T0, To: T0.Add(time.Hour), MinCitizens: 10})
	if err != nil {
		t.Fatal(err)
	}
	step := func(stage string, n int64) store.FunnelStep {
		return store.FunnelStep{Service: "svc", Stage: stage, Citizens: n}
	}
	want := []store.FunnelStep{step(store.EventView, 30), step(store.EventStart, 20), step(store.EventSubmit, 12)}
	if !slices.Equal(steps, want) {
		t.Fatalf("funnel %+v, want %+v (complete suppressed)", steps, want)
	}
	if steps, _ := s.Funnel(t.Context(), store.FunnelQuery{From: T0, To: T0.Add(time.Hour), Channel: store.ChannelKiosk, MinCitizens: 1}); len(steps) != 0 {
		t.Fatalf("kiosk funnel %+v", steps)
	}
}

func testSearchMisses(t *testing.T, s EventStore) {
	search := func(prefix string, n int, query, results string) []store.Event {
		evs := citizens(prefix, n, store.EventSearch, "", 0)
		for i := range evs {
			evs[i].Props = map[string]string{"query": query, "results": results}
		}
		return evs
	}
	commitEvents(t, s, search("m", 12, "  Dog  LICENCE ", "0")...)
	commitEvents(t, s, search("n", 9, "rare thing", "0")...)
	commitEvents(t, s, search("o", 20, "passport", "3")...)
	got, err := s.SearchMisses(t.Context(), store.MissQuery{From: T0, To: T0.Add(time.Hour), MinCitizens: 10})
	if err != nil || !slices.Equal(got, []store.SearchMiss{{Query: "dog licence", Searches: 12, Citizens: 12}}) {
		t.Fatalf("misses %+v, %v", got, err)
	}
}

func testPurge(t *testing.T, s EventStore) {
	old := citizens("p", 10, store.EventView, "svc", 0)
	fresh := citizens("q", 10, store.EventView, "svc", 48*time.Hour)
	commitEvents(t, s, append(old, fresh...)...)
	q := store.HeatQuery{From: T0.Add(-time.Hour), To: T0.Add(72 * time.Hour), MinCitizens: 10}
	before, _ := s.Heat(t.Context(), q)
	n, err := s.PurgeEvents(t.Context(), T0.Add(24*time.Hour))
	if err != nil || n != 10 {
		t.Fatalf("PurgeEvents = %d, %v", n, err)
	}
	left, _ := s.ListEvents(t.Context(), store.EventFilter{})
	if len(left) != 10 || left[0].Pseudonym != "q0" {
		t.Fatalf("left %d events", len(left))
	}
	after, _ := s.Heat(t.Context(), q)
	if len(before) != 1 || !slices.Equal(before, after) || after[0].Citizens != 20 {
		t.Fatalf("heat before purge %+v, after %+v", before, after)
	}
	// A purged event that comes again is new again: only its ID is forgotten, and the rollups
	// count it a second time; the retention (months) is far beyond any client's retry.
	if n, _ := s.PurgeEvents(t.Context(), T0.Add(24*time.Hour)); n != 0 {
		t.Fatalf("second purge: %d", n)
	}
}

func testCoUse(t *testing.T, s EventStore) {
	// 10 citizens used a then b; 9 used a and c; 12 started d (without a).
	commitEvents(t, s, citizens("u", 10, store.EventStart, "a", 0)...)
	commitEvents(t, s, citizens("u", 10, store.EventSubmit, "b", time.Minute)...)
	commitEvents(t, s, citizens("v", 9, store.EventComplete, "a", 0)...)
	commitEvents(t, s, citizens("v", 9, store.EventStart, "c", 0)...)
	commitEvents(t, s, citizens("w", 12, store.EventStart, "d", 0)...)
	commitEvents(t, s, citizens("u", 10, store.EventView, "e", 0)...) // views are not uses
	// Using a service again adds nothing.
	commitEvents(t, s, citizens("u2", 10, store.EventSubmit, "a", 0)...)
	got, err := s.CoUsed(t.Context(), []string{"a"}, 10, 5)
	if err != nil || !slices.Equal(got, []store.CoUse{{From: "a", To: "b", Citizens: 10}}) {
		t.Fatalf("CoUsed(a) = %+v, %v", got, err)
	}
	if got, _ := s.CoUsed(t.Context(), []string{"b"}, 1, 5); !slices.Equal(got, []store.CoUse{{From: "b", To: "a", Citizens: 10}}) {
		t.Fatalf("CoUsed(b) = %+v", got)
	}
	if got, _ := s.CoUsed(t.Context(), []string{"a", "b"}, 1, 5); !slices.Equal(got, []store.CoUse{{From: "a", To: "c", Citizens: 9}}) {
		t.Fatalf("CoUsed(a, b) = %+v", got)
	}
	used, err := s.ServicesUsed(t.Context(), "u3")
	if err != nil || !slices.Equal(used, []string{"a", "b"}) {
		t.Fatalf("ServicesUsed(u3) = %v, %v", used, err)
	}
	if used, _ := s.ServicesUsed(t.Context(), "nobody"); used == nil || len(used) != 0 {
		t.Fatalf("ServicesUsed(nobody) = %#v", used)
	}
}

// testEventRecords: a kiosk's event record is stored as an event in the transaction that first
// stores the record, once: a resent record, and a new record carrying the same event, add
// nothing; an event the store refuses leaves its record stored.
func testEventRecords(t *testing.T, s EventStore) {
	Enroll(t, s, "sz", "k1")
	rec := func(seq uint64, e store.Event) store.IncomingRecord {
		e.Channel, e.ClientID, e.KioskID, e.SiteID = store.ChannelKiosk, "kiosk-shell", "k1", "sz"
		body, _ := json.Marshal(map[string]string{"id": e.ID})
		return store.IncomingRecord{Record: wire.Record{Seq: seq, Kind: "event", Class: wire.Business, TS: e.DeviceTS.UnixMilli(), Body: body},
			Effect: store.Effect{Event: &e}}
	}
	e := Ev("k-1", "p1", store.EventPrint, "svc", 0)
	bad := Ev("k-2", "p1", store.EventPrint, "svc", 0)
	bad.Props = map[string]string{"n": idNumber}
	b := store.Batch{DeviceID: "k1", Epoch: "e", RecvTS: T0.Add(time.Minute), Records: []store.IncomingRecord{rec(1, e), rec(2, bad)}}
	commit(t, s, b)
	commit(t, s, b)
	b2 := store.Batch{DeviceID: "k1", Epoch: "e", RecvTS: T0.Add(2 * time.Minute), Records: []store.IncomingRecord{rec(3, e)}}
	commit(t, s, b2)
	wantMark(t, s, "k1", "e", 3)
	evs, err := s.ListEvents(t.Context(), store.EventFilter{})
	if err != nil || len(evs) != 1 {
		t.Fatalf("events %+v, %v", evs, err)
	}
	if g := evs[0]; g.ID != "k-1" || g.Channel != store.ChannelKiosk || g.KioskID != "k1" || !g.RecvTS.Equal(T0.Add(time.Minute)) {
		t.Fatalf("event %+v", g)
	}
}

// testEventsConcurrent: commits from many goroutines into the same rollup cells lose no count.
func testEventsConcurrent(t *testing.T, s EventStore) {
	const workers, per = 4, 15
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range per {
				e := Ev(fmt.Sprintf("c%d-%d", w, i), fmt.Sprintf("c%d-%d", w, i), store.EventStart, "svc", 0)
				e2 := Ev(fmt.Sprintf("d%d-%d", w, i), fmt.Sprintf("c%d-%d", w, i), store.EventStart, "other", 0)
				if _, err := s.CommitEvents(t.Context(), []store.Event{e, e2}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	cells, err := s.Heat(t.Context(), store.HeatQuery{From: T0, To: T0.Add(time.Hour), By: []string{store.ByService}, MinCitizens: 1})
	if err != nil || len(cells) != 2 || cells[0].Citizens != workers*per || cells[0].Events != workers*per {
		t.Fatalf("heat %+v, %v", cells, err)
	}
	if got, _ := s.CoUsed(t.Context(), []string{"svc"}, 1, 5); len(got) != 1 || got[0].Citizens != workers*per {
		t.Fatalf("co-use %+v", got)
	}
}

// testRekeyPseudonym: a re-keyed pseudonym has no events nor service use left, its events are
// under the fresh one, the rollups still count them, and others' events are untouched.
func testRekeyPseudonym(t *testing.T, s EventStore) {
	ctx := t.Context()
	commitEvents(t, s, Ev("e1", "p-old", store.EventStart, "a", 0), Ev("e2", "p-old", store.EventSubmit, "b", time.Minute),
		Ev("e3", "p-other", store.EventStart, "a", 0))
	for range 2 { // idempotent
		if err := s.RekeyPseudonym(ctx, "p-old", "p-fresh"); err != nil {
			t.Fatal(err)
		}
	}
	count := func(p string) int {
		t.Helper()
		evs, err := s.ListEvents(ctx, store.EventFilter{Pseudonym: p})
		if err != nil {
			t.Fatal(err)
		}
		return len(evs)
	}
	if o, f, x := count("p-old"), count("p-fresh"), count("p-other"); o != 0 || f != 2 || x != 1 {
		t.Fatalf("events of old, fresh, other = %d, %d, %d; want 0, 2, 1", o, f, x)
	}
	if used, _ := s.ServicesUsed(ctx, "p-old"); len(used) != 0 {
		t.Fatalf("ServicesUsed(old) = %v", used)
	}
	if used, _ := s.ServicesUsed(ctx, "p-other"); !slices.Equal(used, []string{"a"}) {
		t.Fatalf("ServicesUsed(other) = %v", used)
	}
	if got, _ := s.CoUsed(ctx, []string{"a"}, 1, 5); !slices.Equal(got, []store.CoUse{{From: "a", To: "b", Citizens: 1}}) {
		t.Fatalf("CoUsed(a) = %+v: the aggregates stay", got)
	}
}
