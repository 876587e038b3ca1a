package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/console/web"
	"github.com/kioskfleet/kioskfleet/console/web/webtest"
	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// dataHub is webtest's hub for the fleet, with canned answers for the data pages; like a hub
// that misbehaves, it sends cells of 9 citizens too, which the console must leave out anyway.
type dataHub struct {
	*api.Client
	mu       sync.Mutex
	resolved []string
}

func hour(h int) *time.Time {
	t := time.Date(2026, 11, 25, h, 0, 0, 0, time.UTC)
	return &t
}

func (*dataHub) Heat(_ context.Context, q api.AnalyticsQuery) (api.Heat, error) {
	cells := []api.HeatCell{
		{Service: "hukou.transfer", Channel: "kiosk", Region: "440304", Hour: hour(2), Events: 40, Citizens: 25},
		{Service: "hukou.transfer", Channel: "web", Region: "440304", Hour: hour(3), Events: 12, Citizens: 10},
		{Service: "secret.nine", Channel: "web", Region: "440305", Hour: hour(3), Events: 9, Citizens: 9},
	}
	if len(q.By) > 0 && q.By[len(q.By)-1] != "hour" {
		for i := range cells {
			cells[i].Hour = nil
		}
	}
	return api.Heat{K: 10, By: q.By, Cells: cells}, nil
}

func (*dataHub) Funnel(context.Context, api.AnalyticsQuery) (api.Funnel, error) {
	return api.Funnel{K: 10, Steps: []api.FunnelStep{{Service: "hukou.transfer", Stage: "view", Citizens: 200},
		{Service: "hukou.transfer", Stage: "start", Citizens: 80}, {Service: "hukou.transfer", Stage: "complete", Citizens: 9}}}, nil
}

func (*dataHub) SearchMisses(context.Context, api.AnalyticsQuery) (api.SearchMisses, error) {
	return api.SearchMisses{K: 10, Misses: []api.SearchMiss{{Query: "=cmd|calc", Searches: 30, Citizens: 12}, {Query: "nine people", Searches: 9, Citizens: 9}}}, nil
}

func (*dataHub) CoUse(_ context.Context, service string) (api.CoUses, error) {
	return api.CoUses{K: 10, Pairs: []api.CoUse{{From: service, To: "social-security.transfer", Citizens: 40}, {From: service, To: "nine.only", Citizens: 9}}}, nil
}

func (*dataHub) RatingSummary(_ context.Context, q api.AnalyticsQuery) (api.RatingSummary, error) {
	return api.RatingSummary{By: q.By[0], K: 10, Groups: []api.RatingGroup{{Key: "hukou.transfer", Ratings: 30, Citizens: 28, Average: 4.25, Bad: 2,
		Scores: [5]int64{1, 1, 2, 10, 16}}, {Key: "tiny.service", Ratings: 9, Citizens: 9, Average: 1}}}, nil
}

func (h *dataHub) FollowUps(context.Context, bool) (api.FollowUps, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.resolved) > 0 {
		return api.FollowUps{FollowUps: []api.FollowUp{}}, nil
	}
	return api.FollowUps{FollowUps: []api.FollowUp{{Rating: api.Rating{ID: "rating-1", Service: "hukou.transfer", Channel: "kiosk", SiteID: "sz-futian-1",
		Score: 1, Tags: []string{"慢"}, Comment: "等了两个小时", CaseID: "case-9"}, Due: time.Now().Add(-time.Hour), Overdue: true}}}, nil
}

func (h *dataHub) ResolveFollowUp(_ context.Context, id, note string) (api.FollowUps, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.resolved = append(h.resolved, id+":"+note)
	return api.FollowUps{}, nil
}

var _ web.DataHub = (*dataHub)(nil)

// TestDataPages: the heat map, funnels, ratings and recommendations render, with their charts;
// no cell of fewer than 10 citizens shows on a page or in an export, even when the hub sends one;
// a follow-up is resolved through the page's form.
func TestDataPages(t *testing.T) {
	fleet := webtest.NewHub(t)
	hub := &dataHub{Client: fleet.Client()}
	c := newConsoleFor(t, fleet, hub)
	for _, path := range []string{"/data/heat", "/data/funnel", "/data/ratings", "/data/recommendations?service=hukou.transfer",
		"/data/export/heat.csv", "/data/export/funnel.csv", "/data/export/ratings.csv", "/data/export/search-misses.csv"} {
		status, body := c.get(path + map[bool]string{true: "&", false: "?"}[strings.Contains(path, "?")] + "lang=en")
		if status != http.StatusOK {
			t.Fatalf("%s: %d\n%s", path, status, body)
		}
		for _, nine := range []string{"secret.nine", "nine people", "nine.only", "tiny.service", ">9</td>", ",9\r\n", ",9\n"} {
			if strings.Contains(body, nine) {
				t.Errorf("%s shows a cell of 9 citizens (%q)", path, nine)
			}
		}
		if strings.Contains(path, "csv") && strings.Contains(body, "\n=") {
			t.Errorf("%s: a formula cell is not defused:\n%s", path, body)
		}
	}
	_, heat := c.get("/data/heat?lang=en")
	for _, want := range []string{`<table class="heatmap">`, `class="h`, "<svg", "hukou.transfer", "Cells of fewer than 10 citizens"} {
		if !strings.Contains(heat, want) {
			t.Errorf("heat page lacks %q", want)
		}
	}
	_, funnel := c.get("/data/funnel?lang=en")
	if !strings.Contains(funnel, "40%") || !strings.Contains(funnel, "<svg") || strings.Contains(funnel, ">9") {
		t.Errorf("funnel page:\n%s", funnel)
	}
	_, recs := c.get("/data/recommendations?service=hukou.transfer&lang=en")
	if !strings.Contains(recs, "social-security.transfer") || !strings.Contains(recs, "=cmd|calc") {
		t.Errorf("recommendations page:\n%s", recs)
	}
	_, csv := c.get("/data/export/search-misses.csv")
	if !strings.Contains(csv, "'=cmd|calc,30,12") {
		t.Errorf("search misses CSV:\n%s", csv)
	}
	// A follow-up, overdue, resolved through the form.
	_, ratings := c.get("/data/ratings?lang=en")
	if !strings.Contains(ratings, "Overdue") || !strings.Contains(ratings, "等了两个小时") || !strings.Contains(ratings, "4.25") {
		t.Fatalf("ratings page:\n%s", ratings)
	}
	tok := csrfField.FindStringSubmatch(ratings)
	if tok == nil {
		t.Fatal("no csrf field on the ratings page")
	}
	status, _, hdr := c.post("/data/ratings/follow-ups/rating-1/resolve", url.Values{"csrf": {tok[1]}, "note": {"已回访"}})
	if status != http.StatusSeeOther || hdr.Get("Location") != "/data/ratings?resolved=1" {
		t.Fatalf("resolve: %d %v", status, hdr)
	}
	if status, _, _ := c.post("/data/ratings/follow-ups/rating-1/resolve", url.Values{"csrf": {"forged"}}); status != http.StatusForbidden {
		t.Fatalf("resolve without the token: %d", status)
	}
	hub.mu.Lock()
	defer hub.mu.Unlock()
	if len(hub.resolved) != 1 || hub.resolved[0] != "rating-1:已回访" {
		t.Fatalf("resolved %v", hub.resolved)
	}
}
