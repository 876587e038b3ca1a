package httpapi

import (
	"context"
	"net/http"

	"github.com/kioskfleet/kioskfleet/hub/outreach"
	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// OutreachRoom is the 服务找人 room as the API serves it (hub/outreach).
type OutreachRoom interface {
	Recommend(ctx context.Context, account, clientID string) ([]outreach.Recommendation, error)
	SetOptOut(ctx context.Context, account string, out bool) error
	OptedOut(ctx context.Context, account string) (bool, error)
}

func (a *API) outreachRoutes() {
	if a.cfg.Outreach == nil {
		return
	}
	route(a, "GET /me/recommendations", citizens, http.StatusOK, a.recommendations)
	route(a, "PUT /me/recommendations/opt-out", citizens, http.StatusOK, a.optOut)
}

// recommendations are the services offered to the citizen, the same on the web, the apps and
// the kiosk (with the kiosk session's token).
func (a *API) recommendations(r *http.Request, _ none) (api.Recommendations, error) {
	p := principal(r)
	out := api.Recommendations{Recommendations: []api.Recommendation{}}
	opted, err := a.cfg.Outreach.OptedOut(r.Context(), p.Subject)
	if err != nil || opted {
		out.OptedOut = opted
		return out, err
	}
	recs, err := a.cfg.Outreach.Recommend(r.Context(), p.Subject, p.ClientID)
	out.Recommendations = convert(recs, func(x outreach.Recommendation) api.Recommendation { return api.Recommendation(x) })
	return out, err
}

func (a *API) optOut(r *http.Request, req api.OptOut) (api.OptOut, error) {
	err := a.cfg.Outreach.SetOptOut(r.Context(), principal(r).Subject, req.OptedOut)
	return req, err
}
