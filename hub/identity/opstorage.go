package identity

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

// opStorage adapts Storage to zitadel's op.Storage.
type opStorage struct{ p *Provider }

var (
	_ op.Storage                        = (*opStorage)(nil)
	_ op.CanSetUserinfoFromRequest      = (*opStorage)(nil)
	_ op.CanTerminateSessionFromRequest = (*opStorage)(nil)
)

// --- requests flowing through the OP

// opAuthRequest is an AuthRequest as op sees it.
type opAuthRequest struct{ store.AuthRequest }

var _ op.AuthRequest = (*opAuthRequest)(nil)

func (a *opAuthRequest) GetID() string          { return a.ID }
func (a *opAuthRequest) GetACR() string         { return a.ACR }
func (a *opAuthRequest) GetAMR() []string       { return a.AMR }
func (a *opAuthRequest) GetAudience() []string  { return []string{a.ClientID} }
func (a *opAuthRequest) GetAuthTime() time.Time { return a.AuthTime }
func (a *opAuthRequest) GetClientID() string    { return a.ClientID }
func (a *opAuthRequest) GetCodeChallenge() *oidc.CodeChallenge {
	if a.CodeChallenge == "" {
		return nil
	}
	return &oidc.CodeChallenge{Challenge: a.CodeChallenge, Method: oidc.CodeChallengeMethod(a.CodeChallengeMethod)}
}
func (a *opAuthRequest) GetNonce() string                   { return a.Nonce }
func (a *opAuthRequest) GetRedirectURI() string             { return a.RedirectURI }
func (a *opAuthRequest) GetResponseType() oidc.ResponseType { return oidc.ResponseType(a.ResponseType) }
func (a *opAuthRequest) GetResponseMode() oidc.ResponseMode { return oidc.ResponseMode(a.ResponseMode) }
func (a *opAuthRequest) GetScopes() []string                { return a.Scopes }
func (a *opAuthRequest) GetState() string                   { return a.State }
func (a *opAuthRequest) GetSubject() string                 { return a.Subject }
func (a *opAuthRequest) Done() bool                         { return a.AuthRequest.Done }

// refreshRequest is the grant behind a refresh token.
type refreshRequest struct {
	store.Token
	scopes []string
}

var _ op.RefreshTokenRequest = (*refreshRequest)(nil)

func (r *refreshRequest) GetAMR() []string            { return r.AMR }
func (r *refreshRequest) GetAudience() []string       { return []string{r.ClientID} }
func (r *refreshRequest) GetAuthTime() time.Time      { return r.AuthTime }
func (r *refreshRequest) GetClientID() string         { return r.ClientID }
func (r *refreshRequest) GetScopes() []string         { return r.scopes }
func (r *refreshRequest) GetSubject() string          { return r.Subject }
func (r *refreshRequest) SetCurrentScopes(s []string) { r.scopes = s }

// grant is what every issued token of a request records.
type grant struct {
	store.Token // Audience: the resources granted, which a refresh token keeps
	accessTTL   time.Duration
	accessAud   []string // the access token's audience: the granted resources the request names
}

func (s *opStorage) grantOf(ctx context.Context, req op.TokenRequest) (grant, error) {
	p := s.p
	g := grant{accessTTL: p.cfg.AccessTokenTTL}
	switch r := req.(type) {
	case *opAuthRequest:
		if r.Kiosk {
			g.accessTTL = p.cfg.KioskSessionTTL
		}
		g.Token = store.Token{FamilyID: r.FamilyID, UserID: r.UserID, Subject: r.Subject, ClientID: r.ClientID,
			Scopes: r.Scopes, AMR: r.AMR, ACR: r.ACR, AuthTime: r.AuthTime, Audience: r.Resources}
	case *refreshRequest:
		g.Token = r.Token
		g.Scopes = r.scopes
	case *sessionRequest:
		g.Token = r.Token
		if r.short {
			g.accessTTL = p.cfg.KioskSessionTTL
		}
	default:
		return g, fmt.Errorf("identity: unexpected token request %T", req)
	}
	g.ID, g.Hash, g.Revoked, g.Rotated = "", nil, false, false
	var err error
	g.accessAud, err = narrowAudience(ctx, g.Audience)
	return g, err
}

func (g grant) access(now time.Time) store.Token {
	t := g.Token
	t.ID, t.Kind, t.CreatedAt, t.ExpiresAt = tokenID(now), store.TokenAccess, now, now.Add(g.accessTTL)
	t.Audience = g.accessAud
	return t
}

// --- AuthStorage

func (s *opStorage) CreateAuthRequest(ctx context.Context, req *oidc.AuthRequest, _ string) (op.AuthRequest, error) {
	c, err := s.p.client(ctx, req.ClientID)
	if err != nil {
		return nil, oidc.ErrInvalidClient().WithParent(err)
	}
	// PKCE (RFC 7636) with S256 only: plain (also when the method is left out) is refused, and
	// public clients must send a challenge.
	if req.CodeChallenge != "" && req.CodeChallengeMethod != oidc.CodeChallengeMethodS256 {
		return nil, oidc.ErrInvalidRequest().WithDescription("code_challenge_method must be S256")
	}
	if req.CodeChallenge == "" && c.Public() {
		return nil, oidc.ErrInvalidRequest().WithDescription("code_challenge required (PKCE with S256)")
	}
	if req.ResponseType != oidc.ResponseTypeCode {
		return nil, oidc.ErrInvalidRequest().WithDescription("only response_type code is offered")
	}
	resources, err := clientResources(ctx, c)
	if err != nil {
		return nil, err
	}
	scopes := clientScopes(c, req.Scopes)
	if !slices.Contains(scopes, oidc.ScopeOpenID) {
		return nil, oidc.ErrInvalidScope().WithDescription("client is not registered for scope openid")
	}
	now := s.p.now()
	a := store.AuthRequest{
		ID: randomToken(16), ClientID: req.ClientID, RedirectURI: req.RedirectURI, State: req.State,
		Nonce: req.Nonce, Scopes: scopes, Resources: resources, ResponseType: string(req.ResponseType),
		ResponseMode: string(req.ResponseMode), CodeChallenge: req.CodeChallenge,
		CodeChallengeMethod: string(req.CodeChallengeMethod), Prompt: req.Prompt, UILocales: req.UILocales.String(),
		CreatedAt: now, ExpiresAt: now.Add(s.p.cfg.CodeTTL), FamilyID: randomToken(16), Kiosk: c.KioskOnly,
		ACRValues: req.ACRValues,
	}
	if err := s.p.st.SaveAuthRequest(ctx, a); err != nil {
		return nil, err
	}
	return &opAuthRequest{a}, nil
}

func (s *opStorage) AuthRequestByID(ctx context.Context, id string) (op.AuthRequest, error) {
	a, err := s.p.st.GetAuthRequest(ctx, id)
	if err != nil {
		return nil, err
	}
	if s.p.now().After(a.ExpiresAt) {
		return nil, errors.New("authorization request expired")
	}
	return &opAuthRequest{a}, nil
}

func (s *opStorage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	a, err := s.p.st.ConsumeCode(ctx, sha(code))
	if errors.Is(err, store.ErrCodeReused) {
		// RFC 6749 §4.1.2: a code used twice revokes the tokens it issued.
		if rerr := s.p.st.RevokeFamily(ctx, a.FamilyID, s.p.now()); rerr != nil {
			return nil, rerr
		}
		s.p.log.Warn("authorization code reused; its tokens are revoked", "client", a.ClientID, "family", a.FamilyID)
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	if !a.Done {
		return nil, errors.New("authorization request not completed")
	}
	if s.p.now().After(a.ExpiresAt) {
		return nil, errors.New("code expired")
	}
	return &opAuthRequest{a}, nil
}

func (s *opStorage) SaveAuthCode(ctx context.Context, id, code string) error {
	a, err := s.p.st.GetAuthRequest(ctx, id)
	if err != nil {
		return err
	}
	if len(a.CodeHash) > 0 {
		return errors.New("identity: code issued already for this request")
	}
	a.CodeHash = sha(code)
	return s.p.st.SaveAuthRequest(ctx, a)
}

func (s *opStorage) DeleteAuthRequest(ctx context.Context, id string) error {
	return s.p.st.DeleteAuthRequest(ctx, id)
}

func (s *opStorage) CreateAccessToken(ctx context.Context, req op.TokenRequest) (string, time.Time, error) {
	g, err := s.grantOf(ctx, req)
	if err != nil {
		return "", time.Time{}, err
	}
	t := g.access(s.p.now())
	if err := s.p.st.InsertTokens(ctx, t); err != nil {
		return "", time.Time{}, err
	}
	return t.ID, t.ExpiresAt, nil
}

func (s *opStorage) CreateAccessAndRefreshTokens(ctx context.Context, req op.TokenRequest, current string) (string, string, time.Time, error) {
	g, err := s.grantOf(ctx, req)
	if err != nil {
		return "", "", time.Time{}, err
	}
	now := s.p.now()
	at := g.access(now)
	value := refreshToken(now)
	rt := g.Token
	rt.ID, rt.Kind, rt.Hash, rt.CreatedAt, rt.ExpiresAt = tokenID(now), store.TokenRefresh, refreshHash(value), now, now.Add(s.p.cfg.RefreshTokenTTL)
	if rr, ok := req.(*refreshRequest); ok && current != "" {
		// The new refresh token lives no longer than the family's first one would have.
		rt.ExpiresAt = rr.ExpiresAt
		if err := s.p.st.RotateRefresh(ctx, rr.ID, now, at, rt); err != nil {
			if errors.Is(err, store.ErrTokenReused) {
				return "", "", time.Time{}, oidc.ErrInvalidGrant().WithDescription("refresh token was used already; its grant is revoked")
			}
			return "", "", time.Time{}, err
		}
		return at.ID, value, at.ExpiresAt, nil
	}
	if err := s.p.st.InsertTokens(ctx, at, rt); err != nil {
		return "", "", time.Time{}, err
	}
	return at.ID, value, at.ExpiresAt, nil
}

func (s *opStorage) TokenRequestByRefreshToken(ctx context.Context, value string) (op.RefreshTokenRequest, error) {
	t, err := s.p.st.TokenByHash(ctx, refreshHash(value))
	if err != nil || t.Kind != store.TokenRefresh {
		return nil, errors.New("unknown refresh token")
	}
	if t.Rotated {
		// OAuth 2.0 Security BCP §4.14.2: a rotated refresh token used again revokes its family.
		if err := s.p.st.RevokeFamily(ctx, t.FamilyID, s.p.now()); err != nil {
			return nil, err
		}
		s.p.log.Warn("refresh token reused; its grant is revoked", "client", t.ClientID, "family", t.FamilyID)
		return nil, store.ErrTokenReused
	}
	if t.Revoked || s.p.now().After(t.ExpiresAt) {
		return nil, errors.New("refresh token revoked or expired")
	}
	return &refreshRequest{Token: t, scopes: t.Scopes}, nil
}

func (s *opStorage) TerminateSession(ctx context.Context, subject, clientID string) error {
	return s.p.st.RevokeSubject(ctx, clientID, subject, s.p.now())
}

func (s *opStorage) TerminateSessionFromRequest(ctx context.Context, req *op.EndSessionRequest) (string, error) {
	if req.UserID != "" && req.ClientID != "" {
		if err := s.TerminateSession(ctx, req.UserID, req.ClientID); err != nil {
			return "", err
		}
	}
	return req.RedirectURI, nil
}

func (s *opStorage) RevokeToken(ctx context.Context, tokenOrID, userID, clientID string) *oidc.Error {
	var t store.Token
	var err error
	if userID != "" {
		t, err = s.p.st.GetToken(ctx, tokenOrID)
	} else {
		t, err = s.p.st.TokenByHash(ctx, refreshHash(tokenOrID))
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil // RFC 7009 §2.2: an unknown token is answered with 200
	}
	if err != nil {
		return oidc.ErrServerError().WithParent(err)
	}
	if t.ClientID != clientID {
		return oidc.ErrInvalidClient().WithDescription("token was issued to another client")
	}
	if t.Kind == store.TokenRefresh {
		err = s.p.st.RevokeFamily(ctx, t.FamilyID, s.p.now())
	} else {
		err = s.p.st.RevokeToken(ctx, t.ID, s.p.now())
	}
	if err != nil {
		return oidc.ErrServerError().WithParent(err)
	}
	return nil
}

func (s *opStorage) GetRefreshTokenInfo(ctx context.Context, clientID, value string) (string, string, error) {
	t, err := s.p.st.TokenByHash(ctx, refreshHash(value))
	if err != nil || t.Kind != store.TokenRefresh || t.ClientID != clientID {
		return "", "", op.ErrInvalidRefreshToken
	}
	return t.Subject, t.ID, nil
}

func (s *opStorage) SigningKey(ctx context.Context) (op.SigningKey, error) {
	return s.p.signingKey(ctx)
}

func (s *opStorage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.ES256}, nil
}

func (s *opStorage) KeySet(ctx context.Context) ([]op.Key, error) {
	keys, _, err := s.p.publicKeys(ctx)
	return keys, err
}

// --- OPStorage

func (s *opStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.p.client(ctx, id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, oidc.ErrInvalidClient().WithDescription("unknown client")
		}
		return nil, oidc.ErrServerError().WithParent(err)
	}
	return &opClient{c: c, p: s.p}, nil
}

func (s *opStorage) AuthorizeClientIDSecret(ctx context.Context, id, secret string) error {
	c, err := s.p.client(ctx, id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return errors.New("unknown client or wrong secret")
		}
		return oidc.ErrServerError().WithParent(err)
	}
	if c.Public() || subtle.ConstantTimeCompare(sha(secret), c.SecretHash) != 1 {
		return errors.New("unknown client or wrong secret")
	}
	return nil
}

func (s *opStorage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

func (s *opStorage) SetUserinfoFromRequest(ctx context.Context, ui *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	g, err := s.grantOf(ctx, req)
	if err != nil {
		return err
	}
	return s.p.fillUserinfo(ctx, ui, g.UserID, g.Subject, scopes)
}

// liveAccess returns the access token with the ID if it is live.
func (p *Provider) liveAccess(ctx context.Context, tokenID string) (store.Token, error) {
	t, err := p.st.GetToken(ctx, tokenID)
	if err != nil {
		return t, err
	}
	if t.Kind != store.TokenAccess || t.Revoked || !p.now().Before(t.ExpiresAt) {
		return t, errors.New("access token revoked or expired")
	}
	return t, nil
}

func (s *opStorage) SetUserinfoFromToken(ctx context.Context, ui *oidc.UserInfo, tokenID, subject, _ string) error {
	t, err := s.p.liveAccess(ctx, tokenID)
	if err != nil {
		return oidc.ErrInvalidRequest().WithDescription("access token invalid").WithParent(err)
	}
	if t.Subject != subject {
		return oidc.ErrInvalidRequest().WithDescription("access token invalid")
	}
	return s.p.fillUserinfo(ctx, ui, t.UserID, t.Subject, t.Scopes)
}

func (p *Provider) fillUserinfo(ctx context.Context, ui *oidc.UserInfo, userID, subject string, scopes []string) error {
	ui.Subject = subject
	if !slices.Contains(scopes, oidc.ScopeProfile) {
		return nil
	}
	a, err := p.st.GetAccount(ctx, userID)
	if err != nil {
		return err
	}
	ui.Name = a.Name
	if a.Kind == "citizen" && len(a.IDNumberEnc) > 0 {
		if c, err := p.IDCardOf(a); err == nil {
			ui.Name = c.Name
			c.Wipe()
		}
	}
	if a.Username != "" {
		ui.PreferredUsername = a.Username
	}
	ui.AppendClaims("roles", a.Roles)
	return nil
}

func (s *opStorage) SetIntrospectionFromToken(ctx context.Context, resp *oidc.IntrospectionResponse, tokenID, subject, clientID string) error {
	t, err := s.p.liveAccess(ctx, tokenID)
	if err != nil || t.Subject != subject {
		return errors.New("token inactive")
	}
	resp.Active = true
	resp.Subject = t.Subject
	resp.ClientID = t.ClientID
	resp.Scope = t.Scopes
	resp.Expiration = oidc.FromTime(t.ExpiresAt)
	resp.IssuedAt = oidc.FromTime(t.CreatedAt)
	resp.Audience = append([]string{t.ClientID}, t.Audience...)
	resp.TokenType = oidc.BearerToken
	return nil
}

func (s *opStorage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

func (s *opStorage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errors.New("private_key_jwt client authentication is not offered")
}

func (s *opStorage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errors.New("JWT profile grant is not offered")
}

func (s *opStorage) Health(ctx context.Context) error { return nil }
