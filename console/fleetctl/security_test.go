package fleetctl

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// listSecurityEvents serves the fake hub's security events: a counted TLS flood, a login
// failure, a journal break.
func (h *fakeHub) listSecurityEvents(w http.ResponseWriter, _ *http.Request) {
	h.reply(w, http.StatusOK, api.SecurityEvents{Events: []api.SecurityEvent{
		{ID: 9, Kind: "tls.refused", Source: "*", Count: 48211, At: now.Add(-time.Minute), Last: now.Add(-time.Second), Detail: "tls: bad certificate"},
		{ID: 7, Kind: "login.failed", Staff: "nanshan1", Source: "198.51.100.4", Count: 3, At: now.Add(-time.Hour), Last: now.Add(-time.Hour)},
		{ID: 2, Kind: "journal.break", DeviceID: "kf-0b11d3", RecordID: 88, Count: 1, At: now.Add(-2 * time.Hour), Last: now.Add(-2 * time.Hour), Detail: "entry 12 does not follow 11"},
	}})
}

func TestSecurityEvents(t *testing.T) {
	h := newFakeHub(t)
	run(t, h, nil, "security-events").want(t, 0, []string{"KIND", "tls.refused", "48211", "*", "login.failed", "nanshan1", "198.51.100.4",
		"journal.break", "kf-0b11d3", "entry 12 does not follow 11"}, nil)
	reqs := h.requestsTo("GET", "/api/v1/security-events")
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	if q, _ := url.ParseQuery(reqs[0].Query); q.Get("order") != "newest" || q.Get("limit") != "200" ||
		q.Get("since") != now.Add(-24*time.Hour).Format(time.RFC3339) {
		t.Errorf("default query %+v", reqs)
	}
	run(t, h, nil, "security-events", "--kind", "login", "--staff", "nanshan1", "--device", "kf-0b11d3", "--since", "2026-11-25T00:00:00Z", "--limit", "5").
		want(t, 0, nil, nil)
	if reqs = h.requestsTo("GET", "/api/v1/security-events"); len(reqs) != 2 {
		t.Fatalf("%d requests", len(reqs))
	}
	if q, _ := url.ParseQuery(reqs[1].Query); q.Get("kind") != "login" || q.Get("staff") != "nanshan1" || q.Get("device") != "kf-0b11d3" ||
		q.Get("since") != "2026-11-25T00:00:00Z" || q.Get("limit") != "5" {
		t.Errorf("filtered query %q", reqs[1].Query)
	}
	run(t, h, nil, "security-events", "-o", "json").want(t, 0, []string{`"kind": "tls.refused"`, `"count": 48211`}, nil)
	run(t, h, nil, "security-events", "--since", "yesterday", "--limit", "0").
		want(t, ExitUsage, nil, []string{`--since "yesterday"`, `--limit "0"`})
	if n := len(h.requestsTo("GET", "/api/v1/security-events")); n != 3 {
		t.Errorf("%d requests: an invalid command line reached the hub", n)
	}
}
