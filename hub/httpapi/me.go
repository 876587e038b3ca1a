package httpapi

import (
	"net/http"

	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// staffRoles is every staff role: who may ask who they are.
var staffRoles = []string{"admin", "fieldops", "reviewer", "developer"}

func (a *API) meRoutes() {
	route(a, "GET /me", staffRoles, http.StatusOK, a.me)
}

// me says who the caller is as the API sees it: its roles and region scope.
func (a *API) me(r *http.Request, _ none) (api.Me, error) {
	p := principal(r)
	return api.Me{Subject: p.Subject, Username: p.Username, Name: p.Name, Roles: nonNil(p.Roles), Regions: nonNil(p.Regions)}, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
