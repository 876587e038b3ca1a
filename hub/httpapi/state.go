package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
)

func (a *API) stateRoutes() {
	route(a, "PUT /devices/{id}/desired", staff, http.StatusOK, a.setDesired)
	route(a, "GET /devices/{id}/state", staff, http.StatusOK, a.getState)
}

// setDesired stores a new desired document and pushes it if the device is connected.
func (a *API) setDesired(r *http.Request, req api.SetDesired) (fleet.DocState, error) {
	d, err := a.device(r)
	if err != nil {
		return fleet.DocState{}, err
	}
	var obj map[string]json.RawMessage
	var iv invalid
	iv.check(json.Unmarshal(req.Doc, &obj) == nil && obj != nil, "doc", "must be a JSON object")
	iv.check(len(req.Doc) <= 32<<10, "doc", "at most 32 KiB")
	if err := iv.err(); err != nil {
		return fleet.DocState{}, err
	}
	doc, err := a.keepRolloutKeys(r.Context(), d.ID, req.Doc, obj)
	if err != nil {
		return fleet.DocState{}, err
	}
	s, err := a.cfg.Store.SetDesired(r.Context(), d.ID, doc, a.cfg.Now())
	if err != nil {
		return fleet.DocState{}, err
	}
	a.cfg.Dispatch.PushDesired(r.Context(), d.ID)
	return fleet.DocState(s), nil
}

func (a *API) getState(r *http.Request, _ none) (api.State, error) {
	d, err := a.device(r)
	if err != nil {
		return api.State{}, err
	}
	return a.state(r.Context(), d.ID)
}

// state returns a device's desired and reported documents, either absent while there is none,
// and whether they differ.
func (a *API) state(ctx context.Context, id string) (api.State, error) {
	var s api.State
	if d, err := a.cfg.Store.GetDesired(ctx, id); err == nil {
		s.Desired = apiDocState(d)
	} else if !errors.Is(err, store.ErrNotFound) {
		return s, err
	}
	if d, err := a.cfg.Store.GetReported(ctx, id); err == nil {
		s.Reported = apiDocState(d)
	} else if !errors.Is(err, store.ErrNotFound) {
		return s, err
	}
	if s.Desired != nil {
		s.Drift = s.Reported == nil || s.Reported.Version != s.Desired.Version || s.Reported.Error != ""
	}
	return s, nil
}

func apiDocState(d store.DocState) *fleet.DocState {
	out := fleet.DocState(d)
	return &out
}

// rolloutKeys are the desired state's keys that rollouts own (hub/rollout): a document set by
// hand that leaves them out keeps the ones the kiosk has, so that replacing a kiosk's settings
// does not take its apps away.
var rolloutKeys = []string{"bundles", "agent"}

func (a *API) keepRolloutKeys(ctx context.Context, id string, raw json.RawMessage, doc map[string]json.RawMessage) (json.RawMessage, error) {
	cur, err := a.cfg.Store.GetDesired(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return raw, nil
	}
	if err != nil {
		return nil, err
	}
	var old map[string]json.RawMessage
	_ = json.Unmarshal(cur.Doc, &old)
	kept := false
	for _, k := range rolloutKeys {
		if _, given := doc[k]; !given && old[k] != nil {
			doc[k], kept = old[k], true
		}
	}
	if !kept {
		return raw, nil // stored as given
	}
	return json.Marshal(doc)
}
