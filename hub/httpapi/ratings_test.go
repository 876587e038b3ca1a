package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// TestRatings: a citizen rates her case at the kiosk (its site, service and department come
// along); a bad rating opens a follow-up that turns overdue and is resolved; the summary leaves
// out groups of fewer than 10 citizens.
func TestRatings(t *testing.T) {
	e := newEvEnv(t, false)
	var c api.Case
	e.call(t, "POST", "/cases", dept, api.CreateCase{Ref: "R-1", Service: "hukou.transfer", Department: "公安局", Title: "户口迁移", CitizenToken: aliceWeb}, &c)
	var r api.Rating
	status, ae := e.call(t, "POST", "/me/ratings", bearer(aliceKiosk), api.RateService{CaseID: c.ID, Score: 2, Tags: []string{"慢", "慢"}, Comment: "排队太久"}, &r)
	if status != http.StatusCreated || r.Service != "hukou.transfer" || r.Department != "公安局" || r.Channel != "kiosk" || r.SiteID != "hall" ||
		len(r.Tags) != 1 {
		t.Fatalf("rate: %d %+v %+v", status, r, ae)
	}
	if status, _ := e.call(t, "POST", "/me/ratings", bearer(aliceWeb), api.RateService{CaseID: c.ID, Score: 5}, nil); status != http.StatusConflict {
		t.Errorf("a second rating of the case: %d", status)
	}
	if status, ae := e.call(t, "POST", "/me/ratings", bearer(bobTok), api.RateService{CaseID: c.ID, Score: 5}, nil); status != http.StatusBadRequest ||
		!strings.HasPrefix(ae.Fields[0], "caseId") {
		t.Errorf("someone else's case: %d %+v", status, ae)
	}
	if status, ae := e.call(t, "POST", "/me/ratings", bearer(aliceWeb), api.RateService{Service: "x", Score: 9, Comment: canary}, nil); status != http.StatusBadRequest ||
		len(ae.Fields) != 2 {
		t.Errorf("bad rating fields: %d %+v", status, ae)
	}
	var fs api.FollowUps
	e.call(t, "GET", "/ratings/follow-ups", bearer(staffTok), nil, &fs)
	if len(fs.FollowUps) != 1 || fs.FollowUps[0].Rating.ID != r.ID || fs.FollowUps[0].Overdue || !fs.FollowUps[0].Due.Equal(r.CreatedAt.Add(72*time.Hour)) {
		t.Fatalf("follow-ups %+v", fs)
	}
	e.now = e.now.Add(73 * time.Hour)
	e.call(t, "GET", "/ratings/follow-ups", bearer(staffTok), nil, &fs)
	if !fs.FollowUps[0].Overdue {
		t.Fatalf("not overdue: %+v", fs)
	}
	if status, _ := e.call(t, "POST", "/ratings/follow-ups/"+r.ID+"/resolve", bearer(staffTok), api.ResolveFollowUp{Note: "回访已处理"}, &fs); status != http.StatusOK || len(fs.FollowUps) != 0 {
		t.Fatalf("resolve: %d %+v", status, fs)
	}
	if status, _ := e.call(t, "POST", "/ratings/follow-ups/"+r.ID+"/resolve", bearer(staffTok), api.ResolveFollowUp{}, nil); status != http.StatusNotFound {
		t.Errorf("resolve twice: %d", status)
	}
	if status, _ := e.call(t, "GET", "/ratings/follow-ups", bearer(aliceWeb), nil, nil); status != http.StatusUnauthorized { // a citizens' API token on the fleet API
		t.Errorf("a citizen reading follow-ups: %d", status)
	}
	// 10 citizens rate service a, 9 service b (on the mobile app).
	for i := range 10 {
		e.call(t, "POST", "/me/ratings", bearer(fmt.Sprint("cit-", i)), api.RateService{Service: "svc-a", Score: 4}, nil)
		if i < 9 {
			e.call(t, "POST", "/me/ratings", bearer(fmt.Sprint("cit-", i)), api.RateService{Service: "svc-b", Score: 1}, nil)
		}
	}
	var sum api.RatingSummary
	day := e.now.In(time.FixedZone("CST", 8*3600)).Format(time.DateOnly)
	if status, ae := e.call(t, "GET", "/ratings/summary?by=service&from="+day, bearer(staffTok), nil, &sum); status != http.StatusOK {
		t.Fatalf("summary: %d %+v", status, ae)
	}
	if sum.K != 10 || len(sum.Groups) != 1 || sum.Groups[0].Key != "svc-a" || sum.Groups[0].Citizens != 10 || sum.Groups[0].Average != 4 {
		t.Fatalf("summary %+v", sum)
	}
	e.call(t, "GET", "/ratings/summary?by=channel", bearer(staffTok), nil, &sum)
	if len(sum.Groups) != 1 || sum.Groups[0].Key != "mobile" || sum.Groups[0].Ratings != 19 || sum.Groups[0].Bad != 9 {
		t.Fatalf("by channel %+v", sum)
	}
	if status, _ := e.call(t, "GET", "/ratings/summary?by=colour", bearer(staffTok), nil, nil); status != http.StatusBadRequest {
		t.Errorf("unknown dimension: %d", status)
	}
}
