package identity

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

// ParamKioskAssertion carries, on a device authorization request of the kiosk shell, an
// assertion signed by the kiosk's device key (as for the ID-card login, without card data), so
// that the approval page can name the kiosk and its site truthfully.
const ParamKioskAssertion = "kiosk_assertion"

// serveDeviceAuthorization is the device authorization endpoint (RFC 8628 §3.1-3.2).
func (p *Provider) serveDeviceAuthorization(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	r = r.WithContext(p.issuerCtx(r.Context()))
	c, err := p.tokenClient(r, oidc.GrantTypeDeviceCode)
	if err != nil {
		op.RequestError(w, r, err, nil)
		return
	}
	ctx, err := p.requestedResources(r.Context(), r)
	if err == nil {
		r = r.WithContext(ctx)
		_, err = clientResources(ctx, c)
	}
	if err != nil {
		op.RequestError(w, r, err, nil)
		return
	}
	now := p.now()
	d := store.DeviceAuth{ClientID: c.ID, Scopes: clientScopes(c, strings.Fields(r.PostForm.Get("scope"))),
		Resources: resourcesFrom(ctx), CreatedAt: now,
		ExpiresAt: now.Add(p.cfg.DeviceCodeTTL), Interval: p.cfg.DevicePoll, State: store.DeviceAuthPending}
	if c.KioskOnly && !allows(c, oidc.GrantTypeRefreshToken) {
		d.Scopes = without(d.Scopes, oidc.ScopeOfflineAccess)
	}
	if a := r.PostForm.Get(ParamKioskAssertion); a != "" {
		claims, err := p.verifyKioskAssertion(r.Context(), a)
		if err != nil {
			op.RequestError(w, r, err, nil)
			return
		}
		d.KioskID = claims.Issuer
	} else if c.KioskOnly {
		op.RequestError(w, r, oidc.ErrInvalidRequest().WithDescription(ParamKioskAssertion+" required for a kiosk"), nil)
		return
	}
	deviceCode := randomToken(32)
	d.CodeHash = sha(deviceCode)
	for i := 0; ; i++ {
		// RFC 8628 §6.1: 8 characters of base 20, about 34.5 bits; with the 5-minute life and the
		// guess cap per account, a brute force has a negligible chance.
		d.UserCode, err = op.NewUserCode([]rune(op.CharSetBase20), 8, 4)
		if err == nil {
			err = p.st.CreateDeviceAuth(r.Context(), d)
		}
		if err == nil || !errors.Is(err, store.ErrExists) || i == 3 {
			break
		}
	}
	if err != nil {
		op.RequestError(w, r, oidc.ErrServerError().WithParent(err), nil)
		return
	}
	verify := p.cfg.Issuer + devicePath
	writeJSON(w, http.StatusOK, &oidc.DeviceAuthorizationResponse{
		DeviceCode: deviceCode, UserCode: d.UserCode, VerificationURI: verify,
		VerificationURIComplete: verify + "?user_code=" + url.QueryEscape(d.UserCode),
		ExpiresIn:               int(p.cfg.DeviceCodeTTL / time.Second), Interval: int(p.cfg.DevicePoll / time.Second),
	})
}

// deviceGrant is the device access token request (RFC 8628 §3.4-3.5).
func (p *Provider) deviceGrant(w http.ResponseWriter, r *http.Request) {
	c, err := p.tokenClient(r, oidc.GrantTypeDeviceCode)
	if err != nil {
		op.RequestError(w, r, err, nil)
		return
	}
	code := r.PostForm.Get("device_code")
	if code == "" {
		op.RequestError(w, r, oidc.ErrInvalidRequest().WithDescription("device_code missing"), nil)
		return
	}
	now := p.now()
	d, slow, err := p.st.PollDeviceAuth(r.Context(), c.ID, sha(code), now)
	switch {
	case errors.Is(err, store.ErrNotFound):
		err = oidc.ErrInvalidGrant().WithDescription("unknown device_code")
	case err != nil:
		err = oidc.ErrServerError().WithParent(err)
	case slow:
		err = oidc.ErrSlowDown().WithDescription("polling too fast; interval is now %ds", int(d.Interval/time.Second))
	case d.State == store.DeviceAuthDenied:
		err = oidc.ErrAccessDenied().WithDescription("the user denied the request")
	case d.State == store.DeviceAuthIssued:
		err = oidc.ErrInvalidGrant().WithDescription("device_code used already")
	case d.State == store.DeviceAuthPending && !now.Before(d.ExpiresAt):
		err = oidc.ErrExpiredDeviceCode()
	case d.State == store.DeviceAuthPending:
		err = oidc.ErrAuthorizationPending()
	}
	if err != nil {
		op.RequestError(w, r, err, nil)
		return
	}
	req := &sessionRequest{Token: store.Token{FamilyID: randomToken(16), UserID: d.UserID, Subject: d.Subject,
		ClientID: c.ID, Scopes: d.Scopes, AMR: d.AMR, ACR: ACRDevice, AuthTime: d.AuthTime, DeviceID: d.KioskID,
		Audience: d.Resources},
		refreshable: !c.KioskOnly, short: c.KioskOnly}
	resp, err := p.issue(r.Context(), req, c)
	if err != nil {
		op.RequestError(w, r, err, nil)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// normalizeUserCode accepts user codes typed in lower case, with or without the dash.
func normalizeUserCode(s string) string {
	s = strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(s))
	if len(s) == 8 {
		s = s[:4] + "-" + s[4:]
	}
	return s
}

// guessWindow is how long wrong user codes count against an account.
const guessWindow = 15 * time.Minute

// guess counts a wrong user code entered by an account (whatever its browser session, so that
// logging in again does not reset it, and on whichever replica) and reports whether the account
// may still try: at most DeviceGuesses wrong codes per guessWindow. When the count cannot be
// read, it may not.
func (p *Provider) guess(ctx context.Context, userID string, wrong bool) bool {
	n, err := p.st.CountGuess(ctx, userID, wrong, p.now(), guessWindow)
	if err != nil {
		p.log.Error("wrong user codes not counted; refusing", "err", err)
		return false
	}
	return n < p.cfg.DeviceGuesses
}

func without(l []string, x string) []string {
	var out []string
	for _, s := range l {
		if s != x {
			out = append(out, s)
		}
	}
	return out
}
