package httpapi

import (
	"bytes"
	"cmp"
	"encoding/json"
	"net/http"
	"slices"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

func (a *API) overviewRoutes() {
	route(a, "GET /overview", staff, http.StatusOK, a.overview)
}

// overview counts the kiosks in the caller's scope (under ?region=) at each level of the region
// hierarchy and at each site.
func (a *API) overview(r *http.Request, _ none) (api.Overview, error) {
	region := r.URL.Query().Get("region")
	if region != "" && !validRegionPrefix(region) {
		return api.Overview{}, apiErr(http.StatusBadRequest, "bad_request", "region: want 1..6 digits of a GB/T 2260 code, got %q", region)
	}
	ds, err := a.cfg.Store.ListDevices(r.Context(), store.DeviceFilter{Region: region, Scope: principal(r).Regions})
	if err != nil {
		return api.Overview{}, err
	}
	sites, err := a.cfg.Store.ListSites(r.Context())
	if err != nil {
		return api.Overview{}, err
	}
	names := make(map[string]string, len(sites))
	for _, s := range sites {
		names[s.ID] = s.Name
	}
	var out api.Overview
	regions := map[string]*api.RegionTally{}
	bySite := map[string]*api.SiteTally{}
	for _, d := range ds {
		st := stateOf(d)
		count(&out.Total, st)
		for _, l := range levels {
			if len(d.Region) < l.digits {
				break
			}
			code := d.Region[:l.digits]
			t := regions[code]
			if t == nil {
				t = &api.RegionTally{Code: code, Level: l.name}
				regions[code] = t
			}
			count(&t.Tally, st)
		}
		s := bySite[d.SiteID]
		if s == nil {
			s = &api.SiteTally{ID: d.SiteID, Name: names[d.SiteID], Region: d.Region}
			bySite[d.SiteID] = s
		}
		count(&s.Tally, st)
	}
	out.Regions = make([]api.RegionTally, 0, len(regions))
	for _, t := range regions {
		out.Regions = append(out.Regions, *t)
	}
	slices.SortFunc(out.Regions, func(x, y api.RegionTally) int { return cmp.Compare(x.Code, y.Code) })
	out.Sites = make([]api.SiteTally, 0, len(bySite))
	for _, s := range bySite {
		out.Sites = append(out.Sites, *s)
	}
	slices.SortFunc(out.Sites, func(x, y api.SiteTally) int { return cmp.Or(cmp.Compare(x.Region, y.Region), cmp.Compare(x.ID, y.ID)) })
	return out, nil
}

// levels are the levels of the region hierarchy, by the digits of their codes (GB/T 2260).
var levels = []struct {
	digits int
	name   string
}{{2, "province"}, {4, "city"}, {6, "county"}}

// kioskState is where a kiosk counts in a tally.
type kioskState int

const (
	stateOnline kioskState = iota
	stateDegraded
	stateOffline
	stateRevoked
)

func stateOf(d store.Device) kioskState {
	switch {
	case d.Revoked:
		return stateRevoked
	case !d.Online:
		return stateOffline
	case degraded(d.Peripherals):
		return stateDegraded
	}
	return stateOnline
}

// count adds a kiosk in state st to t.
func count(t *api.Tally, st kioskState) {
	t.Kiosks++
	*[...]*int{&t.Online, &t.Degraded, &t.Offline, &t.Revoked}[st]++
}

// degraded reports whether a peripherals body (wire.Peripherals, as the hub stored it) names a
// peripheral that is not ok or not connected. A body that does not decode counts as degraded.
func degraded(body json.RawMessage) bool {
	if len(body) == 0 {
		return false
	}
	// Fast path for the common case, a body as agents encode it (wire.Encode, compact) in which
	// every peripheral is connected and ok: as many of each as there are statuses. Anything else
	// is decoded.
	n := bytes.Count(body, []byte(`"status":`))
	if n > 0 && bytes.Count(body, []byte(`"status":"ok"`)) == n && bytes.Count(body, []byte(`"connected":true`)) == n {
		return false
	}
	var ps struct {
		Devices []struct {
			Connected bool                 `json:"connected"`
			Status    wire.PeripheralState `json:"status"`
		} `json:"devices"`
	}
	if err := json.Unmarshal(body, &ps); err != nil {
		return true
	}
	for _, p := range ps.Devices {
		if !p.Connected || p.Status != wire.PeripheralOK {
			return true
		}
	}
	return false
}
