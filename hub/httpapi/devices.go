package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/security"
	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

func (a *API) deviceRoutes() {
	route(a, "GET /devices", staff, http.StatusOK, a.listDevices)
	route(a, "GET /devices/{id}", staff, http.StatusOK, a.getDevice)
	route(a, "GET /devices/{id}/presence", staff, http.StatusOK, a.getPresence)
	route(a, "POST /devices/{id}/revoke", staff, http.StatusOK, a.revoke)
	route(a, "POST /devices/retire", admins, http.StatusOK, a.retire)
}

func (a *API) listDevices(r *http.Request, _ none) (api.Devices, error) {
	q := r.URL.Query()
	f := store.DeviceFilter{SiteID: q.Get("site"), Region: q.Get("region"), Model: q.Get("model"), Scope: principal(r).Regions}
	var iv invalid
	switch st := q.Get("status"); st {
	case "":
	case "online", "offline":
		on := st == "online"
		f.Online = &on
	case "retired":
		f.Retired = true
	default:
		iv.check(false, "status", "want online, offline or retired, got %q", st)
	}
	iv.check(f.Region == "" || validRegionPrefix(f.Region), "region", "want 1..6 digits of a GB/T 2260 code, got %q", f.Region)
	if err := iv.err(); err != nil {
		return api.Devices{}, err
	}
	ds, err := a.cfg.Store.ListDevices(r.Context(), f)
	return api.Devices{Devices: convert(ds, apiDevice)}, err
}

// device returns the device the path's {id} names, if it is in the caller's region scope.
func (a *API) device(r *http.Request) (store.Device, error) {
	id := r.PathValue("id")
	if !wire.ValidDeviceID(id) {
		return store.Device{}, apiErr(http.StatusBadRequest, "bad_request", "id: %q is not a device id", id)
	}
	return a.scopedDevice(r, id)
}

// scopedDevice returns device id if it is in the caller's region scope: 403 if it is not.
func (a *API) scopedDevice(r *http.Request, id string) (store.Device, error) {
	d, err := a.cfg.Store.GetDevice(r.Context(), id)
	if err == nil && !principal(r).InScope(d.Region) {
		return store.Device{}, outOfScope("kiosk", id)
	}
	return d, err
}

func (a *API) getDevice(r *http.Request, _ none) (api.DeviceDetail, error) {
	d, err := a.device(r)
	if err != nil {
		return api.DeviceDetail{}, err
	}
	s, err := a.state(r.Context(), d.ID)
	if err != nil {
		return api.DeviceDetail{}, err
	}
	cmds, err := a.cfg.Store.ListCommands(r.Context(), d.ID, 20)
	return api.DeviceDetail{Device: apiDevice(d), Desired: s.Desired, Reported: s.Reported, Drift: s.Drift,
		Commands: convert(cmds, apiCommand)}, err
}

// getPresence shows a device's presence and its latest ended sessions with why each ended:
// ?limit= (default 50, at most store.HistoryKeep).
func (a *API) getPresence(r *http.Request, _ none) (api.Presence, error) {
	limit := 50
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > store.HistoryKeep {
			return api.Presence{}, apiErr(http.StatusBadRequest, "bad_request", "limit: want 1..%d, got %q", store.HistoryKeep, s)
		}
		limit = n
	}
	d, err := a.device(r)
	if err != nil {
		return api.Presence{}, err
	}
	ss, err := a.cfg.Store.PresenceHistory(r.Context(), d.ID, limit)
	return api.Presence{DeviceID: d.ID, Online: d.Online, Replica: d.Replica, PresenceAt: d.PresenceAt,
		Sessions: convert(ss, apiSession)}, err
}

func apiSession(s store.Session) fleet.Session {
	return fleet.Session{Replica: s.Replica, StartedAt: s.StartedAt, EndedAt: s.EndedAt,
		DurationMs: s.EndedAt.Sub(s.StartedAt).Milliseconds(), Reason: s.Reason, Detail: s.Detail}
}

// revoke revokes a device and ends its session.
func (a *API) revoke(r *http.Request, _ none) (fleet.Device, error) {
	d, err := a.device(r)
	if err != nil {
		return fleet.Device{}, err
	}
	if err := a.cfg.Store.RevokeDevice(r.Context(), d.ID, a.cfg.Now()); err != nil {
		return fleet.Device{}, err
	}
	a.cfg.Sessions.Disconnect(d.ID)
	a.cfg.Log.Info("device revoked", "device", d.ID)
	a.noteSecurity(r, principal(r), security.DeviceRevoked, d.ID, "revoked by staff")
	d, err = a.cfg.Store.GetDevice(r.Context(), d.ID)
	return apiDevice(d), err
}

// retire takes the kiosks a filter selects out of service: revoked, sessions cut, hidden from the
// fleet's lists. A filter is required, and Expect guards against a fleet that changed between
// the count a person confirmed and the request.
func (a *API) retire(r *http.Request, req api.RetireDevices) (api.Retired, error) {
	f := store.DeviceFilter{IDs: req.IDs, SiteID: req.Site, Region: req.Region, Model: req.Model, Scope: principal(r).Regions}
	var iv invalid
	for _, id := range req.IDs {
		iv.check(wire.ValidDeviceID(id), "ids", "%q is not a device id", id)
	}
	iv.check(req.Region == "" || validRegionPrefix(req.Region), "region", "want 1..6 digits of a GB/T 2260 code, got %q", req.Region)
	if req.OfflineFor != "" {
		d, err := time.ParseDuration(req.OfflineFor)
		iv.check(err == nil && d >= time.Hour, "offlineFor", "want a duration of at least 1h, got %q", req.OfflineFor)
		f.SeenBefore = a.cfg.Now().Add(-d)
	}
	iv.check(len(req.IDs) > 0 || req.Site != "" || req.Region != "" || req.Model != "" || req.OfflineFor != "",
		"filter", "name the kiosks to retire: ids, site, region, model or offlineFor")
	iv.check(req.Expect == nil || *req.Expect >= 0, "expect", "want a count >= 0")
	if err := iv.err(); err != nil {
		return api.Retired{}, err
	}
	ds, err := a.cfg.Store.ListDevices(r.Context(), f)
	if err != nil {
		return api.Retired{}, err
	}
	if req.Expect != nil && *req.Expect != len(ds) {
		return api.Retired{}, apiErr(http.StatusConflict, "count_changed",
			"%d kiosks match now, not the %d expected: list them again and confirm", len(ds), *req.Expect)
	}
	if req.DryRun {
		return api.Retired{DryRun: true, Count: len(ds), Devices: convert(ds, func(d store.Device) string { return d.ID })}, nil
	}
	ids, err := a.cfg.Store.RetireDevices(r.Context(), f, a.cfg.Now())
	if err != nil {
		return api.Retired{}, err
	}
	for _, id := range ids {
		a.cfg.Sessions.Disconnect(id)
		a.noteSecurity(r, principal(r), security.DeviceRevoked, id, "retired by staff")
	}
	a.cfg.Log.Info("devices retired", "count", len(ids))
	if ids == nil {
		ids = []string{}
	}
	return api.Retired{Count: len(ids), Devices: ids}, nil
}

// apiDevice shows a device without its certificate.
func apiDevice(d store.Device) fleet.Device {
	return fleet.Device{ID: d.ID, SiteID: d.SiteID, Region: d.Region, Model: d.Model, CertSerial: d.CertSerial,
		CertExpiry: d.CertExpiry, EnrolledAt: d.EnrolledAt, Revoked: d.Revoked, RevokedAt: d.RevokedAt, RetiredAt: d.RetiredAt,
		Online: d.Online, Replica: d.Replica, PresenceAt: d.PresenceAt, LastSeen: d.LastSeen, AgentVersion: d.AgentVersion,
		Health: d.Health, HealthAt: d.HealthAt, Peripherals: d.Peripherals, PeriphAt: d.PeriphAt}
}
