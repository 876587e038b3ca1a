package httpapi

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/kioskfleet/kioskfleet/hub/rollout"
	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// rolloutReaders may follow rollouts: field ops see what reaches their kiosks.
var rolloutReaders = append(slices.Clone(catalogStaff), "fieldops")

func (a *API) rolloutRoutes() {
	route(a, "POST /rollouts", operators, http.StatusCreated, a.createRollout)
	route(a, "GET /rollouts", rolloutReaders, http.StatusOK, a.listRollouts)
	route(a, "GET /rollouts/{id}", rolloutReaders, http.StatusOK, a.getRollout)
	route(a, "GET /rollouts/{id}/devices", rolloutReaders, http.StatusOK, a.rolloutDevices)
	route(a, "POST /rollouts/{id}/actions", operators, http.StatusOK, a.rolloutAct)
	route(a, "PUT /devices/{id}/tags", append(slices.Clone(staff), "operator"), http.StatusOK, a.setTags)
}

func rolloutErr(err error) error {
	if errors.Is(err, rollout.ErrConflict) {
		return apiErr(http.StatusConflict, "conflict", "%v", err)
	}
	return err
}

func (a *API) createRollout(r *http.Request, spec api.RolloutSpec) (api.Rollout, error) {
	out, err := a.cfg.Rollouts.Create(r.Context(), principal(r).Subject, spec)
	return out, rolloutErr(err)
}

func (a *API) listRollouts(r *http.Request, _ none) (api.Rollouts, error) {
	rs, err := a.cfg.Rollouts.List(r.Context())
	return api.Rollouts{Rollouts: rs}, err
}

func (a *API) getRollout(r *http.Request, _ none) (api.Rollout, error) {
	return a.cfg.Rollouts.Get(r.Context(), r.PathValue("id"))
}

func (a *API) rolloutDevices(r *http.Request, _ none) (api.RolloutDevices, error) {
	ds, err := a.cfg.Rollouts.Devices(r.Context(), r.PathValue("id"))
	return api.RolloutDevices{Devices: ds}, err
}

func (a *API) rolloutAct(r *http.Request, act api.RolloutAction) (api.Rollout, error) {
	out, err := a.cfg.Rollouts.Act(r.Context(), principal(r).Subject, r.PathValue("id"), act)
	return out, rolloutErr(err)
}

func (a *API) setTags(r *http.Request, req api.Tags) (api.Tags, error) {
	d, err := a.device(r)
	if err != nil {
		return api.Tags{}, err
	}
	var iv invalid
	iv.check(len(req.Tags) <= 32, "tags", "at most 32")
	for _, t := range req.Tags {
		iv.check(t != "" && len(t) <= 64 && strings.Trim(t, "abcdefghijklmnopqrstuvwxyz0123456789-_.") == "", "tags", "%q: 1-64 of a-z, 0-9, '-', '_', '.'", t)
	}
	if err := iv.err(); err != nil {
		return api.Tags{}, err
	}
	tags := slices.Compact(slices.Sorted(slices.Values(req.Tags)))
	return api.Tags{Tags: convert(tags, func(s string) string { return s })}, a.cfg.Store.SetTags(r.Context(), d.ID, tags)
}
