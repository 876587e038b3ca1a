package identity

import (
	"context"
	"net/http"
	"net/url"
	"slices"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// ParamResource is the resource indicator (RFC 8707 §2) of the authorization, device
// authorization and token requests: the API a token is asked for. A token is accepted only by the
// APIs it names (Principal.Audience); a client may ask only for resources it was registered for.
const ParamResource = "resource"

// FleetAPI returns the resource indicator of the hub's fleet API (api.FleetResource); the
// identity admin API (/oidc/admin/*) accepts tokens for it too.
func (p *Provider) FleetAPI() string { return api.FleetResource(p.cfg.Issuer) }

// CitizenAPI returns the resource indicator of the hub's citizens' API (api.CitizenResource):
// the citizens' channels ask their tokens for it.
func (p *Provider) CitizenAPI() string { return api.CitizenResource(p.cfg.Issuer) }

// resources are the resource indicators this provider issues tokens for.
func (p *Provider) resources() []string { return []string{p.FleetAPI(), p.CitizenAPI()} }

func invalidTarget(desc string) *oidc.Error {
	return oidc.ErrInvalidTarget().WithDescription("%s", desc)
}

type resourcesKey struct{}

// requestedResources reads and checks the request's resource parameters (RFC 8707 §2: absolute
// URIs without fragment, here only those this provider knows) and returns ctx carrying them for
// grantOf and CreateAuthRequest. The form must be parsed.
func (p *Provider) requestedResources(ctx context.Context, r *http.Request) (context.Context, error) {
	rs := r.Form[ParamResource]
	for _, res := range rs {
		u, err := url.Parse(res)
		if err != nil || !u.IsAbs() || u.Fragment != "" {
			return ctx, oidc.ErrInvalidRequest().WithDescription("resource must be an absolute URI without fragment (RFC 8707 §2)")
		}
		if !slices.Contains(p.resources(), res) {
			return ctx, invalidTarget("unknown resource " + res)
		}
	}
	return context.WithValue(ctx, resourcesKey{}, slices.Compact(slices.Sorted(slices.Values(rs)))), nil
}

// resourcesFrom returns the resources the request asked for; nil if it named none.
func resourcesFrom(ctx context.Context) []string {
	rs, _ := ctx.Value(resourcesKey{}).([]string)
	if len(rs) == 0 {
		return nil
	}
	return rs
}

// clientResources checks that c was registered for every resource asked for and returns them.
func clientResources(ctx context.Context, c store.Client) ([]string, error) {
	rs := resourcesFrom(ctx)
	for _, res := range rs {
		if !slices.Contains(c.Resources, res) {
			return nil, invalidTarget("client " + c.ID + " is not registered for resource " + res)
		}
	}
	return rs, nil
}

// narrowAudience is the audience of an access token issued from a grant for granted: the
// resources the token request names, each of which must have been granted (RFC 8707 §2.2), or
// all of them if it names none.
func narrowAudience(ctx context.Context, granted []string) ([]string, error) {
	rs := resourcesFrom(ctx)
	if rs == nil {
		return granted, nil
	}
	for _, res := range rs {
		if !slices.Contains(granted, res) {
			return nil, invalidTarget("resource " + res + " was not granted")
		}
	}
	return rs, nil
}

// offeredScopes are the scopes a client may be registered for.
var offeredScopes = []string{oidc.ScopeOpenID, oidc.ScopeProfile, oidc.ScopeOfflineAccess}

// clientScopes narrows requested to the scopes c was registered for (RFC 6749 §3.3: the
// authorization server may ignore scopes; the token response then says which were granted).
// A client registered without scopes gets openid only.
func clientScopes(c store.Client, requested []string) []string {
	allowed := c.Scopes
	if len(allowed) == 0 {
		allowed = []string{oidc.ScopeOpenID}
	}
	var out []string
	for _, s := range requested {
		if slices.Contains(offeredScopes, s) && slices.Contains(allowed, s) && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
