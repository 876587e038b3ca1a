package fleetctl

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// dataHub answers the analytics and rating endpoints with canned bodies and records queries.
type dataHub struct {
	mu      sync.Mutex
	queries []string
}

func (d *dataHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	d.queries = append(d.queries, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
	d.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+testToken {
		w.WriteHeader(http.StatusUnauthorized)
		json.NewEncoder(w).Encode(api.ErrorBody{Error: api.Error{Code: "unauthorized", Message: "a valid bearer token is required"}})
		return
	}
	h := time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC)
	var out any
	switch r.URL.Path {
	case api.Prefix + "/analytics/heat":
		out = api.Heat{K: 10, Cells: []api.HeatCell{{Service: "hukou.transfer", Region: "440304", Hour: &h, Events: 40, Citizens: 25}}}
	case api.Prefix + "/analytics/funnel":
		out = api.Funnel{K: 10, Steps: []api.FunnelStep{{Service: "hukou.transfer", Stage: "view", Citizens: 200}}}
	case api.Prefix + "/analytics/search-misses":
		out = api.SearchMisses{K: 10, Misses: []api.SearchMiss{{Query: "dog licence", Searches: 30, Citizens: 12}}}
	case api.Prefix + "/ratings/summary":
		out = api.RatingSummary{By: r.URL.Query().Get("by"), K: 10, Groups: []api.RatingGroup{{Key: "公安局", Ratings: 30, Citizens: 28, Average: 4.25, Bad: 2,
			Scores: [5]int64{1, 1, 2, 10, 16}}}}
	case api.Prefix + "/ratings/follow-ups", api.Prefix + "/ratings/follow-ups/rating-1/resolve":
		out = api.FollowUps{FollowUps: []api.FollowUp{{Rating: api.Rating{ID: "rating-1", Service: "hukou.transfer", Channel: "kiosk", Score: 1,
			Comment: "等了两个小时"}, Due: h, Overdue: true}}}
	default:
		w.WriteHeader(http.StatusNotFound)
		json.NewEncoder(w).Encode(api.ErrorBody{Error: api.Error{Code: "not_found", Message: "no such endpoint"}})
		return
	}
	json.NewEncoder(w).Encode(out)
}

func TestDataCommands(t *testing.T) {
	d := &dataHub{}
	srv := httptest.NewServer(d)
	t.Cleanup(srv.Close)
	env := map[string]string{"KF_HUB": srv.URL}
	run(t, nil, env, "events", "heat", "--by", "service,region,hour", "--from", "2026-11-25", "--region", "4403").
		want(t, 0, []string{"SERVICE", "CITIZENS", "hukou.transfer", "440304", "2026-11-25 09:00", "25"}, nil)
	run(t, nil, env, "events", "heat", "--by", "colour").want(t, 2, nil, []string{`--by "colour"`})
	run(t, nil, env, "events", "funnel", "--service", "hukou.transfer").want(t, 0, []string{"view", "200"}, nil)
	run(t, nil, env, "events", "misses").want(t, 0, []string{"dog licence", "12"}, nil)
	run(t, nil, env, "ratings", "summary", "--by", "department").want(t, 0, []string{"DEPARTMENT", "公安局", "4.25"}, nil)
	run(t, nil, env, "ratings", "follow-ups").want(t, 0, []string{"rating-1", "OVERDUE", "等了两个小时"}, nil)
	run(t, nil, env, "ratings", "resolve", "rating-1").want(t, 2, nil, []string{"--note"})
	run(t, nil, env, "ratings", "resolve", "rating-1", "--note", "called back").want(t, 0, []string{"rating-1"}, nil)
	d.mu.Lock()
	defer d.mu.Unlock()
	want := []string{
		"GET /api/v1/analytics/heat?by=service%2Cregion%2Chour&from=2026-11-25&region=4403",
		"GET /api/v1/analytics/funnel?service=hukou.transfer",
		"GET /api/v1/analytics/search-misses?",
		"GET /api/v1/ratings/summary?by=department",
		"GET /api/v1/ratings/follow-ups?",
		"POST /api/v1/ratings/follow-ups/rating-1/resolve?",
	}
	if len(d.queries) != len(want) {
		t.Fatalf("queries %q", d.queries)
	}
	for i := range want {
		if d.queries[i] != want[i] {
			t.Errorf("query %d: %q, want %q", i, d.queries[i], want[i])
		}
	}
}
