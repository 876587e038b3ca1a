package httpapi

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
)

func (a *API) recordRoutes() {
	route(a, "GET /devices/{id}/records", staff, http.StatusOK, a.listRecords)
}

// listRecords pages through a device's records: ?kind=&after=&limit= (default 100, at most 1000).
func (a *API) listRecords(r *http.Request, _ none) (api.Records, error) {
	d, err := a.device(r)
	if err != nil {
		return api.Records{}, err
	}
	q := r.URL.Query()
	f := store.RecordFilter{DeviceID: d.ID, Kind: q.Get("kind"), Limit: 100}
	var iv invalid
	if s := q.Get("after"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		iv.check(err == nil && n >= 0, "after", "want a record id, got %q", s)
		f.AfterID = n
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		iv.check(err == nil && n >= 1 && n <= 1000, "limit", "want 1..1000, got %q", s)
		f.Limit = n
	}
	if err := iv.err(); err != nil {
		return api.Records{}, err
	}
	recs, err := a.cfg.Store.ListRecords(r.Context(), f)
	if errors.Is(err, store.ErrInvalid) && f.AfterID > 0 {
		iv.check(false, "after", "%d is not a record of device %s", f.AfterID, d.ID)
		return api.Records{}, iv.err()
	}
	if err != nil {
		return api.Records{}, err
	}
	out := api.Records{Records: convert(recs, apiRecord), Next: f.AfterID}
	if n := len(recs); n > 0 {
		out.Next = recs[n-1].ID
	}
	return out, nil
}

func apiRecord(r store.Record) fleet.Record { return fleet.Record(r) }
