package httpapi

import (
	"net/http"
	"slices"
	"strings"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

func (a *API) siteRoutes() {
	route(a, "GET /sites", staff, http.StatusOK, a.listSites)
	route(a, "POST /sites", admins, http.StatusCreated, a.createSite)
}

func (a *API) createSite(r *http.Request, s api.CreateSite) (fleet.Site, error) {
	var iv invalid
	iv.check(wire.ValidDeviceID(s.ID), "id", "3-64 characters of a-z, 0-9 and '-'")
	iv.check(strings.TrimSpace(s.Name) != "" && len(s.Name) <= 200, "name", "required, at most 200 bytes")
	iv.check(validRegion(s.Region), "region", "a six-digit GB/T 2260 administrative division code, got %q", s.Region)
	if err := iv.err(); err != nil {
		return s, err
	}
	if !principal(r).InScope(s.Region) {
		return s, outOfScope("region", s.Region)
	}
	return s, a.cfg.Store.CreateSite(r.Context(), store.Site(s))
}

// listSites lists the sites in the caller's region scope.
func (a *API) listSites(r *http.Request, _ none) (api.Sites, error) {
	s, err := a.cfg.Store.ListSites(r.Context())
	p := principal(r)
	s = slices.DeleteFunc(s, func(s store.Site) bool { return !p.InScope(s.Region) })
	return api.Sites{Sites: convert(s, apiSite)}, err
}

func apiSite(s store.Site) fleet.Site { return fleet.Site(s) }

func validRegion(s string) bool {
	if len(s) != 6 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != "000000"
}

func validRegionPrefix(s string) bool {
	return len(s) <= 6 && strings.Trim(s, "0123456789") == ""
}
