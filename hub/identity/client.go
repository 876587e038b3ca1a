package identity

import (
	"context"
	"net/url"
	"slices"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

// opClient is a Client as op sees it.
type opClient struct {
	c store.Client
	p *Provider
}

var _ op.Client = (*opClient)(nil)

func (o *opClient) GetID() string                    { return o.c.ID }
func (o *opClient) RedirectURIs() []string           { return o.c.RedirectURIs }
func (o *opClient) PostLogoutRedirectURIs() []string { return o.c.PostLogoutURIs }
func (o *opClient) ApplicationType() op.ApplicationType {
	switch o.c.AppType {
	case "native":
		return op.ApplicationTypeNative
	case "user_agent":
		return op.ApplicationTypeUserAgent
	}
	return op.ApplicationTypeWeb
}
func (o *opClient) AuthMethod() oidc.AuthMethod {
	if o.c.Public() {
		return oidc.AuthMethodNone
	}
	return oidc.AuthMethodBasic
}

// ResponseTypes offers the code flow only: no implicit or hybrid flow.
func (o *opClient) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (o *opClient) GrantTypes() []oidc.GrantType {
	var out []oidc.GrantType
	for _, g := range o.c.GrantTypes {
		out = append(out, oidc.GrantType(g))
	}
	return out
}
func (o *opClient) LoginURL(id string) string {
	return loginPath + "?id=" + url.QueryEscape(id)
}
func (o *opClient) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeBearer }
func (o *opClient) IDTokenLifetime() time.Duration      { return o.p.cfg.IDTokenTTL }
func (o *opClient) DevMode() bool                       { return false }
func (o *opClient) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (o *opClient) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (o *opClient) IsScopeAllowed(string) bool           { return false }
func (o *opClient) IDTokenUserinfoClaimsAssertion() bool { return false }
func (o *opClient) ClockSkew() time.Duration             { return 0 }

func allows(c store.Client, grant oidc.GrantType) bool {
	return slices.Contains(c.GrantTypes, string(grant))
}

// clientTTL bounds how long a replica serves a cached client after a change elsewhere that it
// was not told of (ForgetClient).
const clientTTL = 5 * time.Second

type cachedClient struct {
	c      store.Client
	loaded time.Time
}

// client returns a registered client, from a short-lived cache.
func (p *Provider) client(ctx context.Context, id string) (store.Client, error) {
	if v, ok := p.clients.Load(id); ok && time.Since(v.(cachedClient).loaded) < clientTTL {
		return v.(cachedClient).c, nil
	}
	c, err := p.st.GetClient(ctx, id)
	if err != nil {
		return c, err
	}
	p.clients.Store(id, cachedClient{c: c, loaded: time.Now()})
	return c, nil
}

// ForgetClient drops the cached copy of a client, changed or deleted (on any replica).
func (p *Provider) ForgetClient(id string) { p.clients.Delete(id) }

// ForgetClients drops every cached client.
func (p *Provider) ForgetClients() { p.clients.Clear() }
