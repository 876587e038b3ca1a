package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/agent/shell"
	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/sqlite"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// TestKioskEventsReachTheStream: what a citizen does in the kiosk shell (a guest here: the home
// screen, then logout) becomes events of the unified stream that ride the agent's outbox and
// MQTT to the hub as KindEvent records, and land in the hub's event store exactly once, as kiosk
// events of that kiosk and its site, under a pseudonym, with neither a subject nor an install ID
// kept in the stored record.
func TestKioskEventsReachTheStream(t *testing.T) {
	k := startKioskAgent(t)
	jar, _ := cookiejar.New(nil)
	page := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	call := func(method, path string) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+k.addr+"/shell/api/"+path, nil)
		req.Header.Set(shell.Header, "1")
		res, err := page.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%s %s: %d", method, path, res.StatusCode)
		}
	}
	call("POST", "session/guest")
	call("GET", "services")
	call("POST", "session/end")

	var types []string
	waitFor(t, 30*time.Second, "the kiosk's two events at the hub", func() bool {
		types = types[:0]
		for _, r := range k.h.records(k.id, wire.KindEvent) {
			var e wire.Event
			if err := json.Unmarshal(r.Body, &e); err != nil {
				t.Fatalf("record %d: %v", r.Seq, err)
			}
			if e.Subject != "" || e.AnonymousID != "" {
				t.Fatalf("the stored record keeps who sent it: %s", r.Body)
			}
			types = append(types, e.Type)
		}
		return len(types) >= 2
	})
	if !slices.Equal(types, []string{"view", "logout"}) {
		t.Fatalf("event records %v, want view then logout", types)
	}

	// The hub's event store, read once the hub has stopped.
	k.agent.stop()
	k.h.p.stop()
	st, err := sqlite.Open(context.Background(), filepath.Join(k.h.dir, "hub.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	evs, err := st.ListEvents(context.Background(), store.EventFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 {
		t.Fatalf("%d events stored, want 2 (each once): %+v", len(evs), evs)
	}
	for _, e := range evs {
		if e.Channel != store.ChannelKiosk || e.KioskID != k.id || e.SiteID != "hall-1" || e.Region != "440305" || e.Pseudonym == "" ||
			e.Session == "" || e.Pseudonym != evs[0].Pseudonym {
			t.Fatalf("stored %+v", e)
		}
	}
	if evs[0].Service != "kiosk.home" || evs[1].Props["reason"] != "logout" {
		t.Fatalf("stored %+v", evs)
	}
}
