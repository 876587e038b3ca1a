package identity

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	httphelper "github.com/zitadel/oidc/v3/pkg/http"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

// GrantTypeJWTBearer is the RFC 7523 §2.1 grant of the kiosk's ID-card login.
const GrantTypeJWTBearer = string(oidc.GrantTypeBearer)

const maxForm = 64 << 10

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// renderDiscovery builds the discovery document (OpenID Connect Discovery 1.0 §3) once, from
// op's with what this provider does not offer removed.
func (p *Provider) renderDiscovery(ctx context.Context) error {
	d := op.CreateDiscoveryConfig(p.issuerCtx(ctx), p.op, &opStorage{p})
	d.ResponseTypesSupported = []string{string(oidc.ResponseTypeCode)}
	d.GrantTypesSupported = []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken,
		oidc.GrantTypeDeviceCode, oidc.GrantTypeBearer}
	d.SubjectTypesSupported = []string{"public", "pairwise"}
	d.CodeChallengeMethodsSupported = []oidc.CodeChallengeMethod{oidc.CodeChallengeMethodS256}
	d.TokenEndpointAuthMethodsSupported = []oidc.AuthMethod{oidc.AuthMethodBasic, oidc.AuthMethodNone}
	d.TokenEndpointAuthSigningAlgValuesSupported = nil
	d.IntrospectionEndpointAuthMethodsSupported = []oidc.AuthMethod{oidc.AuthMethodBasic}
	d.IntrospectionEndpointAuthSigningAlgValuesSupported = nil
	d.RevocationEndpointAuthMethodsSupported = []oidc.AuthMethod{oidc.AuthMethodBasic, oidc.AuthMethodNone}
	d.RevocationEndpointAuthSigningAlgValuesSupported = nil
	d.RequestObjectSigningAlgValuesSupported = nil
	d.DeviceAuthorizationEndpoint = p.cfg.Issuer + "/oidc/device_authorization"
	d.ClaimsSupported = []string{"sub", "aud", "exp", "iat", "iss", "auth_time", "nonce", "acr", "amr",
		"at_hash", "c_hash", "azp", "name", "preferred_username", "roles"}
	d.ACRValuesSupported = []string{ACRPhone, ACRFederated, ACRPassword, ACRPasskey, ACRRealName, ACRIDCard, ACRDevice}
	var err error
	p.discovery, err = json.Marshal(d)
	return err
}

func (p *Provider) serveDiscovery(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Write(p.discovery)
}

func (p *Provider) serveKeys(w http.ResponseWriter, r *http.Request) {
	_, jwks, err := p.publicKeys(r.Context())
	if err != nil {
		p.log.Error("load public keys failed", "err", err)
		http.Error(w, "keys unavailable", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=60")
	w.Write(jwks)
}

// serveToken answers the token endpoint: the device and JWT bearer grants here, the code and
// refresh grants by op. Password and implicit grants are not offered.
func (p *Provider) serveToken(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	r = r.WithContext(p.issuerCtx(r.Context()))
	if err := r.ParseForm(); err != nil {
		op.RequestError(w, r, oidc.ErrInvalidRequest().WithDescription("malformed form body"), nil)
		return
	}
	ctx, err := p.requestedResources(r.Context(), r)
	if err != nil {
		op.RequestError(w, r, err, nil)
		return
	}
	r = r.WithContext(ctx)
	switch gt := r.PostForm.Get("grant_type"); gt {
	case string(oidc.GrantTypeCode), string(oidc.GrantTypeRefreshToken):
		p.op.ServeHTTP(w, r)
	case string(oidc.GrantTypeDeviceCode):
		p.deviceGrant(w, r)
	case GrantTypeJWTBearer:
		p.kioskGrant(w, r)
	case "":
		op.RequestError(w, r, oidc.ErrInvalidRequest().WithDescription("grant_type missing"), nil)
	default:
		op.RequestError(w, r, oidc.ErrUnsupportedGrantType().WithDescription("grant_type not offered"), nil)
	}
}

// tokenClient authenticates the client of a token or device request: confidential clients by
// secret, public ones by ID. It refuses clients without the grant type.
func (p *Provider) tokenClient(r *http.Request, gt oidc.GrantType) (store.Client, error) {
	id, authenticated, err := op.ClientIDFromRequest(r, p.op)
	if err != nil {
		return store.Client{}, oidc.ErrInvalidClient().WithDescription("client authentication failed").WithParent(err)
	}
	c, err := p.client(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return c, oidc.ErrInvalidClient().WithDescription("unknown client")
	}
	if err != nil {
		return c, oidc.ErrServerError().WithParent(err)
	}
	if !c.Public() && !authenticated {
		return c, oidc.ErrInvalidClient().WithDescription("confidential client must authenticate")
	}
	if !allows(c, gt) {
		return c, oidc.ErrUnauthorizedClient().WithDescription("grant type not registered for this client")
	}
	return c, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Cache-Control", "no-store")
	httphelper.MarshalJSONWithStatus(w, v, status)
}

// serveAuthorize passes the authorization request to op with its resource indicators (RFC 8707
// §2) in the context, for CreateAuthRequest to check against the client and keep. Errors before
// the client and its redirect URI are known are shown, not redirected.
func (p *Provider) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	}
	if err := r.ParseForm(); err != nil {
		op.RequestError(w, r, oidc.ErrInvalidRequest().WithDescription("malformed request"), nil)
		return
	}
	ctx, err := p.requestedResources(r.Context(), r)
	if err != nil {
		op.RequestError(w, r, err, nil)
		return
	}
	p.op.ServeHTTP(w, r.WithContext(ctx))
}

// serveUserinfo is the UserInfo endpoint (OIDC Core §5.3). An unknown, revoked or expired token
// is answered 401 with error invalid_token (RFC 6750 §3.1).
func (p *Provider) serveUserinfo(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Access-Control-Allow-Origin", "*") // bearer only, no cookies
	t, err := p.accessToken(r)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, oidc.ErrInvalidRequest().WithDescription("access token invalid"))
		return
	}
	ui := new(oidc.UserInfo)
	if err := p.fillUserinfo(r.Context(), ui, t.UserID, t.Subject, t.Scopes); err != nil {
		p.log.Error("userinfo failed", "err", err)
		writeJSON(w, http.StatusInternalServerError, oidc.ErrServerError())
		return
	}
	writeJSON(w, http.StatusOK, ui)
}
