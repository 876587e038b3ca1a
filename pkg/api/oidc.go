package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// DiscoveryPath is where the hub's OpenID Provider publishes its configuration (OpenID Connect
// Discovery 1.0 §4).
const DiscoveryPath = "/.well-known/openid-configuration"

// Discovery is what a relying party of the hub (the fleet console, fleetctl) reads of the
// provider's configuration.
type Discovery struct {
	Issuer                string `json:"issuer"`
	AuthorizationEndpoint string `json:"authorization_endpoint"`
	TokenEndpoint         string `json:"token_endpoint"`
	DeviceAuthorization   string `json:"device_authorization_endpoint"`
	UserinfoEndpoint      string `json:"userinfo_endpoint"`
	RevocationEndpoint    string `json:"revocation_endpoint"`
	EndSessionEndpoint    string `json:"end_session_endpoint"`
	JWKSURI               string `json:"jwks_uri"`
}

// HTTPClient is the HTTP client every call to the hub goes through (Do, and the OpenID
// endpoints a relying party calls with golang.org/x/oauth2): c.HTTP, or http.DefaultClient.
func (c *Client) HTTPClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

// Discover reads the hub's OpenID Provider configuration and checks that it names the
// endpoints of the authorization code flow.
func (c *Client) Discover(ctx context.Context) (Discovery, error) {
	var d Discovery
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.BaseURL, "/")+DiscoveryPath, nil)
	if err != nil {
		return d, fmt.Errorf("api: discovery: %w", err)
	}
	resp, err := c.HTTPClient().Do(req)
	if err != nil {
		return d, fmt.Errorf("api: discovery: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return d, fmt.Errorf("api: discovery: HTTP %d", resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&d); err != nil {
		return d, fmt.Errorf("api: discovery: %w", err)
	}
	if d.Issuer == "" || d.AuthorizationEndpoint == "" || d.TokenEndpoint == "" || d.JWKSURI == "" {
		return d, fmt.Errorf("api: discovery at %s lacks the issuer, authorization, token or keys endpoint", c.BaseURL)
	}
	return d, nil
}
