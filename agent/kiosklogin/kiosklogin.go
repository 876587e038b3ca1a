// Package kiosklogin logs a citizen in at a kiosk after an ID-card read: the agent signs a
// short-lived assertion with the kiosk's enrolled device key (ES256 JWT, RFC 7519), encrypts it to
// the hub's published encryption key (JWE, ECDH-ES + A256GCM: wire.SealAssertion) and exchanges it
// at the hub's token endpoint with the JWT bearer grant (RFC 7523 §2.1) for a short session token.
// The card data goes only into the encrypted assertion: no proxy terminating TLS in front of the
// hub, and no log of the request, sees it; it is never logged here.
package kiosklogin

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// GrantType is the JWT bearer grant (RFC 7523 §2.1).
const GrantType = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// ClientID is the kiosk shell's client registration at the hub.
const ClientID = "kiosk-shell"

// ErrRefused is returned when the hub refuses the login; the error says the OAuth error code.
var ErrRefused = errors.New("kiosklogin: login refused")

// Assertion returns the signed assertion (wire.KioskClaims) for the card the reader read: issuer
// and subject are the kiosk's device ID, audience the hub's issuer URL, valid for ttl (the hub
// accepts at most 2 minutes). The caller wipes the card when the citizen's session ends. A card
// without a number makes an assertion without id_card: the kiosk's own, for the device
// authorization request of a QR login (hub/identity ParamKioskAssertion). It is not encrypted:
// the hub takes one with a card only sealed (Hub.SealedAssertion).
func Assertion(key *ecdsa.PrivateKey, deviceID, audience string, card wire.IDCard, now time.Time, ttl time.Duration) (string, error) {
	if key == nil {
		return "", errors.New("kiosklogin: no device key")
	}
	jti := make([]byte, 16)
	_, _ = rand.Read(jti)
	claims := wire.KioskClaims{
		Issuer: deviceID, Subject: deviceID, Audience: wire.Audience{audience},
		IssuedAt: wire.NewNumericDate(now), Expiry: wire.NewNumericDate(now.Add(ttl)), ID: hex.EncodeToString(jti),
		Card: &card,
	}
	if len(card.Number) == 0 {
		claims.Card = nil
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("kiosklogin: %w", err)
	}
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString([]byte(`{"alg":"ES256","typ":"JWT"}`)) + "." + enc.EncodeToString(payload)
	clear(payload)
	h := sha256.Sum256([]byte(signing))
	r, s, err := ecdsa.Sign(rand.Reader, key, h[:])
	if err != nil {
		return "", fmt.Errorf("kiosklogin: sign: %w", err)
	}
	// RFC 7518 §3.4: the signature is R || S, each padded to 32 bytes for P-256.
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signing + "." + enc.EncodeToString(sig), nil
}

// Session is a citizen's kiosk session.
type Session struct {
	AccessToken string
	IDToken     string
	ExpiresIn   time.Duration
}

// String never shows the tokens.
func (s Session) String() string { return fmt.Sprintf("Session{expires in %s}", s.ExpiresIn) }

// Hub is what a kiosk needs of its hub to log a citizen in, from the hub's discovery document
// and JWKS: fetch it for each login (Discover), so that a rotated key is picked up.
type Hub struct {
	Issuer   string
	TokenURL string
	Key      jose.JSONWebKey // the hub's encryption key for assertions (use enc, ECDH-ES)
}

// Discover reads the hub's OpenID discovery document and its current encryption key.
func Discover(ctx context.Context, hc *http.Client, hubURL string) (Hub, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	var disc struct {
		Issuer string `json:"issuer"`
		Token  string `json:"token_endpoint"`
		JWKS   string `json:"jwks_uri"`
	}
	if err := getJSON(ctx, hc, strings.TrimRight(hubURL, "/")+"/.well-known/openid-configuration", &disc); err != nil {
		return Hub{}, err
	}
	if disc.Issuer == "" || disc.Token == "" || disc.JWKS == "" {
		return Hub{}, errors.New("kiosklogin: discovery without issuer, token endpoint or jwks_uri")
	}
	var jwks json.RawMessage
	if err := getJSON(ctx, hc, disc.JWKS, &jwks); err != nil {
		return Hub{}, err
	}
	key, err := wire.EncryptionKey(jwks)
	if err != nil {
		return Hub{}, fmt.Errorf("kiosklogin: %w", err)
	}
	return Hub{Issuer: disc.Issuer, TokenURL: disc.Token, Key: key}, nil
}

// SealedAssertion returns the assertion for the card, signed with the device key and encrypted
// to the hub, valid for a minute from now.
func (h Hub) SealedAssertion(key *ecdsa.PrivateKey, deviceID string, card wire.IDCard, now time.Time) (string, error) {
	a, err := Assertion(key, deviceID, h.Issuer, card, now, time.Minute)
	if err != nil {
		return "", err
	}
	sealed, err := wire.SealAssertion(a, h.Key)
	if err != nil {
		return "", fmt.Errorf("kiosklogin: %w", err)
	}
	return sealed, nil
}

// ParamDeviceCode names, on an ID-card login, the device_code of the QR code the citizen
// approved on her phone for real-name binding (hub/identity ParamDeviceCode).
const ParamDeviceCode = "device_code"

// Login discovers the hub and logs the citizen in.
func Login(ctx context.Context, hc *http.Client, hubURL, deviceID string, key *ecdsa.PrivateKey, card wire.IDCard) (Session, error) {
	return login(ctx, hc, hubURL, deviceID, key, card, nil)
}

// Bind logs the citizen in as Login does, with deviceCode, the device_code of this kiosk's QR
// code that she approved on her phone for real-name binding: the hub binds the card, which the
// kiosk's signed assertion proves was read here, to the account that approved, and the session
// is of that account.
func Bind(ctx context.Context, hc *http.Client, hubURL, deviceID string, key *ecdsa.PrivateKey, card wire.IDCard, deviceCode string) (Session, error) {
	if deviceCode == "" {
		return Session{}, errors.New("kiosklogin: binding without a device code")
	}
	return login(ctx, hc, hubURL, deviceID, key, card, url.Values{ParamDeviceCode: {deviceCode}})
}

func login(ctx context.Context, hc *http.Client, hubURL, deviceID string, key *ecdsa.PrivateKey, card wire.IDCard, extra url.Values) (Session, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	hub, err := Discover(ctx, hc, hubURL)
	if err != nil {
		return Session{}, err
	}
	a, err := hub.SealedAssertion(key, deviceID, card, time.Now())
	if err != nil {
		return Session{}, err
	}
	// The session's token is for the citizens' API (RFC 8707 §2): her cases, recommendations.
	form := url.Values{"grant_type": {GrantType}, "assertion": {a}, "client_id": {ClientID}, "scope": {"openid profile"},
		"resource": {api.CitizenResource(hub.Issuer)}}
	for k, v := range extra {
		form[k] = v
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, hub.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return Session{}, fmt.Errorf("kiosklogin: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := hc.Do(req)
	if err != nil {
		return Session{}, fmt.Errorf("kiosklogin: token request: %w", err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
		IDToken     string `json:"id_token"`
		ExpiresIn   int64  `json:"expires_in"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Session{}, fmt.Errorf("kiosklogin: token response (HTTP %d): %w", resp.StatusCode, err)
	}
	if err := json.Unmarshal(body, &tok); err != nil {
		if resp.StatusCode != http.StatusOK { // a refusal in plain text: a rate limit, a proxy
			return Session{}, fmt.Errorf("%w: HTTP %d: %.200s", ErrRefused, resp.StatusCode, bytes.TrimSpace(body))
		}
		return Session{}, fmt.Errorf("kiosklogin: token response (HTTP %d): %w", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK || tok.AccessToken == "" {
		return Session{}, fmt.Errorf("%w: %s: %s (HTTP %d)", ErrRefused, tok.Error, tok.Description, resp.StatusCode)
	}
	return Session{AccessToken: tok.AccessToken, IDToken: tok.IDToken, ExpiresIn: time.Duration(tok.ExpiresIn) * time.Second}, nil
}

func getJSON(ctx context.Context, hc *http.Client, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("kiosklogin: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("kiosklogin: discovery: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("kiosklogin: discovery: HTTP %d", resp.StatusCode)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(v)
}
