package identity

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/strictjson"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

const assertionSkew = 30 * time.Second

var assertionAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA, jose.RS256}

func invalidAssertion(format string, args ...any) error {
	return oidc.ErrInvalidGrant().WithDescription("assertion: "+format, args...)
}

// openAssertion returns the signed assertion inside one encrypted to this hub (wire.SealAssertion),
// and whether it was; a signed assertion is returned as it is.
func (p *Provider) openAssertion(ctx context.Context, assertion string) (string, bool, error) {
	if strings.Count(assertion, ".") != 4 { // a compact JWE has five parts, a JWS three
		return assertion, false, nil
	}
	jwe, err := jose.ParseEncryptedCompact(assertion, []jose.KeyAlgorithm{wire.AssertionKeyAlg},
		[]jose.ContentEncryption{wire.AssertionEnc})
	if err != nil {
		return "", true, invalidAssertion("not a JWE with %s and %s", wire.AssertionKeyAlg, wire.AssertionEnc)
	}
	if cty, _ := jwe.Header.ExtraHeaders[jose.HeaderContentType].(string); cty != "JWT" {
		return "", true, invalidAssertion("encrypted content must be a signed JWT (cty JWT)")
	}
	key, err := p.decryptionKey(ctx, jwe.Header.KeyID)
	if errors.Is(err, errNoKey) {
		return "", true, invalidAssertion("encrypted to key %q, which is not this hub's: fetch the current one from jwks_uri", jwe.Header.KeyID)
	}
	if err != nil {
		return "", true, oidc.ErrServerError().WithParent(err)
	}
	plain, err := jwe.Decrypt(key)
	if err != nil {
		return "", true, invalidAssertion("does not decrypt with this hub's key %q: tampered with, or encrypted to another key", jwe.Header.KeyID)
	}
	defer clear(plain)
	return string(plain), true, nil
}

// verifyKioskAssertion checks an assertion to the OpenID Provider (see verifyAssertion).
func (p *Provider) verifyKioskAssertion(ctx context.Context, assertion string) (*wire.KioskClaims, error) {
	return p.verifyAssertion(ctx, assertion, p.cfg.Issuer, p.cfg.Issuer+"/oidc/token")
}

// VerifyKiosk authenticates a kiosk's own request to the hub's HTTP API (hub/httpapi): assertion
// is the kiosk's (wire.KioskClaims without a card, signed by its enrolled device key, for
// audience the issuer's URL followed by api.Prefix, used once). It returns the kiosk's device ID,
// or an error saying what was wrong.
func (p *Provider) VerifyKiosk(ctx context.Context, assertion string) (string, error) {
	c, err := p.verifyAssertion(ctx, assertion, p.cfg.Issuer+api.Prefix)
	if err != nil {
		var oe *oidc.Error
		if errors.As(err, &oe) && oe.ErrorType == oidc.InvalidGrant {
			return "", errors.New(oe.Description)
		}
		return "", err
	}
	if c.Card != nil {
		c.Card.Wipe()
		return "", errors.New("assertion: no id_card on an API request")
	}
	return c.Issuer, nil
}

// verifyAssertion checks an assertion (wire.KioskClaims, signed by the kiosk's enrolled device
// key: ES256, EdDSA or RS256; encrypted to the hub when it carries a card) against the enrolled,
// unrevoked kiosk named by its issuer, and burns its jti. Its audience must name one of aud.
func (p *Provider) verifyAssertion(ctx context.Context, assertion string, aud ...string) (*wire.KioskClaims, error) {
	assertion, encrypted, err := p.openAssertion(ctx, assertion)
	if err != nil {
		return nil, err
	}
	jws, err := jose.ParseSigned(assertion, assertionAlgs)
	if err != nil {
		return nil, invalidAssertion("not a signed JWT (ES256, EdDSA or RS256)")
	}
	if len(jws.Signatures) != 1 {
		return nil, invalidAssertion("must have exactly one signature")
	}
	raw := jws.UnsafePayloadWithoutVerification()
	defer clear(raw)
	var c wire.KioskClaims
	if err := strictjson.Check(raw); err != nil {
		// Only the kind of fault: the claims may hold a card, and this description is logged.
		var se *strictjson.Error
		errors.As(err, &se)
		return nil, invalidAssertion("claims are not strict JSON: %v", se.Kind)
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, invalidAssertion("claims are not valid JSON")
	}
	ok := false
	defer func() {
		if !ok {
			c.Card.Wipe()
		}
	}()
	if c.Card != nil && !encrypted {
		return nil, invalidAssertion("id_card must travel encrypted to the hub's key (JWE %s + %s, the JWKS key with use enc)",
			wire.AssertionKeyAlg, wire.AssertionEnc)
	}
	if c.Issuer == "" || c.Subject != c.Issuer {
		return nil, invalidAssertion("iss and sub must both be the kiosk's device ID")
	}
	dev, err := p.devices.GetDevice(ctx, c.Issuer)
	if errors.Is(err, store.ErrNotFound) {
		return nil, invalidAssertion("unknown kiosk")
	}
	if err != nil {
		return nil, oidc.ErrServerError().WithParent(err)
	}
	if dev.Revoked {
		return nil, invalidAssertion("kiosk is revoked")
	}
	cert, err := parseCert(dev.CertPEM)
	if err != nil {
		return nil, invalidAssertion("kiosk has no usable certificate")
	}
	now := p.now()
	if now.After(cert.NotAfter) {
		return nil, invalidAssertion("kiosk certificate expired")
	}
	if _, err := jws.Verify(cert.PublicKey); err != nil {
		return nil, invalidAssertion("signature does not verify with the kiosk's key")
	}
	if !slices.ContainsFunc(aud, func(a string) bool { return slices.Contains(c.Audience, a) }) {
		return nil, invalidAssertion("aud must name %s", aud[0])
	}
	iat, exp := c.IssuedAt.Time(), c.Expiry.Time()
	switch {
	case c.Expiry == 0 || c.IssuedAt == 0:
		return nil, invalidAssertion("iat and exp required")
	case !now.Before(exp.Add(assertionSkew)):
		return nil, invalidAssertion("expired")
	case iat.After(now.Add(assertionSkew)):
		return nil, invalidAssertion("issued in the future")
	case exp.Sub(iat) > p.cfg.AssertionMaxAge:
		return nil, invalidAssertion("lifetime longer than %s", p.cfg.AssertionMaxAge)
	case c.ID == "" || len(c.ID) > 128:
		return nil, invalidAssertion("jti required (at most 128 characters)")
	}
	if err := p.st.UseAssertion(ctx, c.Issuer+"\x00"+c.ID, exp.Add(assertionSkew)); err != nil {
		if errors.Is(err, store.ErrExists) {
			return nil, invalidAssertion("replayed")
		}
		return nil, oidc.ErrServerError().WithParent(err)
	}
	ok = true
	return &c, nil
}

func parseCert(pemBytes []byte) (*x509.Certificate, error) {
	blk, _ := pem.Decode(pemBytes)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, errors.New("no certificate in PEM")
	}
	return x509.ParseCertificate(blk.Bytes)
}

// sessionRequest is a grant this package completes itself (ID-card login, device grant). It is
// an op.AuthRequest so that op puts its acr in the ID token; op gives it a refresh token only
// when it is refreshable (and offline_access was granted to a client allowed to refresh).
type sessionRequest struct {
	store.Token
	refreshable bool
	short       bool // a kiosk session: KioskSessionTTL
}

var _ op.AuthRequest = (*sessionRequest)(nil)

func (k *sessionRequest) GetID() string                         { return k.FamilyID }
func (k *sessionRequest) GetACR() string                        { return k.ACR }
func (k *sessionRequest) GetAMR() []string                      { return k.AMR }
func (k *sessionRequest) GetAudience() []string                 { return []string{k.ClientID} }
func (k *sessionRequest) GetAuthTime() time.Time                { return k.AuthTime }
func (k *sessionRequest) GetClientID() string                   { return k.ClientID }
func (k *sessionRequest) GetCodeChallenge() *oidc.CodeChallenge { return nil }
func (k *sessionRequest) GetNonce() string                      { return "" }
func (k *sessionRequest) GetRedirectURI() string                { return "" }
func (k *sessionRequest) GetResponseMode() oidc.ResponseMode    { return "" }
func (k *sessionRequest) GetScopes() []string                   { return k.Scopes }
func (k *sessionRequest) GetState() string                      { return "" }
func (k *sessionRequest) GetSubject() string                    { return k.Subject }
func (k *sessionRequest) Done() bool                            { return true }

// GetResponseType is "code" for a refreshable request: that is what op looks at.
func (k *sessionRequest) GetResponseType() oidc.ResponseType {
	if k.refreshable {
		return oidc.ResponseTypeCode
	}
	return ""
}

// issue answers a completed session request with an access token, a refresh token if
// refreshable, and an ID token if openid was asked for.
func (p *Provider) issue(ctx context.Context, req *sessionRequest, c store.Client) (*oidc.AccessTokenResponse, error) {
	oc := &opClient{c: c, p: p}
	at, rt, validity, err := op.CreateAccessToken(ctx, req, op.AccessTokenTypeBearer, p.op, oc, "")
	if err != nil {
		return nil, err
	}
	resp := &oidc.AccessTokenResponse{AccessToken: at, RefreshToken: rt, TokenType: oidc.BearerToken,
		ExpiresIn: uint64(validity / time.Second), Scope: req.Scopes}
	if slices.Contains(req.Scopes, oidc.ScopeOpenID) {
		ttl := oc.IDTokenLifetime()
		if req.short {
			ttl = p.cfg.KioskSessionTTL
		}
		if resp.IDToken, err = op.CreateIDToken(ctx, p.cfg.Issuer, req, ttl, at, "", p.op.Storage(), oc); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

// kioskGrant is the ID-card login: a JWT bearer grant (RFC 7523 §2.1) whose assertion the kiosk
// signed after reading a card. It answers a short session (no refresh token) whose acr and amr
// say the citizen was identified by ID card at a kiosk.
func (p *Provider) kioskGrant(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	c, err := p.tokenClient(r, oidc.GrantTypeBearer)
	if err != nil {
		op.RequestError(w, r, err, nil)
		return
	}
	resources, err := clientResources(ctx, c)
	if err != nil {
		op.RequestError(w, r, err, nil)
		return
	}
	claims, err := p.verifyKioskAssertion(ctx, r.PostForm.Get("assertion"))
	if err != nil {
		op.RequestError(w, r, err, nil)
		return
	}
	card := claims.Card
	defer card.Wipe()
	if card == nil {
		op.RequestError(w, r, invalidAssertion("id_card missing"), nil)
		return
	}
	if err := CheckIDNumber(card.Number); err != nil {
		op.RequestError(w, r, invalidAssertion("%v", err), nil)
		return
	}
	var acct store.Account
	if dc := r.PostForm.Get(ParamDeviceCode); dc != "" { // real-name binding (realname.go)
		if acct, err = p.bindCard(ctx, claims, card, dc); err != nil {
			op.RequestError(w, r, err, nil)
			return
		}
	} else if acct, err = p.citizenByCard(ctx, card); err != nil {
		p.log.Error("citizen account lookup failed", "kiosk", claims.Issuer, "err", err)
		op.RequestError(w, r, oidc.ErrServerError(), nil)
		return
	}
	now := p.now()
	scopes := without(clientScopes(c, strings.Fields(r.PostForm.Get("scope"))), oidc.ScopeOfflineAccess)
	req := &sessionRequest{Token: store.Token{FamilyID: randomToken(16), UserID: acct.ID, Subject: p.sec.subject(c, acct.ID),
		ClientID: c.ID, Scopes: scopes, AMR: []string{"sc", "hwk"}, ACR: ACRIDCard, AuthTime: now,
		DeviceID: claims.Issuer, Audience: resources}, short: true}
	resp, err := p.issue(ctx, req, c)
	if err != nil {
		op.RequestError(w, r, err, nil)
		return
	}
	p.log.Info("id-card login", "kiosk", claims.Issuer, "account", acct.ID)
	writeJSON(w, http.StatusOK, resp)
}

// CheckIDNumber validates a resident ID number (GB 11643-1999): 17 digits and a check character
// (ISO 7064 MOD 11-2). Its error never contains the number.
func CheckIDNumber(n []byte) error {
	if len(n) != 18 {
		return fmt.Errorf("id number must have 18 characters, has %d", len(n))
	}
	sum := 0
	for i := 0; i < 17; i++ {
		if n[i] < '0' || n[i] > '9' {
			return errors.New("id number: first 17 characters must be digits")
		}
		w := 1
		for j := 0; j < 17-i; j++ {
			w = w * 2 % 11
		}
		sum += int(n[i]-'0') * w
	}
	want := "10X98765432"[sum%11]
	got := n[17]
	if got == 'x' {
		got = 'X'
	}
	if got != want {
		return errors.New("id number: check character does not match")
	}
	return nil
}
