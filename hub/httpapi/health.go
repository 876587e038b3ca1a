package httpapi

import (
	"net/http"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
)

func (a *API) healthRoutes() {
	route(a, "GET /health", staff, http.StatusOK, a.health)
}

// health answers degraded, not an error, when the store does not answer.
func (a *API) health(r *http.Request, _ none) (api.Health, error) {
	h := api.Health{Status: "ok", Version: a.cfg.Version, Store: "ok", Broker: a.cfg.MQTTAddr}
	if err := a.cfg.Store.Ping(r.Context()); err != nil {
		a.cfg.Log.Warn("health: store does not answer", "err", err)
		h.Status, h.Store = "degraded", err.Error()
		return h, nil
	}
	devs, err := a.cfg.Store.ListDevices(r.Context(), store.DeviceFilter{})
	if err != nil {
		return h, err
	}
	h.Devices = len(devs)
	for _, d := range devs {
		if a.cfg.Sessions.Connected(d.ID) {
			h.ConnectedCount++
		}
	}
	return h, nil
}
