package api

import "time"

// RateService is the body of POST /api/v1/me/ratings: a citizen rates a case (its service and
// department) or, without one, a service.
type RateService struct {
	CaseID     string   `json:"caseId,omitempty"`
	Service    string   `json:"service,omitempty"`
	Department string   `json:"department,omitempty"`
	Score      int      `json:"score"` // 1 (very bad) to 5 (very good)
	Tags       []string `json:"tags,omitempty"`
	Comment    string   `json:"comment,omitempty"`
}

// Rating is a stored rating as the citizen and staff see it (never who rated).
type Rating struct {
	ID         string    `json:"id"`
	CaseID     string    `json:"caseId,omitempty"`
	Service    string    `json:"service"`
	Department string    `json:"department,omitempty"`
	Channel    string    `json:"channel"`
	SiteID     string    `json:"siteId,omitempty"`
	Score      int       `json:"score"`
	Tags       []string  `json:"tags,omitempty"`
	Comment    string    `json:"comment,omitempty"`
	CreatedAt  time.Time `json:"createdAt"`
}

// RatingGroup aggregates the ratings of one service, department, channel or site.
type RatingGroup struct {
	Key      string   `json:"key"`
	Ratings  int64    `json:"ratings"`
	Citizens int64    `json:"citizens"`
	Average  float64  `json:"average"`
	Bad      int64    `json:"bad"`    // scores of 1 and 2
	Scores   [5]int64 `json:"scores"` // how many of each score, 1 to 5
}

// RatingSummary is the body of GET /api/v1/ratings/summary?by=&from=&to=. Groups of fewer than
// K distinct citizens are left out.
type RatingSummary struct {
	By     string        `json:"by"`
	From   time.Time     `json:"from"`
	To     time.Time     `json:"to"`
	K      int           `json:"k"`
	Groups []RatingGroup `json:"groups"`
}

// FollowUp is the work a bad rating opened.
type FollowUp struct {
	Rating     Rating    `json:"rating"`
	Due        time.Time `json:"due"`
	Overdue    bool      `json:"overdue"`
	ResolvedAt time.Time `json:"resolvedAt,omitzero"`
	ResolvedBy string    `json:"resolvedBy,omitempty"`
	Note       string    `json:"note,omitempty"`
}

// FollowUps is the body of GET /api/v1/ratings/follow-ups[?all=true].
type FollowUps struct {
	FollowUps []FollowUp `json:"followUps"`
}

// ResolveFollowUp is the body of POST /api/v1/ratings/follow-ups/{id}/resolve.
type ResolveFollowUp struct {
	Note string `json:"note"`
}
