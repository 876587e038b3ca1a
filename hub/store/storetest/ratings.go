package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

// RunRatings runs the suite of store.Ratings.
func RunRatings(t *testing.T, open func(t *testing.T) store.Ratings) {
	suite[store.Ratings]{
		{"Summary", testRatingSummary},
		{"FollowUps", testFollowUps},
		{"ReplaceRater", testReplaceRater},
	}.run(t, open)
}

// NewRating returns a rating of service by account at T0+at.
func NewRating(id, account, service string, score int, at time.Duration) store.Rating {
	return store.Rating{ID: id, Account: account, Service: service, Department: "dept-" + service, Channel: store.ChannelWeb,
		Score: score, Tags: []string{"快"}, Comment: "ok", CreatedAt: T0.Add(at)}
}

func testRatingSummary(t *testing.T, s store.Ratings) {
	ctx := t.Context()
	add := func(r store.Rating) {
		t.Helper()
		if err := s.AddRating(ctx, r, r.CreatedAt.Add(72*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	// svc-a: 10 citizens, 12 ratings (scores 1..5 in turn); svc-b: 9 citizens.
	for i := range 12 {
		r := NewRating(fmt.Sprint("a", i), fmt.Sprint("c", i%10), "svc-a", i%5+1, time.Minute)
		if i < 2 {
			r.Channel, r.SiteID = store.ChannelKiosk, "hall"
		}
		add(r)
	}
	for i := range 9 {
		add(NewRating(fmt.Sprint("b", i), fmt.Sprint("c", i), "svc-b", 5, time.Minute))
	}
	add(NewRating("late", "c1", "svc-a", 5, 48*time.Hour)) // outside the range
	got, err := s.RatingSummary(ctx, store.RatingQuery{By: store.RateByService, From: T0, To: T0.Add(24 * time.Hour), MinCitizens: 10})
	if err != nil || len(got) != 1 {
		t.Fatalf("RatingSummary = %+v, %v", got, err)
	}
	g := got[0]
	if g.Key != "svc-a" || g.Ratings != 12 || g.Citizens != 10 || g.Bad != 6 || g.Scores != [5]int64{3, 3, 2, 2, 2} || g.Average != 2.75 {
		t.Fatalf("group %+v", g)
	}
	byChannel, _ := s.RatingSummary(ctx, store.RatingQuery{By: store.RateByChannel, From: T0, To: T0.Add(24 * time.Hour), MinCitizens: 2})
	if len(byChannel) != 2 || byChannel[0].Key != store.ChannelKiosk || byChannel[1].Ratings != 19 {
		t.Fatalf("by channel %+v", byChannel)
	}
	if got, _ := s.RatingSummary(ctx, store.RatingQuery{By: store.RateByDepartment, From: T0, To: T0.Add(24 * time.Hour), MinCitizens: 9}); len(got) != 2 {
		t.Fatalf("by department %+v", got)
	}
	if got, _ := s.RatingSummary(ctx, store.RatingQuery{By: store.RateBySite, From: T0, To: T0.Add(24 * time.Hour), MinCitizens: 10}); len(got) != 1 || got[0].Key != "" {
		t.Fatalf("by site %+v", got)
	}
	_, err = s.RatingSummary(ctx, store.RatingQuery{By: "colour", From: T0, To: T0.Add(time.Hour)})
	wantErr(t, "unknown dimension", err, store.ErrInvalid)
}

func testFollowUps(t *testing.T, s store.Ratings) {
	ctx := t.Context()
	bad := NewRating("r1", "c1", "svc", 1, 0)
	bad.CaseID, bad.Tags, bad.Comment = "case-1", []string{"慢", "态度差"}, "等了两个小时"
	if err := s.AddRating(ctx, bad, T0.Add(72*time.Hour)); err != nil {
		t.Fatal(err)
	}
	again := bad
	again.ID = "r1b"
	wantErr(t, "a second rating of the case", s.AddRating(ctx, again, T0), store.ErrExists)
	other := bad
	other.ID, other.Account = "r1c", "c2" // another citizen may rate the same case (a family's)
	if err := s.AddRating(ctx, other, T0.Add(48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.AddRating(ctx, NewRating("r2", "c1", "svc", 4, 0), T0); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "score 6", s.AddRating(ctx, NewRating("r3", "c1", "svc", 6, 0), T0), store.ErrInvalid)
	fs, err := s.ListFollowUps(ctx, store.FollowUpFilter{})
	if err != nil || len(fs) != 2 || fs[0].ID != "r1c" || fs[1].ID != "r1" || !fs[1].Due.Equal(T0.Add(72*time.Hour)) {
		t.Fatalf("ListFollowUps = %+v, %v", fs, err)
	}
	if r := fs[1].Rating; r.CaseID != "case-1" || !slices.Equal(r.Tags, []string{"慢", "态度差"}) || r.Comment != "等了两个小时" || r.Score != 1 {
		t.Fatalf("rating %+v", r)
	}
	if err := s.ResolveFollowUp(ctx, "r1", "ops1", "called back", T0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "resolve twice", s.ResolveFollowUp(ctx, "r1", "ops1", "", T0), store.ErrNotFound)
	wantErr(t, "resolve a good rating", s.ResolveFollowUp(ctx, "r2", "ops1", "", T0), store.ErrNotFound)
	if fs, _ := s.ListFollowUps(ctx, store.FollowUpFilter{}); len(fs) != 1 {
		t.Fatalf("open after resolving: %+v", fs)
	}
	all, _ := s.ListFollowUps(ctx, store.FollowUpFilter{All: true})
	if len(all) != 2 || all[1].ResolvedBy != "ops1" || all[1].Note != "called back" || !all[1].ResolvedAt.Equal(T0.Add(time.Hour)) {
		t.Fatalf("all follow-ups %+v", all)
	}
}

// testReplaceRater: a replaced rater's ratings stay in the aggregates, under the new rater and
// without their case.
func testReplaceRater(t *testing.T, s store.Ratings) {
	ctx := t.Context()
	for i, acct := range []string{"c_alice", "c_alice", "c_bob"} {
		r := NewRating(fmt.Sprint("r", i), acct, "svc", 1, time.Minute)
		r.CaseID = fmt.Sprint("case-", i) // the case would link her again
		if err := s.AddRating(ctx, r, T0.Add(72*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 { // idempotent
		if err := s.ReplaceRater(ctx, "c_alice", "gone-1"); err != nil {
			t.Fatal(err)
		}
	}
	fs, err := s.ListFollowUps(ctx, store.FollowUpFilter{All: true})
	if err != nil || len(fs) != 3 {
		t.Fatalf("ListFollowUps = %+v, %v", fs, err)
	}
	raters := map[string]int{}
	for _, f := range fs {
		raters[f.Rating.Account]++
		if f.Rating.Account == "gone-1" && f.Rating.CaseID != "" {
			t.Errorf("a replaced rater's rating keeps its case %q", f.Rating.CaseID)
		}
	}
	if raters["c_alice"] != 0 || raters["gone-1"] != 2 || raters["c_bob"] != 1 {
		t.Fatalf("raters %v", raters)
	}
	g, err := s.RatingSummary(ctx, store.RatingQuery{By: store.RateByService, From: T0, To: T0.Add(time.Hour), MinCitizens: 2})
	if err != nil || len(g) != 1 || g[0].Ratings != 3 || g[0].Citizens != 2 {
		t.Fatalf("RatingSummary = %+v, %v", g, err)
	}
}
