package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"

	"github.com/kioskfleet/kioskfleet/hub/catalog"
	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/updates"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/bundle"
	"github.com/kioskfleet/kioskfleet/pkg/tufmeta"
)

// operators sign and publish: the update repository's targets, agent binaries, rollouts.
var operators = []string{"admin", catalog.RoleOperator}

// Largest bodies of the repository's endpoints.
const (
	maxMetadata = 4 << 20
	maxFile     = 256 << 20 // an agent binary
)

func (a *API) updateRoutes() {
	route(a, "GET /updates/online-key", catalogStaff, http.StatusOK, a.onlineKey)
	route(a, "GET /updates/status", catalogStaff, http.StatusOK, a.updatesStatus)
	route(a, "PUT /updates/root", admins, http.StatusOK, a.setRoot)
	route(a, "GET /updates/targets", catalogStaff, http.StatusOK, a.signedTargets)
	route(a, "PUT /updates/targets", operators, http.StatusOK, a.setTargets)
	route(a, "POST /updates/files", operators, http.StatusCreated, a.uploadFile)
	route(a, "PUT /apps/{id}/versions/{version}/bundle", catalogStaff, http.StatusOK, a.uploadBundle)
	route(a, "GET /apps/{id}/versions/{version}/bundle", catalogStaff, http.StatusOK, a.downloadBundle)
}

func (a *API) onlineKey(r *http.Request, _ none) (api.OnlineKey, error) {
	k, id := a.cfg.Updates.OnlineKey()
	b, err := json.Marshal(k)
	return api.OnlineKey{KeyID: id, Key: b}, err
}

// updateErr maps the repository's refusals to HTTP.
func updateErr(err error) error {
	switch {
	case errors.Is(err, updates.ErrNoRoot):
		return apiErr(http.StatusConflict, "conflict", "%v", err)
	case errors.Is(err, updates.ErrRefused):
		return apiErr(http.StatusBadRequest, "bad_request", "%v", err)
	}
	return err
}

func (a *API) setRoot(r *http.Request, _ none) (api.RoleState, error) {
	body, err := readRaw(r, "application/json", maxMetadata)
	if err != nil {
		return api.RoleState{}, err
	}
	if err := a.cfg.Updates.SetRoot(r.Context(), body); err != nil {
		return api.RoleState{}, updateErr(err)
	}
	st, err := a.updatesStatus(r, none{})
	return st.Roles[tufmeta.Root], err
}

func (a *API) signedTargets(r *http.Request, _ none) (json.RawMessage, error) {
	b, err := a.cfg.Updates.TargetsData(r.Context())
	if errors.Is(err, store.ErrNotFound) {
		return nil, apiErr(http.StatusNotFound, "not_found", "no targets metadata yet: fleetctl keys init")
	}
	return b, err
}

func (a *API) setTargets(r *http.Request, _ none) (api.RoleState, error) {
	body, err := readRaw(r, "application/json", maxMetadata)
	if err != nil {
		return api.RoleState{}, err
	}
	if err := a.cfg.Updates.SetTargets(r.Context(), body); err != nil {
		return api.RoleState{}, updateErr(err)
	}
	st, err := a.updatesStatus(r, none{})
	return st.Roles[tufmeta.Targets], err
}

func (a *API) updatesStatus(r *http.Request, _ none) (api.UpdatesStatus, error) {
	st := api.UpdatesStatus{Roles: map[string]api.RoleState{}, Targets: []api.TargetInfo{}}
	for _, role := range []string{tufmeta.Root, tufmeta.Targets, tufmeta.Snapshot, tufmeta.Timestamp} {
		m, err := a.cfg.Store.LatestMetadata(r.Context(), role)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return st, err
		}
		st.Roles[role] = api.RoleState{Version: m.Version, Expires: m.Expires}
	}
	if t, err := a.cfg.Updates.Targets(r.Context()); err == nil {
		for name, tf := range t.Signed.Targets {
			c, _ := tufmeta.CustomOf(tf)
			st.Targets = append(st.Targets, api.TargetInfo{Name: name, SHA256: tufmeta.SHA256(tf), Length: tf.Length, Kind: c.Kind, App: c.App, Version: c.Version})
		}
		slices.SortFunc(st.Targets, func(x, y api.TargetInfo) int { return compareStrings(x.Name, y.Name) })
	}
	s := a.cfg.Updates.Stats()
	st.Served = api.UpdatesServed(s)
	return st, nil
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (a *API) uploadFile(r *http.Request, _ none) (api.FileInfo, error) {
	body, err := readRaw(r, "application/octet-stream", maxFile)
	if err != nil {
		return api.FileInfo{}, err
	}
	sum, err := a.cfg.Updates.PutTarget(r.Context(), body, "application/octet-stream")
	return api.FileInfo{SHA256: sum, Size: int64(len(body))}, err
}

func (a *API) uploadBundle(r *http.Request, _ none) (api.AppVersion, error) {
	body, err := readRaw(r, catalog.BundleType, bundle.MaxBytes)
	if err != nil {
		return api.AppVersion{}, err
	}
	return a.cfg.Catalog.UploadBundle(r.Context(), actor(r), r.PathValue("id"), r.PathValue("version"), body)
}

// downloadBundle answers the bundle's bytes: rawBody makes route write them as they are.
func (a *API) downloadBundle(r *http.Request, _ none) (rawBody, error) {
	b, err := a.cfg.Catalog.Bundle(r.Context(), actor(r), r.PathValue("id"), r.PathValue("version"))
	return rawBody{Type: catalog.BundleType, Data: b}, err
}
