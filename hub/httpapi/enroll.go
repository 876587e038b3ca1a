package httpapi

import (
	"crypto/sha256"
	"encoding/pem"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/ca"
	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// Signer issues device certificates from CSRs.
type Signer interface {
	SignCSR(csrPEM []byte, deviceID string, validity time.Duration) (ca.Issued, error)
	CertPEM() []byte
}

func (a *API) enrollRoutes() {
	route(a, "POST /enrollment-tokens", staff, http.StatusCreated, a.createToken)
	route(a, "POST /enroll", anyone, http.StatusCreated, a.enroll)
	route(a, "GET /ca", anyone, http.StatusOK, a.ca)
}

// ca shows the CA enrollment tokens pin: public, so that an agent reaching a plain-HTTP hub on
// loopback can check it against its token's pin before it sends the token.
func (a *API) ca(*http.Request, none) (api.CA, error) {
	c := a.cfg.Anchor()
	return api.CA{Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})), CAHash: api.CAHash(c)}, nil
}

func (a *API) createToken(r *http.Request, req api.CreateToken) (api.Token, error) {
	var iv invalid
	iv.check(req.SiteID != "", "siteId", "required")
	ttl := parseTTL(req.TTL, 24*time.Hour, 30*24*time.Hour, &iv, "ttl")
	if err := iv.err(); err != nil {
		return api.Token{}, err
	}
	if _, err := a.cfg.Store.GetSite(r.Context(), req.SiteID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			iv.check(false, "siteId", "no site %q", req.SiteID)
			return api.Token{}, iv.err()
		}
		return api.Token{}, err
	}
	secret := "kfe_" + randomHex(20)
	h := sha256.Sum256([]byte(secret))
	now := a.cfg.Now()
	t := store.EnrollmentToken{ID: "tok-" + randomHex(6), Hash: h[:], SiteID: req.SiteID, CreatedAt: now, ExpiresAt: now.Add(ttl)}
	if err := a.cfg.Store.CreateEnrollmentToken(r.Context(), t); err != nil {
		return api.Token{}, err
	}
	tok := api.EnrollToken{Secret: secret, CAHash: api.CAHash(a.cfg.Anchor())}
	return api.Token{ID: t.ID, Secret: tok.String(), CAHash: tok.CAHash, SiteID: t.SiteID, ExpiresAt: t.ExpiresAt}, nil
}

// enroll redeems a one-time token for a device certificate; the token in the body is the
// request's only credential.
func (a *API) enroll(r *http.Request, req api.Enroll) (api.Enrolled, error) {
	var iv invalid
	iv.check(req.Token != "", "token", "required")
	iv.check(strings.Contains(req.CSR, "CERTIFICATE REQUEST"), "csr", "a PEM certificate request is required")
	iv.check(len(req.Model) <= 100, "model", "at most 100 bytes")
	if err := iv.err(); err != nil {
		return api.Enrolled{}, err
	}
	secret, _, _ := strings.Cut(req.Token, ".") // the whole token, pin and all, is accepted too
	h := sha256.Sum256([]byte(secret))
	id := "k-" + randomHex(8)
	issued, err := a.cfg.CA.SignCSR([]byte(req.CSR), id, a.cfg.CertTTL)
	if err != nil {
		return api.Enrolled{}, apiErr(http.StatusBadRequest, "bad_request", "csr: %v", err)
	}
	now := a.cfg.Now()
	d, err := a.cfg.Store.EnrollDevice(r.Context(), h[:], store.Device{
		ID: id, Model: req.Model, CertSerial: issued.Serial, CertExpiry: issued.NotAfter, CertPEM: issued.CertPEM, EnrolledAt: now,
	}, now)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return api.Enrolled{}, apiErr(http.StatusUnauthorized, "unauthorized", "unknown enrollment token")
	case errors.Is(err, store.ErrTokenUsed):
		return api.Enrolled{}, apiErr(http.StatusGone, "gone", "enrollment token already used")
	case errors.Is(err, store.ErrTokenExpired):
		return api.Enrolled{}, apiErr(http.StatusGone, "gone", "enrollment token expired")
	case err != nil:
		return api.Enrolled{}, err
	}
	a.cfg.Log.Info("device enrolled", "device", d.ID, "site", d.SiteID, "serial", issued.Serial)
	return api.Enrolled{DeviceID: d.ID, Certificate: string(issued.CertPEM), CACertificate: string(a.cfg.CA.CertPEM()),
		MQTTAddr: a.cfg.MQTTAddr, MQTTAddrs: a.cfg.MQTTAddrs, NotAfter: issued.NotAfter}, nil
}
