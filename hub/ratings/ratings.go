// Package ratings is the hub's rating room (好差评): after a service a citizen rates it 1 to 5,
// with tags and a comment, on any channel; the room aggregates ratings per service, department,
// channel and site (groups of fewer than K distinct citizens left out), and every bad rating (at
// most store.BadScore) opens a follow-up due within FollowUpWithin, listed for staff until they
// resolve it. A deleted account's ratings stay, under a random rater (AccountDeleted).
package ratings

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/gb11643"
)

// ErrInvalid wraps a refused rating (FieldError names the fields).
var ErrInvalid = errors.New("ratings: invalid")

// FieldError is a refused rating with every field at fault.
type FieldError struct{ Fields []string }

func (e *FieldError) Error() string { return fmt.Sprintf("%v: %q", ErrInvalid, e.Fields) }
func (e *FieldError) Unwrap() error { return ErrInvalid }

// Store is the storage the room needs: its domain, and cases (a rating of a case).
type Store interface {
	store.Ratings
	GetCase(ctx context.Context, id string) (store.Case, error)
}

// Config configures the room.
type Config struct {
	FollowUpWithin time.Duration // 72 h
	K              int           // 10, and never less
	Now            func() time.Time
}

// Ratings is the room.
type Ratings struct {
	cfg Config
	st  Store
}

// New returns the room on st.
func New(cfg Config, st Store) *Ratings {
	if cfg.FollowUpWithin <= 0 {
		cfg.FollowUpWithin = 72 * time.Hour
	}
	cfg.K = max(cfg.K, 10)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Ratings{cfg: cfg, st: st}
}

// NewRating is a citizen's rating as she sends it, with where she sent it from.
type NewRating struct {
	Account, Channel, SiteID string // from her token
	CaseID                   string // the case rated; its service and department then
	Service, Department      string // without a case
	Score                    int
	Tags                     []string
	Comment                  string
}

var serviceRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// Add validates and stores a rating.
func (rs *Ratings) Add(ctx context.Context, n NewRating) (store.Rating, error) {
	var f []string
	check := func(ok bool, field, format string, a ...any) {
		if !ok {
			f = append(f, field+": "+fmt.Sprintf(format, a...))
		}
	}
	text := func(field, v string, most int) {
		check(utf8.ValidString(v) && utf8.RuneCountInString(v) <= most, field, "at most %d characters of UTF-8", most)
		check(!gb11643.Contains(v), field, "holds an ID number: never send one")
	}
	check(n.Score >= 1 && n.Score <= 5, "score", "want 1 to 5")
	check(len(n.Tags) <= 5, "tags", "at most 5")
	for i, t := range n.Tags {
		check(t != "", fmt.Sprintf("tags[%d]", i), "empty")
		text(fmt.Sprintf("tags[%d]", i), t, 16)
	}
	text("comment", n.Comment, 500)
	r := store.Rating{ID: newID(), Account: n.Account, CaseID: n.CaseID, Service: n.Service, Department: n.Department,
		Channel: n.Channel, SiteID: n.SiteID, Score: n.Score, Tags: slices.Compact(slices.Sorted(slices.Values(n.Tags))),
		Comment: n.Comment, CreatedAt: rs.cfg.Now().UTC()}
	if n.CaseID != "" {
		c, err := rs.st.GetCase(ctx, n.CaseID)
		switch {
		case errors.Is(err, store.ErrNotFound) || err == nil && c.Account != n.Account:
			check(false, "caseId", "no such case of yours")
		case err != nil:
			return store.Rating{}, err
		default:
			r.Service, r.Department = c.Service, c.Department
			if r.SiteID == "" {
				r.SiteID = c.SiteID // the hall that served her
			}
		}
	} else {
		check(serviceRE.MatchString(n.Service), "service", "want a catalog ID (or a caseId)")
		text("department", n.Department, 64)
	}
	if len(f) > 0 {
		return store.Rating{}, &FieldError{Fields: f}
	}
	if err := rs.st.AddRating(ctx, r, r.CreatedAt.Add(rs.cfg.FollowUpWithin)); err != nil {
		return store.Rating{}, err
	}
	return r, nil
}

// Summary aggregates the ratings of [from, to) by a dimension, suppressing groups under K.
func (rs *Ratings) Summary(ctx context.Context, by string, from, to time.Time) ([]store.RatingGroup, error) {
	return rs.st.RatingSummary(ctx, store.RatingQuery{By: by, From: from, To: to, MinCitizens: rs.cfg.K})
}

// FollowUps lists follow-ups (open ones unless all).
func (rs *Ratings) FollowUps(ctx context.Context, all bool) ([]store.FollowUp, error) {
	return rs.st.ListFollowUps(ctx, store.FollowUpFilter{All: all, Limit: 1000})
}

// Resolve closes a follow-up.
func (rs *Ratings) Resolve(ctx context.Context, id, by, note string) error {
	if utf8.RuneCountInString(note) > 500 || gb11643.Contains(note) {
		return &FieldError{Fields: []string{"note: at most 500 characters, and never an ID number"}}
	}
	return rs.st.ResolveFollowUp(ctx, id, by, note, rs.cfg.Now().UTC())
}

// K is the suppression threshold of the summaries.
func (rs *Ratings) K() int { return rs.cfg.K }

// Now is the room's clock (whether a follow-up is overdue).
func (rs *Ratings) Now() time.Time { return rs.cfg.Now() }

func newID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return "rating-" + hex.EncodeToString(b)
}
