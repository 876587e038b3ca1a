package httpapi

import (
	"net/http"
	"strconv"

	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// LogRoom holds the kiosks' log tails (hub/logtail).
type LogRoom interface {
	Lines(deviceID string, after uint64) api.DeviceLog
}

func (a *API) logRoutes() {
	route(a, "GET /devices/{id}/log", staff, http.StatusOK, a.deviceLog)
}

// deviceLog returns the lines of the kiosk's log tails the hub holds, after ?after=N. A tail is
// asked for with the log-tail command (POST /devices/{id}/commands).
func (a *API) deviceLog(r *http.Request, _ none) (api.DeviceLog, error) {
	d, err := a.device(r)
	if err != nil {
		return api.DeviceLog{}, err
	}
	var after uint64
	if s := r.URL.Query().Get("after"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		var iv invalid
		iv.check(err == nil, "after", "want a line number, got %q", s)
		if err := iv.err(); err != nil {
			return api.DeviceLog{}, err
		}
		after = n
	}
	return a.cfg.Logs.Lines(d.ID, after), nil
}
