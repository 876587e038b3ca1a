package httpapi

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/ratings"
	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// RatingRoom is the rating room as the API serves it (hub/ratings).
type RatingRoom interface {
	Add(ctx context.Context, n ratings.NewRating) (store.Rating, error)
	Summary(ctx context.Context, by string, from, to time.Time) ([]store.RatingGroup, error)
	FollowUps(ctx context.Context, all bool) ([]store.FollowUp, error)
	Resolve(ctx context.Context, id, by, note string) error
	Now() time.Time
	K() int
}

func (a *API) ratingRoutes() {
	if a.cfg.Ratings == nil {
		return
	}
	route(a, "POST /me/ratings", citizens, http.StatusCreated, a.rate)
	route(a, "GET /ratings/summary", staff, http.StatusOK, a.ratingSummary)
	route(a, "GET /ratings/follow-ups", staff, http.StatusOK, a.followUps)
	route(a, "POST /ratings/follow-ups/{id}/resolve", staff, http.StatusOK, a.resolveFollowUp)
}

// origin is where a citizen's request comes from: the channel and, at a kiosk, its site.
func (a *API) origin(r *http.Request) (channel, site string, err error) {
	p := principal(r)
	if a.cfg.Events == nil {
		return "", "", apiErr(http.StatusServiceUnavailable, "unavailable", "channels are not configured")
	}
	if p.KioskID != "" {
		o, err := a.cfg.Events.KioskOrigin(r.Context(), p.KioskID, "")
		if err != nil {
			return "", "", apiErr(http.StatusForbidden, "forbidden", "kiosk %s is unknown or revoked", p.KioskID)
		}
		return o.Channel, o.SiteID, nil
	}
	ch, err := a.cfg.Events.Channel(p.ClientID, r.URL.Query().Get("channel"))
	if err != nil {
		return "", "", apiErr(http.StatusBadRequest, "bad_request", "channel: %v", err)
	}
	return ch, "", nil
}

func (a *API) rate(r *http.Request, req api.RateService) (api.Rating, error) {
	ch, site, err := a.origin(r)
	if err != nil {
		return api.Rating{}, err
	}
	rt, err := a.cfg.Ratings.Add(r.Context(), ratings.NewRating{Account: principal(r).Subject, Channel: ch, SiteID: site,
		CaseID: req.CaseID, Service: req.Service, Department: req.Department, Score: req.Score, Tags: req.Tags, Comment: req.Comment})
	var fe *ratings.FieldError
	if errors.As(err, &fe) {
		return api.Rating{}, &api.Error{Status: http.StatusBadRequest, Code: "bad_request", Message: "invalid rating", Fields: fe.Fields}
	}
	return apiRating(rt), err
}

// dayRange reads ?from=&to= (RFC 3339 times or YYYY-MM-DD days of China Standard Time; to is
// exclusive); the default is the 30 days up to the end of today.
func dayRange(r *http.Request, now time.Time) (from, to time.Time, err error) {
	var iv invalid
	parse := func(field string, def time.Time) time.Time {
		s := r.URL.Query().Get(field)
		if s == "" {
			return def
		}
		if t, err := time.Parse(time.RFC3339, s); err == nil {
			return t
		}
		t, err := time.ParseInLocation(time.DateOnly, s, cst)
		iv.check(err == nil, field, "want an RFC 3339 time or a date YYYY-MM-DD, got %q", s)
		return t
	}
	y, m, d := now.In(cst).Date()
	tomorrow := time.Date(y, m, d+1, 0, 0, 0, 0, cst)
	to = parse("to", tomorrow)
	from = parse("from", to.AddDate(0, 0, -30))
	iv.check(from.Before(to), "from", "must be before to")
	return from, to, iv.err()
}

// cst is China Standard Time, the zone of the days the API takes and the rollups count.
var cst = time.FixedZone("CST", 8*3600)

func (a *API) ratingSummary(r *http.Request, _ none) (api.RatingSummary, error) {
	from, to, err := dayRange(r, a.cfg.Ratings.Now())
	if err != nil {
		return api.RatingSummary{}, err
	}
	by := r.URL.Query().Get("by")
	if by == "" {
		by = store.RateByService
	}
	gs, err := a.cfg.Ratings.Summary(r.Context(), by, from, to)
	if errors.Is(err, store.ErrInvalid) {
		return api.RatingSummary{}, apiErr(http.StatusBadRequest, "bad_request", "by: want service, department, channel or site")
	}
	out := api.RatingSummary{By: by, From: from, To: to, K: a.cfg.Ratings.K(), Groups: convert(gs, func(g store.RatingGroup) api.RatingGroup {
		return api.RatingGroup(g)
	})}
	return out, err
}

func (a *API) followUps(r *http.Request, _ none) (api.FollowUps, error) {
	fs, err := a.cfg.Ratings.FollowUps(r.Context(), r.URL.Query().Get("all") == "true")
	now := a.cfg.Ratings.Now()
	return api.FollowUps{FollowUps: convert(fs, func(f store.FollowUp) api.FollowUp {
		return api.FollowUp{Rating: apiRating(f.Rating), Due: f.Due, Overdue: f.ResolvedAt.IsZero() && now.After(f.Due),
			ResolvedAt: f.ResolvedAt, ResolvedBy: f.ResolvedBy, Note: f.Note}
	})}, err
}

func (a *API) resolveFollowUp(r *http.Request, req api.ResolveFollowUp) (api.FollowUps, error) {
	err := a.cfg.Ratings.Resolve(r.Context(), r.PathValue("id"), principal(r).Subject, req.Note)
	var fe *ratings.FieldError
	if errors.As(err, &fe) {
		return api.FollowUps{}, &api.Error{Status: http.StatusBadRequest, Code: "bad_request", Message: "invalid request", Fields: fe.Fields}
	}
	if err != nil {
		return api.FollowUps{}, err
	}
	return a.followUps(r, none{})
}

func apiRating(r store.Rating) api.Rating {
	return api.Rating{ID: r.ID, CaseID: r.CaseID, Service: r.Service, Department: r.Department, Channel: r.Channel, SiteID: r.SiteID,
		Score: r.Score, Tags: r.Tags, Comment: r.Comment, CreatedAt: r.CreatedAt}
}
