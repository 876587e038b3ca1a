package shell

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/kioskfleet/kioskfleet/agent/kiosklogin"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// Hub is what the shell needs of the hub: its OpenID Provider (QR login, logout) and whether it
// answers. HubClient implements it.
type Hub interface {
	// StartDeviceLogin asks for a device code (RFC 8628 §3.1) on behalf of the kiosk.
	StartDeviceLogin(ctx context.Context) (DeviceLogin, error)
	// PollDeviceLogin asks whether the citizen approved (§3.4): ErrPending while not yet,
	// ErrSlowDown when polled too fast, another error when the code is denied or expired.
	PollDeviceLogin(ctx context.Context, deviceCode string) (accessToken string, err error)
	// Revoke revokes an access token (RFC 7009).
	Revoke(ctx context.Context, token string) error
	// Ping checks that the hub answers.
	Ping(ctx context.Context) error
}

// DeviceLogin is a device authorization response (RFC 8628 §3.2).
type DeviceLogin struct {
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
	ExpiresIn               int    `json:"expires_in"`
	Interval                int    `json:"interval"`
}

// Polling answers of the token endpoint (RFC 8628 §3.5).
var (
	ErrPending  = errors.New("shell: authorization pending")
	ErrSlowDown = errors.New("shell: slow down")
)

// HubClient talks to the hub's OpenID Provider as the kiosk shell's client (kiosklogin.ClientID),
// through the agent's hub API client (its base URL and HTTP client: the hub's TLS settings).
type HubClient struct {
	API      *api.Client
	DeviceID string
	Key      *ecdsa.PrivateKey // the enrolled device key: signs the kiosk assertion of a QR login

	mu   sync.Mutex
	disc *discovery
}

var _ Hub = (*HubClient)(nil)

type discovery struct {
	Issuer     string `json:"issuer"`
	Token      string `json:"token_endpoint"`
	DeviceAuth string `json:"device_authorization_endpoint"`
	Revocation string `json:"revocation_endpoint"`
}

func (h *HubClient) http() *http.Client {
	if h.API.HTTP != nil {
		return h.API.HTTP
	}
	return http.DefaultClient
}

func (h *HubClient) discovery(ctx context.Context) (*discovery, error) {
	h.mu.Lock()
	d := h.disc
	h.mu.Unlock()
	if d != nil {
		return d, nil
	}
	d = &discovery{}
	if err := h.API.Do(ctx, http.MethodGet, "/.well-known/openid-configuration", nil, d); err != nil {
		return nil, err
	}
	if d.Issuer == "" || d.Token == "" || d.DeviceAuth == "" || d.Revocation == "" {
		return nil, errors.New("shell: the hub's discovery lacks the token, device authorization or revocation endpoint")
	}
	h.mu.Lock()
	h.disc = d
	h.mu.Unlock()
	return d, nil
}

// oauthError is an OAuth error response (RFC 6749 §5.2).
type oauthError struct {
	Code        string `json:"error"`
	Description string `json:"error_description"`
	Status      int    `json:"-"`
}

func (e *oauthError) Error() string {
	return fmt.Sprintf("shell: hub answered %s: %s (HTTP %d)", e.Code, e.Description, e.Status)
}

// post sends a form to an endpoint and decodes a JSON answer into out; an error answer is an
// *oauthError.
func (h *HubClient) post(ctx context.Context, endpoint string, form url.Values, out any) error {
	form.Set("client_id", kiosklogin.ClientID)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := h.http().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		e := &oauthError{Status: resp.StatusCode}
		_ = json.Unmarshal(b, e)
		return e
	}
	if out == nil || len(b) == 0 {
		return nil
	}
	return json.Unmarshal(b, out)
}

// StartDeviceLogin implements Hub: the request carries an assertion signed by the device key, so
// that the approval page names this kiosk.
func (h *HubClient) StartDeviceLogin(ctx context.Context) (DeviceLogin, error) {
	d, err := h.discovery(ctx)
	if err != nil {
		return DeviceLogin{}, err
	}
	a, err := kiosklogin.Assertion(h.Key, h.DeviceID, d.Issuer, wire.IDCard{}, time.Now(), time.Minute)
	if err != nil {
		return DeviceLogin{}, err
	}
	var out DeviceLogin
	err = h.post(ctx, d.DeviceAuth, url.Values{"scope": {"openid profile"}, "kiosk_assertion": {a},
		"resource": {api.CitizenResource(d.Issuer)}}, &out) // RFC 8707 §2: a token for the citizens' API
	if err == nil && (out.DeviceCode == "" || out.UserCode == "" || out.VerificationURI == "") {
		err = errors.New("shell: device authorization response without codes")
	}
	return out, err
}

// KioskCatalog reads what the hub offers at this kiosk, with the versions it reports installed
// (api.Client.KioskCatalog), as the kiosk itself: each request carries a new assertion signed
// with the device key, for the hub's API.
func (h *HubClient) KioskCatalog(ctx context.Context) (api.KioskCatalog, error) {
	d, err := h.discovery(ctx)
	if err != nil {
		return api.KioskCatalog{}, err
	}
	c := *h.API
	c.Token, c.Kiosk = "", func() (string, error) {
		return kiosklogin.Assertion(h.Key, h.DeviceID, d.Issuer+api.Prefix, wire.IDCard{}, time.Now(), time.Minute)
	}
	return c.KioskCatalog(ctx, h.DeviceID)
}

// PollDeviceLogin implements Hub.
func (h *HubClient) PollDeviceLogin(ctx context.Context, deviceCode string) (string, error) {
	d, err := h.discovery(ctx)
	if err != nil {
		return "", err
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	err = h.post(ctx, d.Token, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {deviceCode}}, &tok)
	var oe *oauthError
	switch {
	case errors.As(err, &oe) && oe.Code == "authorization_pending":
		return "", ErrPending
	case errors.As(err, &oe) && oe.Code == "slow_down":
		return "", ErrSlowDown
	case err != nil:
		return "", err
	case tok.AccessToken == "":
		return "", errors.New("shell: token response without an access token")
	}
	return tok.AccessToken, nil
}

// Revoke implements Hub (RFC 7009 §2.1; a token the hub does not know is answered 200).
func (h *HubClient) Revoke(ctx context.Context, token string) error {
	d, err := h.discovery(ctx)
	if err != nil {
		return err
	}
	return h.post(ctx, d.Revocation, url.Values{"token": {token}, "token_type_hint": {"access_token"}}, nil)
}

// Ping implements Hub.
func (h *HubClient) Ping(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(h.API.BaseURL, "/")+"/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := h.http().Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("shell: hub health: HTTP %d", resp.StatusCode)
	}
	return nil
}
