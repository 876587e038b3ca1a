package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/kioskfleet/kioskfleet/hub/identity"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
)

// Principal is an authenticated caller.
type Principal struct {
	Subject  string
	Username string // a staff member's username; the bootstrap token has none
	Name     string
	Roles    []string
	// Regions is the caller's region scope (fleet.InScope): every endpoint shows it the kiosks
	// and sites under one of these prefixes only, and refuses (403) to act on others. Empty:
	// everywhere.
	Regions    []string
	ClientID   string // the client an access token was issued to (none for the bootstrap token)
	KioskID    string // the kiosk a citizen's session was opened at, if any
	Department string // a developer's department (hub/catalog)
	// Device is the kiosk itself, authenticated by its device key (KioskAssertions): its only
	// role is RoleKiosk, and the endpoints open to it answer about this kiosk only.
	Device string
	// Audience is the APIs the token was issued for (RFC 8707; AudienceFleet, AudienceCitizen):
	// an endpoint refuses a token not issued for its API, whatever the account's roles.
	Audience []string
}

// The hub's APIs, as a token's audience names them (Principal.Audience). The citizens' API is
// the /me endpoints (a citizen's own cases, recommendations, ratings) and the channels' events;
// the fleet API is every other endpoint, for staff. A citizen's token opens no fleet endpoint, a
// staff member's none of the citizens', a department's app (a token for neither) none at all.
const (
	AudienceFleet   = "fleet"
	AudienceCitizen = "citizen"
)

// For reports whether p's token was issued for the API aud.
func (p Principal) For(aud string) bool { return slices.Contains(p.Audience, aud) }

// audienceOf is the API of an endpoint open to roles: the citizens' for citizens, the fleet API
// for every staff role.
func audienceOf(roles []string) string {
	if slices.Contains(roles, roleCitizen) {
		return AudienceCitizen
	}
	return AudienceFleet
}

// InScope reports whether region (a kiosk's or site's code) lies in p's region scope.
func (p Principal) InScope(region string) bool { return fleet.InScope(region, p.Regions) }

// Has reports whether p has any of roles.
func (p Principal) Has(roles ...string) bool {
	return slices.ContainsFunc(p.Roles, func(r string) bool { return slices.Contains(roles, r) })
}

// Authenticator turns a request's credentials into a Principal.
type Authenticator interface {
	Authenticate(r *http.Request) (Principal, error)
}

// ErrUnauthenticated is returned by authenticators for missing or invalid credentials.
var ErrUnauthenticated = errors.New("httpapi: missing or invalid credentials")

// BootstrapToken authenticates the admin token printed at the hub's first start.
type BootstrapToken struct{ Hash [32]byte }

// NewBootstrapToken returns an authenticator for secret.
func NewBootstrapToken(secret string) BootstrapToken {
	return BootstrapToken{Hash: sha256.Sum256([]byte(secret))}
}

// Authenticate implements Authenticator.
func (b BootstrapToken) Authenticate(r *http.Request) (Principal, error) {
	tok, ok := bearer(r)
	if !ok {
		return Principal{}, ErrUnauthenticated
	}
	h := sha256.Sum256([]byte(tok))
	if subtle.ConstantTimeCompare(h[:], b.Hash[:]) != 1 {
		return Principal{}, ErrUnauthenticated
	}
	return Principal{Subject: "bootstrap-admin", Roles: []string{"admin"}, Audience: []string{AudienceFleet}}, nil
}

// OIDCProvider is the hub's OpenID Provider as the API authenticates its access tokens with it
// (hub/identity's Provider).
type OIDCProvider interface {
	Authenticate(r *http.Request) (identity.Principal, error)
	FleetAPI() string
	CitizenAPI() string
}

// OIDC authenticates the provider's access tokens, with the APIs each was issued for.
type OIDC struct{ P OIDCProvider }

// Authenticate implements Authenticator.
func (o OIDC) Authenticate(r *http.Request) (Principal, error) {
	pr, err := o.P.Authenticate(r)
	if err != nil {
		return Principal{}, fmt.Errorf("%w: %w", ErrUnauthenticated, err)
	}
	var aud []string
	if pr.For(o.P.FleetAPI()) {
		aud = append(aud, AudienceFleet)
	}
	if pr.For(o.P.CitizenAPI()) {
		aud = append(aud, AudienceCitizen)
	}
	return Principal{Subject: pr.Subject, Username: pr.Username, Name: pr.Name, Roles: pr.Roles, Regions: pr.Regions,
		Department: pr.Department, ClientID: pr.ClientID, KioskID: pr.KioskID, Audience: aud}, nil
}

// authenticateFor authenticates r's token and wants it issued for the API aud.
func (a *API) authenticateFor(r *http.Request, aud string) (Principal, error) {
	p, err := a.cfg.Auth.Authenticate(r)
	if err != nil {
		return Principal{}, err
	}
	if !p.For(aud) {
		return Principal{}, fmt.Errorf("%w: token not issued for the %s API", ErrUnauthenticated, aud)
	}
	return p, nil
}

// AnyOf tries authenticators in order and returns the first success.
type AnyOf []Authenticator

// Authenticate implements Authenticator.
func (a AnyOf) Authenticate(r *http.Request) (Principal, error) {
	for _, au := range a {
		if p, err := au.Authenticate(r); err == nil {
			return p, nil
		}
	}
	return Principal{}, ErrUnauthenticated
}

// RoleKiosk is the role of a kiosk authenticated by its own device key (KioskAssertions).
const RoleKiosk = "kiosk"

// KioskVerifier verifies a kiosk's assertion to the API and returns the kiosk's device ID
// (hub/identity's Provider.VerifyKiosk: signed by the enrolled, unrevoked kiosk's device key,
// used once).
type KioskVerifier interface {
	VerifyKiosk(ctx context.Context, assertion string) (deviceID string, err error)
}

// KioskAssertions authenticates a kiosk by an assertion signed with its device key, sent as
// "Authorization: Kiosk JWT" (api.KioskScheme): the principal is the kiosk (Device), with
// RoleKiosk alone.
type KioskAssertions struct{ Verifier KioskVerifier }

// Authenticate implements Authenticator.
func (k KioskAssertions) Authenticate(r *http.Request) (Principal, error) {
	scheme, a, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	a = strings.TrimSpace(a)
	if !ok || !strings.EqualFold(scheme, api.KioskScheme) || a == "" {
		return Principal{}, ErrUnauthenticated
	}
	id, err := k.Verifier.VerifyKiosk(r.Context(), a)
	if err != nil {
		return Principal{}, fmt.Errorf("%w: %w", ErrUnauthenticated, err)
	}
	return Principal{Subject: "kiosk:" + id, Roles: []string{RoleKiosk}, Device: id, Audience: []string{AudienceFleet}}, nil
}

// bearer returns the token of an "Authorization: Bearer" header. RFC 9110 §11.1: the scheme is
// case-insensitive.
func bearer(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	tok = strings.TrimSpace(tok)
	return tok, ok && strings.EqualFold(scheme, "Bearer") && tok != ""
}

// authorize lets a caller with any of roles through: 401 without valid credentials or with a
// token not issued for the endpoint's API (audienceOf; RFC 6750 §3.1 invalid_token), 403
// without the role.
func (a *API) authorize(w http.ResponseWriter, r *http.Request, roles []string) (Principal, error) {
	aud := audienceOf(roles)
	p, err := a.authenticateFor(r, aud)
	if err != nil {
		h := `Bearer realm="kioskfleet"`
		if _, ok := bearer(r); ok {
			h += `, error="invalid_token"`
		}
		w.Header().Set("WWW-Authenticate", h)
		return p, apiErr(http.StatusUnauthorized, "unauthorized", "a valid bearer token issued for the %s API is required", aud)
	}
	if !p.Has(roles...) {
		return p, apiErr(http.StatusForbidden, "forbidden", "role %s required", strings.Join(roles, " or "))
	}
	return p, nil
}

type principalKey struct{}

// principal returns the caller route authorized.
func principal(r *http.Request) Principal {
	p, _ := r.Context().Value(principalKey{}).(Principal)
	return p
}

// outOfScope is the answer to a caller acting on a kiosk or site outside its region scope.
func outOfScope(what, id string) error {
	return apiErr(http.StatusForbidden, "forbidden", "%s %s is outside your region scope", what, id)
}
