package api

import (
	"context"
	"net/http"
	"net/url"
)

// The OpenID Provider's admin API (hub/identity, served by the hub under /oidc/admin). It takes
// access tokens of accounts with the admin role (fleetctl login), not the hub's bootstrap token,
// and answers errors with the same ErrorBody as /api/v1.
const (
	AdminClientsPath = "/oidc/admin/clients" // GET (Clients), POST (ClientRegistration); /{id}: GET, DELETE
	AdminStaffPath   = "/oidc/admin/staff"   // GET (Staff), POST (StaffRequest); /{username}: PUT (StaffRequest)
)

// ClientRegistration is a registered client (channel: web portal, mobile app, kiosk shell, ...)
// as the admin API shows and accepts it. Secret is set only in the answer to the registration of
// a confidential client: the provider makes it, shows it this once and keeps only its hash.
type ClientRegistration struct {
	ID             string   `json:"id"`
	Name           string   `json:"name"`
	AppType        string   `json:"appType"` // web, native or user_agent
	RedirectURIs   []string `json:"redirectUris"`
	PostLogoutURIs []string `json:"postLogoutRedirectUris"`
	GrantTypes     []string `json:"grantTypes"` // OAuth grant type names
	FirstParty     bool     `json:"firstParty"` // consent not asked
	// Pairwise subjects (OIDC Core §8.1): the sector groups clients that may correlate.
	Pairwise bool   `json:"pairwise"`
	Sector   string `json:"sector,omitempty"`
	// KioskOnly marks the kiosk shell: its sessions are short and never refreshable.
	KioskOnly bool `json:"kioskOnly,omitempty"`
	// Scopes the client may be granted: openid (the default), profile, offline_access. A
	// request for others is narrowed to these (RFC 6749 §3.3).
	Scopes []string `json:"scopes,omitempty"`
	// Resources (RFC 8707 resource indicators) the client may ask tokens for: only a client
	// registered for the fleet API (FleetResource) gets tokens the fleet API accepts.
	Resources    []string `json:"resources,omitempty"`
	Confidential bool     `json:"confidential"` // has a secret
	Secret       string `json:"secret,omitempty"`
}

// Clients is the body of GET /oidc/admin/clients.
type Clients struct {
	Clients []ClientRegistration `json:"clients"`
}

// StaffRequest is the body of POST /oidc/admin/staff (all fields; Password 8 to 256 characters)
// and of PUT /oidc/admin/staff/{username} (Roles, which replace the account's, and optionally a
// new Password; the update also clears failed logins, which unlocks the account).
type StaffRequest struct {
	Username string   `json:"username,omitempty"`
	Name     string   `json:"name,omitempty"`
	Password string   `json:"password,omitempty"`
	Roles    []string `json:"roles"` // admin, fieldops, reviewer, developer, operator
	// Department is the catalog department the account works for: required with the developer
	// role, which acts only on that department's apps and guides. An update replaces it.
	Department string `json:"department,omitempty"`
}

// Staff is the body of GET /oidc/admin/staff: every staff account, by username.
type Staff struct {
	Staff []StaffAccount `json:"staff"`
}

// StaffAccount is a staff account as the admin API shows it.
type StaffAccount struct {
	ID         string   `json:"id"`
	Username   string   `json:"username"`
	Name       string   `json:"name"`
	Roles      []string `json:"roles"`
	Department string   `json:"department,omitempty"`
	Locked     bool     `json:"locked"`
	Failures   int      `json:"failures"` // failed logins in a row
}

// ListClients lists the registered clients.
func (c *Client) ListClients(ctx context.Context) ([]ClientRegistration, error) {
	var out Clients
	return out.Clients, c.Do(ctx, http.MethodGet, AdminClientsPath, nil, &out)
}

// ClientRegistration returns one registered client.
func (c *Client) ClientRegistration(ctx context.Context, id string) (ClientRegistration, error) {
	var out ClientRegistration
	return out, c.Do(ctx, http.MethodGet, AdminClientsPath+"/"+url.PathEscape(id), nil, &out)
}

// RegisterClient registers a client; the answer holds the secret of a confidential one.
func (c *Client) RegisterClient(ctx context.Context, reg ClientRegistration) (ClientRegistration, error) {
	var out ClientRegistration
	return out, c.Do(ctx, http.MethodPost, AdminClientsPath, reg, &out)
}

// DeleteClient deletes a client registration.
func (c *Client) DeleteClient(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodDelete, AdminClientsPath+"/"+url.PathEscape(id), nil, nil)
}

// ListStaff lists the staff accounts.
func (c *Client) ListStaff(ctx context.Context) ([]StaffAccount, error) {
	var out Staff
	return out.Staff, c.Do(ctx, http.MethodGet, AdminStaffPath, nil, &out)
}

// CreateStaff creates a staff account.
func (c *Client) CreateStaff(ctx context.Context, req StaffRequest) (StaffAccount, error) {
	var out StaffAccount
	return out, c.Do(ctx, http.MethodPost, AdminStaffPath, req, &out)
}

// UpdateStaff sets a staff account's roles (and password, when req has one) and unlocks it.
func (c *Client) UpdateStaff(ctx context.Context, username string, req StaffRequest) (StaffAccount, error) {
	var out StaffAccount
	return out, c.Do(ctx, http.MethodPut, AdminStaffPath+"/"+url.PathEscape(username), req, &out)
}
