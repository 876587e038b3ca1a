package identity

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/strictjson"
)

// accessToken returns the live access token of the request's Authorization header.
func (p *Provider) accessToken(r *http.Request) (store.Token, error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return store.Token{}, fmt.Errorf("%w: no bearer token", ErrUnauthorized)
	}
	plain, err := p.op.Crypto().Decrypt(strings.TrimSpace(tok))
	if err != nil {
		return store.Token{}, fmt.Errorf("%w: token not issued here", ErrUnauthorized)
	}
	id, sub, ok := strings.Cut(plain, ":")
	if !ok {
		return store.Token{}, fmt.Errorf("%w: malformed token", ErrUnauthorized)
	}
	t, err := p.liveAccess(r.Context(), id)
	if err != nil || t.Subject != sub {
		return store.Token{}, fmt.Errorf("%w: token unknown, revoked or expired", ErrUnauthorized)
	}
	return t, nil
}

// Principal is who an access token speaks for.
type Principal struct {
	Subject  string   // account ID
	ClientID string   // the channel the token was issued to
	Roles    []string // admin, fieldops, reviewer, developer, operator, citizen
	ACR      string
	AMR      []string
	KioskID  string // set for sessions opened at a kiosk
	FamilyID string
	Audience []string // resource indicators (RFC 8707) the token was issued for

	// Department is a staff account's department (a developer's scope), if it has one.
	Department string
}

// For reports whether the token was issued for resource.
func (p Principal) For(resource string) bool { return slices.Contains(p.Audience, resource) }

// Has reports whether the principal has the role; admin has every role.
func (p Principal) Has(role string) bool {
	return slices.Contains(p.Roles, role) || slices.Contains(p.Roles, RoleAdmin)
}

// Authenticate validates the request's Bearer access token (RFC 6750 §2.1), issued by this
// provider and neither expired nor revoked, and returns its principal with the account's roles
// as they are now. Errors wrap ErrUnauthorized.
func (p *Provider) Authenticate(r *http.Request) (Principal, error) {
	t, err := p.accessToken(r)
	if err != nil {
		return Principal{}, err
	}
	a, err := p.st.GetAccount(r.Context(), t.UserID)
	if err != nil {
		return Principal{}, fmt.Errorf("%w: account: %w", ErrUnauthorized, err)
	}
	return Principal{Subject: a.ID, ClientID: t.ClientID, Roles: a.Roles, Department: a.Department, ACR: t.ACR, AMR: t.AMR,
		KioskID: t.DeviceID, FamilyID: t.FamilyID, Audience: t.Audience}, nil
}

// AuthenticateFor is Authenticate for an API: the token must have been issued for resource (its
// audience, RFC 8707), so that a token a citizen gave a department's app does not open the
// fleet API. Errors wrap ErrUnauthorized.
func (p *Provider) AuthenticateFor(r *http.Request, resource string) (Principal, error) {
	pr, err := p.Authenticate(r)
	if err == nil && !pr.For(resource) {
		return Principal{}, fmt.Errorf("%w: token not issued for %s", ErrUnauthorized, resource)
	}
	return pr, err
}

func unauthorized(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	apiError(w, http.StatusUnauthorized, "unauthorized", msg)
}

// authenticated admits a token to the caller's own account API (/oidc/account): one of a
// first-party client (the citizen's portal or app) or one issued for the fleet API, never a
// department's app, which must not end the citizen's other sessions.
func (p *Provider) authenticated(w http.ResponseWriter, r *http.Request) (Principal, bool) {
	pr, err := p.Authenticate(r)
	if err != nil {
		unauthorized(w, "missing, unknown, revoked or expired access token")
		return pr, false
	}
	if c, err := p.client(r.Context(), pr.ClientID); (err != nil || !c.FirstParty) && !pr.For(p.FleetAPI()) {
		apiError(w, http.StatusForbidden, "forbidden", "the account API takes tokens of first-party clients only")
		return pr, false
	}
	return pr, true
}

// authorize admits a token issued for the fleet API (the admin API is part of it) whose account
// has role.
func (p *Provider) authorize(w http.ResponseWriter, r *http.Request, role string) (Principal, bool) {
	pr, err := p.AuthenticateFor(r, p.FleetAPI())
	if err != nil {
		unauthorized(w, "missing, unknown, revoked or expired access token, or one not issued for the fleet API")
		return pr, false
	}
	if !pr.Has(role) {
		apiError(w, http.StatusForbidden, "forbidden", "role "+role+" required")
		return pr, false
	}
	return pr, true
}

func apiError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

// serveListSessions lists the caller's sessions (token families): GET /oidc/account/sessions.
func (p *Provider) serveListSessions(w http.ResponseWriter, r *http.Request) {
	pr, ok := p.authenticated(w, r)
	if !ok {
		return
	}
	gs, err := p.st.ListGrants(r.Context(), pr.Subject, p.now())
	if err != nil {
		p.log.Error("list sessions failed", "err", err)
		apiError(w, http.StatusInternalServerError, "internal", "could not list sessions")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"sessions": gs})
}

// serveRevokeSession ends one of the caller's sessions: DELETE /oidc/account/sessions/{id}.
func (p *Provider) serveRevokeSession(w http.ResponseWriter, r *http.Request) {
	pr, ok := p.authenticated(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	gs, err := p.st.ListGrants(r.Context(), pr.Subject, p.now())
	if err != nil {
		apiError(w, http.StatusInternalServerError, "internal", "could not list sessions")
		return
	}
	if !slices.ContainsFunc(gs, func(g store.Grant) bool { return g.FamilyID == id }) {
		apiError(w, http.StatusNotFound, "not_found", "no such session")
		return
	}
	if err := p.st.RevokeFamily(r.Context(), id, p.now()); err != nil {
		apiError(w, http.StatusInternalServerError, "internal", "could not revoke session")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// registration is c as the admin API shows it (without its secret).
func registration(c store.Client) api.ClientRegistration {
	return api.ClientRegistration{ID: c.ID, Name: c.Name, AppType: c.AppType, RedirectURIs: c.RedirectURIs,
		PostLogoutURIs: c.PostLogoutURIs, GrantTypes: c.GrantTypes, FirstParty: c.FirstParty, Pairwise: c.Pairwise,
		Sector: c.Sector, KioskOnly: c.KioskOnly, Scopes: c.Scopes, Resources: c.Resources, Confidential: !c.Public()}
}

// serveClients lists (GET) and registers (POST) clients: role admin.
func (p *Provider) serveClients(w http.ResponseWriter, r *http.Request) {
	if _, ok := p.authorize(w, r, RoleAdmin); !ok {
		return
	}
	switch r.Method {
	case http.MethodGet:
		cs, err := p.st.ListClients(r.Context())
		if err != nil {
			apiError(w, http.StatusInternalServerError, "internal", "could not list clients")
			return
		}
		out := api.Clients{Clients: make([]api.ClientRegistration, 0, len(cs))}
		for _, c := range cs {
			out.Clients = append(out.Clients, registration(c))
		}
		writeJSON(w, http.StatusOK, out)
	case http.MethodPost:
		var reg api.ClientRegistration
		if err := decodeStrict(r, &reg); err != nil {
			apiError(w, http.StatusBadRequest, "bad_request", "malformed client: "+err.Error())
			return
		}
		c, err := p.validClient(reg)
		if err != nil {
			apiError(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
		if _, err := p.st.GetClient(r.Context(), c.ID); err == nil {
			apiError(w, http.StatusConflict, "conflict", "client exists")
			return
		}
		// The hub makes secrets; one sent in the request is never echoed or used.
		secret := ""
		if reg.Confidential {
			secret = randomToken(32)
			h := sha256.Sum256([]byte(secret))
			c.SecretHash = h[:]
		}
		p.clients.Delete(c.ID)
		if err := p.st.PutClient(r.Context(), c); err != nil {
			apiError(w, http.StatusInternalServerError, "internal", "could not store client")
			return
		}
		out := registration(c)
		out.Secret = secret
		writeJSON(w, http.StatusCreated, out)
	default:
		w.Header().Set("Allow", "GET, POST")
		apiError(w, http.StatusMethodNotAllowed, "bad_request", "method not allowed")
	}
}

// serveClient shows (GET) or deletes (DELETE) one client: role admin.
func (p *Provider) serveClient(w http.ResponseWriter, r *http.Request) {
	if _, ok := p.authorize(w, r, RoleAdmin); !ok {
		return
	}
	id := r.PathValue("id")
	switch r.Method {
	case http.MethodGet:
		c, err := p.st.GetClient(r.Context(), id)
		if errors.Is(err, store.ErrNotFound) {
			apiError(w, http.StatusNotFound, "not_found", "no such client")
			return
		}
		if err != nil {
			apiError(w, http.StatusInternalServerError, "internal", "could not read client")
			return
		}
		writeJSON(w, http.StatusOK, registration(c))
	case http.MethodDelete:
		p.clients.Delete(id)
		if err := p.st.DeleteClient(r.Context(), id); errors.Is(err, store.ErrNotFound) {
			apiError(w, http.StatusNotFound, "not_found", "no such client")
		} else if err != nil {
			apiError(w, http.StatusInternalServerError, "internal", "could not delete client")
		} else {
			w.WriteHeader(http.StatusNoContent)
		}
	default:
		w.Header().Set("Allow", "GET, DELETE")
		apiError(w, http.StatusMethodNotAllowed, "bad_request", "method not allowed")
	}
}

var offeredGrants = []string{"authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code", GrantTypeJWTBearer}

func (p *Provider) validClient(reg api.ClientRegistration) (store.Client, error) {
	c := store.Client{ID: reg.ID, Name: reg.Name, AppType: reg.AppType, RedirectURIs: reg.RedirectURIs,
		PostLogoutURIs: reg.PostLogoutURIs, GrantTypes: reg.GrantTypes, FirstParty: reg.FirstParty,
		Pairwise: reg.Pairwise, Sector: reg.Sector, KioskOnly: reg.KioskOnly, Scopes: reg.Scopes, Resources: reg.Resources}
	if c.ID == "" || len(c.ID) > 64 || strings.ContainsAny(c.ID, " /:?#") {
		return c, errors.New("id must have 1 to 64 characters without spaces, '/', ':', '?' or '#'")
	}
	if c.AppType == "" {
		c.AppType = "web"
	}
	// A department's client never sees public subjects: correlation between clients needs the
	// operator to give them the same sector.
	if !c.FirstParty {
		c.Pairwise = true
	}
	if !slices.Contains([]string{"web", "native", "user_agent"}, c.AppType) {
		return c, fmt.Errorf("appType %q: must be web, native or user_agent", c.AppType)
	}
	for _, g := range c.GrantTypes {
		if !slices.Contains(offeredGrants, g) {
			return c, fmt.Errorf("grant type %q is not offered", g)
		}
	}
	if len(c.Scopes) == 0 {
		c.Scopes = []string{"openid"}
	}
	for _, s := range c.Scopes {
		if !slices.Contains(offeredScopes, s) {
			return c, fmt.Errorf("scope %q is not offered (offered: %s)", s, strings.Join(offeredScopes, ", "))
		}
	}
	for _, res := range c.Resources {
		if !slices.Contains(p.resources(), res) {
			return c, fmt.Errorf("resource %q is not one of this hub's: %s", res, strings.Join(p.resources(), ", "))
		}
	}
	for _, u := range append(slices.Clone(c.RedirectURIs), c.PostLogoutURIs...) {
		if u == "" || strings.Contains(u, "#") || strings.Contains(u, "*") {
			return c, fmt.Errorf("redirect URI %q: must be absolute, without fragment or wildcard", u)
		}
	}
	return c, nil
}

// decodeStrict reads a JSON body of at most maxForm bytes: strict JSON (strictjson: UTF-8, no
// duplicate keys), one object without unknown fields.
func decodeStrict(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxForm+1))
	if err != nil {
		return err
	}
	if len(body) > maxForm {
		return fmt.Errorf("body over %d bytes", maxForm)
	}
	if err := strictjson.Check(body); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// serveListStaff lists the staff accounts with their roles and lock state: GET /oidc/admin/staff,
// role admin.
func (p *Provider) serveListStaff(w http.ResponseWriter, r *http.Request) {
	if _, ok := p.authorize(w, r, RoleAdmin); !ok {
		return
	}
	as, err := p.st.ListAccounts(r.Context(), "staff")
	if err != nil {
		p.log.Error("list staff failed", "err", err)
		apiError(w, http.StatusInternalServerError, "internal", "could not list accounts")
		return
	}
	out := api.Staff{Staff: make([]api.StaffAccount, len(as))}
	for i, a := range as {
		out.Staff[i] = api.StaffAccount{ID: a.ID, Username: a.Username, Name: a.Name, Roles: nonNil(a.Roles),
			Locked: a.Failures >= p.cfg.LockAfter, Failures: a.Failures}
	}
	writeJSON(w, http.StatusOK, out)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// serveCreateStaff creates a staff account: POST /oidc/admin/staff, role admin.
func (p *Provider) serveCreateStaff(w http.ResponseWriter, r *http.Request) {
	if _, ok := p.authorize(w, r, RoleAdmin); !ok {
		return
	}
	var req api.StaffRequest
	if err := decodeStrict(r, &req); err != nil {
		apiError(w, http.StatusBadRequest, "bad_request", "malformed staff account: "+err.Error())
		return
	}
	a, err := p.CreateStaff(r.Context(), NewStaff(req))
	switch {
	case errors.Is(err, store.ErrInvalid):
		apiError(w, http.StatusBadRequest, "bad_request", err.Error())
	case errors.Is(err, store.ErrExists):
		apiError(w, http.StatusConflict, "conflict", "username taken")
	case err != nil:
		p.log.Error("create staff failed", "err", err)
		apiError(w, http.StatusInternalServerError, "internal", "could not create account")
	default:
		writeJSON(w, http.StatusCreated, api.StaffAccount{ID: a.ID, Username: a.Username, Name: a.Name, Roles: a.Roles, Department: a.Department})
	}
}

// serveUpdateStaff sets a staff account's roles (and password, if given) and clears its failed
// logins, which also unlocks it: PUT /oidc/admin/staff/{username}, role admin.
func (p *Provider) serveUpdateStaff(w http.ResponseWriter, r *http.Request) {
	if _, ok := p.authorize(w, r, RoleAdmin); !ok {
		return
	}
	var req api.StaffRequest
	if err := decodeStrict(r, &req); err != nil {
		apiError(w, http.StatusBadRequest, "bad_request", "malformed staff account: "+err.Error())
		return
	}
	if err := validRoles(req.Roles, req.Department); err != nil {
		apiError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	a, err := p.st.AccountByUsername(r.Context(), r.PathValue("username"))
	if errors.Is(err, store.ErrNotFound) || (err == nil && a.Kind != "staff") {
		apiError(w, http.StatusNotFound, "not_found", "no such staff account")
		return
	}
	if err == nil && req.Password != "" {
		var h string
		if h, err = p.hash(req.Password); err == nil {
			err = p.st.SetPassword(r.Context(), a.ID, h)
		}
	}
	if err == nil {
		err = p.st.SetRoles(r.Context(), a.ID, req.Roles)
	}
	if err == nil {
		err = p.st.SetDepartment(r.Context(), a.ID, req.Department)
	}
	if err == nil {
		_, err = p.st.RecordLogin(r.Context(), a.ID, true, p.now())
	}
	if err != nil {
		p.log.Error("update staff failed", "err", err)
		apiError(w, http.StatusInternalServerError, "internal", "could not update account")
		return
	}
	writeJSON(w, http.StatusOK, api.StaffAccount{ID: a.ID, Username: a.Username, Name: a.Name, Roles: req.Roles, Department: req.Department})
}

// validRoles checks a staff account's roles and department: a developer works for one department
// (the catalog lets it touch only that department's apps and guides).
func validRoles(roles []string, department string) error {
	for _, r := range roles {
		if !slices.Contains([]string{RoleAdmin, RoleFieldOps, RoleReviewer, RoleDeveloper, RoleOperator}, r) {
			return fmt.Errorf("%w: unknown staff role %q", store.ErrInvalid, r)
		}
	}
	if slices.Contains(roles, RoleDeveloper) && department == "" {
		return fmt.Errorf("%w: the developer role needs a department", store.ErrInvalid)
	}
	if len(department) > 64 {
		return fmt.Errorf("%w: department: at most 64 characters", store.ErrInvalid)
	}
	return nil
}
