package store

import (
	"context"
	"fmt"
	"time"
)

// Ratings keeps citizens' ratings of services (好差评), 1 to 5 with tags and a comment, their
// aggregates, and the follow-ups that bad ratings (at most BadScore) open with a deadline.
type Ratings interface {
	// AddRating stores a rating, and a follow-up when its score is bad (due at due). A second
	// rating of the same case by the same citizen is ErrExists.
	AddRating(ctx context.Context, r Rating, due time.Time) error
	// RatingSummary aggregates the ratings of [From, To) by one dimension, leaving out groups of
	// fewer than MinCitizens distinct citizens.
	RatingSummary(ctx context.Context, q RatingQuery) ([]RatingGroup, error)
	// ListFollowUps returns follow-ups, oldest due first: open ones only unless All.
	ListFollowUps(ctx context.Context, f FollowUpFilter) ([]FollowUp, error)
	// ResolveFollowUp closes an open follow-up; ErrNotFound if there is no open one with that ID.
	ResolveFollowUp(ctx context.Context, id, by, note string, at time.Time) error
	// ReplaceRater gives an account's ratings the rater anon instead and no case (a deleted
	// account's ratings stay in the aggregates, linked to nobody).
	ReplaceRater(ctx context.Context, account, anon string) error
}

// BadScore is the highest score that opens a follow-up.
const BadScore = 2

// Rating is one citizen's rating of a service.
type Rating struct {
	ID         string
	Account    string // who rated: for the follow-up and one rating per case; never shown in aggregates
	CaseID     string // the case rated, if any
	Service    string
	Department string
	Channel    string
	SiteID     string
	Score      int
	Tags       []string
	Comment    string
	CreatedAt  time.Time
}

// Rating dimensions.
const (
	RateByService    = "service"
	RateByDepartment = "department"
	RateByChannel    = "channel"
	RateBySite       = "site"
)

// RatingQuery selects ratings to aggregate.
type RatingQuery struct {
	By          string // one of the RateBy dimensions
	From, To    time.Time
	MinCitizens int
}

// RatingGroup is the aggregate of one value of a dimension.
type RatingGroup struct {
	Key      string
	Ratings  int64
	Citizens int64
	Average  float64
	Bad      int64    // ratings of at most BadScore
	Scores   [5]int64 // how many of each score, 1 to 5
}

// FollowUpFilter selects follow-ups.
type FollowUpFilter struct {
	All   bool // also resolved ones
	Limit int  // 0: 100
}

// FollowUp is the work a bad rating opens: someone must contact the citizen (through the case's
// department) before Due.
type FollowUp struct {
	ID         string // the rating's
	Rating     Rating
	Due        time.Time
	ResolvedAt time.Time // zero while open
	ResolvedBy string
	Note       string
}

// CheckRating reports what AddRating must refuse (ErrInvalid).
func CheckRating(r Rating) error {
	switch {
	case r.ID == "" || r.Account == "" || r.Service == "" || r.Channel == "":
		return fmt.Errorf("%w: rating needs an id, account, service and channel", ErrInvalid)
	case r.Score < 1 || r.Score > 5:
		return fmt.Errorf("%w: score %d not in 1..5", ErrInvalid, r.Score)
	case r.CreatedAt.IsZero():
		return fmt.Errorf("%w: rating without a time", ErrInvalid)
	}
	return nil
}
