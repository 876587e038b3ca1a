package httpapi_test

import (
	"fmt"
	"testing"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/storetest"
	"github.com/kioskfleet/kioskfleet/pkg/api"
)

func TestJournalAndSecurityEvents(t *testing.T) {
	e := newEnv(t)
	e.site(t, "sz-a")
	dev, other := e.enroll(t, "sz-a").DeviceID, e.enroll(t, "sz-a").DeviceID
	var j api.Journal
	e.do(t, "GET", p+"/devices/"+dev+"/journal", opsTok, nil, 200, &j)
	if !j.Intact || j.Index != 0 || j.Events == nil || len(j.Events) != 0 {
		t.Fatalf("journal before any entry: %+v", j)
	}
	h := store.JournalHead{DeviceID: dev, Cursor: 7, Epoch: "e1", Chain: "0123456789abcdef", Index: 3, Hash: "ab", Checkpoint: 3, Entries: 3, Events: 1, UpdatedAt: storetest.T0}
	if err := e.st.AdvanceJournal(t.Context(), h, 0, []store.SecurityEvent{{Kind: "journal.gap", RecordID: 7, Index: 3, Detail: "entries 2..2 are missing", At: storetest.T0}}); err != nil {
		t.Fatal(err)
	}
	if err := e.st.AdvanceJournal(t.Context(), store.JournalHead{DeviceID: other, Cursor: 9, Index: 1}, 0, []store.SecurityEvent{{Kind: "journal.tampered", At: storetest.T0}}); err != nil {
		t.Fatal(err)
	}
	e.do(t, "GET", p+"/devices/"+dev+"/journal", opsTok, nil, 200, &j)
	if j.Intact || j.Index != 3 || j.Checkpoint != 3 || j.Chain != h.Chain || len(j.Events) != 1 || j.Events[0].Kind != "journal.gap" || j.Events[0].DeviceID != dev {
		t.Fatalf("journal: %+v", j)
	}
	var evs api.SecurityEvents
	e.do(t, "GET", p+"/security-events", opsTok, nil, 200, &evs)
	if len(evs.Events) != 2 || evs.Next != evs.Events[1].ID {
		t.Fatalf("security events: %+v", evs)
	}
	e.do(t, "GET", p+"/security-events?device="+other, opsTok, nil, 200, &evs)
	if len(evs.Events) != 1 || evs.Events[0].Kind != "journal.tampered" {
		t.Fatalf("security events of %s: %+v", other, evs)
	}
	e.do(t, "GET", p+fmt.Sprintf("/security-events?after=%d", evs.Next), opsTok, nil, 200, &evs)
	if len(evs.Events) != 0 {
		t.Fatalf("after the last: %+v", evs)
	}
	e.do(t, "GET", p+"/security-events?device=Bad!&limit=0", opsTok, nil, 400, nil)
	e.do(t, "GET", p+"/devices/"+dev+"/journal", "", nil, 401, nil)
}
