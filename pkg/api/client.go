package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/fleet"
)

// Client calls the hub's HTTP API.
type Client struct {
	BaseURL string // e.g. https://127.0.0.1:8080
	Token   string // bearer token (bootstrap admin token or an access token)
	// Kiosk, if set, authenticates each request as a kiosk instead of Token: it returns a new
	// assertion signed with the kiosk's device key (agent/kiosklogin.Assertion, for audience the
	// hub's issuer URL followed by Prefix), sent as "Authorization: Kiosk JWT" (KioskScheme).
	// The hub takes each assertion once.
	Kiosk func() (string, error)
	// HTTP sends the requests (nil: http.DefaultClient). The hub serves HTTPS with a certificate
	// of its own CA: give a client whose transport trusts it, e.g. &http.Client{Transport:
	// Transport(pool)} with the pool LoadCA reads from the hub's ca.crt.
	HTTP *http.Client
}

// Do sends a request with an optional JSON body and decodes a JSON response into out (if non-nil).
// A non-2xx response is returned as *Error.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	if body == nil {
		return c.DoRaw(ctx, method, path, "", nil, out)
	}
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("api: encode request: %w", err)
	}
	return c.DoRaw(ctx, method, path, "application/json", bytes.NewReader(b), out)
}

// DoRaw is Do with a body that is not JSON, of media type contentType (a PDF, a bundle). An out of
// type *[]byte takes the answer as it is.
func (c *Client) DoRaw(ctx context.Context, method, path, contentType string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, body)
	if err != nil {
		return fmt.Errorf("api: %w", err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	switch {
	case c.Kiosk != nil:
		a, err := c.Kiosk()
		if err != nil {
			return fmt.Errorf("api: kiosk assertion: %w", err)
		}
		req.Header.Set("Authorization", KioskScheme+" "+a)
	case c.Token != "":
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTPClient().Do(req)
	if err != nil {
		return fmt.Errorf("api: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("api: read response: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return responseError(resp.StatusCode, data)
	}
	if raw, ok := out.(*[]byte); ok { // an answer that is not JSON (a bundle)
		*raw = data
		return nil
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("api: decode %s %s response: %w", method, path, err)
		}
	}
	return nil
}

// Me says who the client's token speaks for: roles and region scope.
func (c *Client) Me(ctx context.Context) (Me, error) {
	var out Me
	return out, c.Do(ctx, http.MethodGet, Prefix+"/me", nil, &out)
}

// Health returns the hub's health.
func (c *Client) Health(ctx context.Context) (Health, error) {
	var h Health
	return h, c.Do(ctx, http.MethodGet, Prefix+"/health", nil, &h)
}

// CreateSite creates a site.
func (c *Client) CreateSite(ctx context.Context, s fleet.Site) (fleet.Site, error) {
	var out fleet.Site
	return out, c.Do(ctx, http.MethodPost, Prefix+"/sites", s, &out)
}

// ListSites lists sites.
func (c *Client) ListSites(ctx context.Context) ([]fleet.Site, error) {
	var out Sites
	return out.Sites, c.Do(ctx, http.MethodGet, Prefix+"/sites", nil, &out)
}

// CreateToken creates a one-time enrollment token.
func (c *Client) CreateToken(ctx context.Context, req CreateToken) (Token, error) {
	var out Token
	return out, c.Do(ctx, http.MethodPost, Prefix+"/enrollment-tokens", req, &out)
}

// Enroll redeems an enrollment token for a device certificate.
func (c *Client) Enroll(ctx context.Context, req Enroll) (Enrolled, error) {
	var out Enrolled
	return out, c.Do(ctx, http.MethodPost, Prefix+"/enroll", req, &out)
}

// CA returns the CA certificate enrollment tokens pin.
func (c *Client) CA(ctx context.Context) (CA, error) {
	var out CA
	return out, c.Do(ctx, http.MethodGet, Prefix+"/ca", nil, &out)
}

// DeviceQuery filters ListDevices; zero fields match all.
type DeviceQuery struct {
	Site, Region, Model string
	Status              string // online, offline or retired (without it: every kiosk in service)
}

// ListDevices lists devices.
func (c *Client) ListDevices(ctx context.Context, q DeviceQuery) ([]fleet.Device, error) {
	v := url.Values{}
	for k, s := range map[string]string{"site": q.Site, "region": q.Region, "model": q.Model, "status": q.Status} {
		if s != "" {
			v.Set(k, s)
		}
	}
	p := Prefix + "/devices"
	if len(v) > 0 {
		p += "?" + v.Encode()
	}
	var out Devices
	return out.Devices, c.Do(ctx, http.MethodGet, p, nil, &out)
}

// Device returns one device with its state and recent commands.
func (c *Client) Device(ctx context.Context, id string) (DeviceDetail, error) {
	var out DeviceDetail
	return out, c.Do(ctx, http.MethodGet, Prefix+"/devices/"+url.PathEscape(id), nil, &out)
}

// Presence returns a device's presence and its latest ended sessions with their disconnect
// reasons, newest first (limit 0: the hub's default).
func (c *Client) Presence(ctx context.Context, id string, limit int) (Presence, error) {
	var out Presence
	path := Prefix + "/devices/" + url.PathEscape(id) + "/presence"
	if limit > 0 {
		path += "?limit=" + strconv.Itoa(limit)
	}
	return out, c.Do(ctx, http.MethodGet, path, nil, &out)
}

// Revoke revokes a device's certificate and cuts its session; it returns the revoked device.
func (c *Client) Revoke(ctx context.Context, id string) (fleet.Device, error) {
	var out fleet.Device
	return out, c.Do(ctx, http.MethodPost, Prefix+"/devices/"+url.PathEscape(id)+"/revoke", nil, &out)
}

// RetireDevices retires the kiosks req selects, or with req.DryRun says which it would.
func (c *Client) RetireDevices(ctx context.Context, req RetireDevices) (Retired, error) {
	var out Retired
	return out, c.Do(ctx, http.MethodPost, Prefix+"/devices/retire", req, &out)
}

// ListCommands lists a device's commands, newest first.
func (c *Client) ListCommands(ctx context.Context, deviceID string, limit int) ([]fleet.Command, error) {
	p := Prefix + "/devices/" + url.PathEscape(deviceID) + "/commands"
	if limit > 0 {
		p += "?limit=" + fmt.Sprint(limit)
	}
	var out Commands
	return out.Commands, c.Do(ctx, http.MethodGet, p, nil, &out)
}

// SendCommand queues a command for a device.
func (c *Client) SendCommand(ctx context.Context, deviceID string, req CreateCommand) (fleet.Command, error) {
	var out fleet.Command
	return out, c.Do(ctx, http.MethodPost, Prefix+"/devices/"+url.PathEscape(deviceID)+"/commands", req, &out)
}

// Command returns a command. With wait > 0 the hub holds the request until the command reaches a
// terminal state or wait passes (at most 60 s).
func (c *Client) Command(ctx context.Context, id string, wait time.Duration) (fleet.Command, error) {
	p := Prefix + "/commands/" + url.PathEscape(id)
	if wait > 0 {
		p += "?wait=" + url.QueryEscape(wait.String())
	}
	var out fleet.Command
	return out, c.Do(ctx, http.MethodGet, p, nil, &out)
}

// SetDesired stores a new desired state document for a device.
func (c *Client) SetDesired(ctx context.Context, deviceID string, doc json.RawMessage) (fleet.DocState, error) {
	var out fleet.DocState
	return out, c.Do(ctx, http.MethodPut, Prefix+"/devices/"+url.PathEscape(deviceID)+"/desired", SetDesired{Doc: doc}, &out)
}

// State returns desired and reported state and whether they drift.
func (c *Client) State(ctx context.Context, deviceID string) (State, error) {
	var out State
	return out, c.Do(ctx, http.MethodGet, Prefix+"/devices/"+url.PathEscape(deviceID)+"/state", nil, &out)
}

// RecordQuery selects records.
type RecordQuery struct {
	Kind  string
	After int64
	Limit int
}

// Records lists a device's records in per-device order.
func (c *Client) Records(ctx context.Context, deviceID string, q RecordQuery) (Records, error) {
	v := url.Values{}
	if q.Kind != "" {
		v.Set("kind", q.Kind)
	}
	if q.After > 0 {
		v.Set("after", fmt.Sprint(q.After))
	}
	if q.Limit > 0 {
		v.Set("limit", fmt.Sprint(q.Limit))
	}
	p := Prefix + "/devices/" + url.PathEscape(deviceID) + "/records"
	if len(v) > 0 {
		p += "?" + v.Encode()
	}
	var out Records
	return out, c.Do(ctx, http.MethodGet, p, nil, &out)
}

// responseError is the error of a non-2xx answer: its ErrorBody, or the status and body.
func responseError(status int, body []byte) *Error {
	var eb ErrorBody
	if json.Unmarshal(body, &eb) != nil || eb.Error.Code == "" {
		eb.Error = Error{Code: http.StatusText(status), Message: strings.TrimSpace(string(body))}
	}
	eb.Error.Status = status
	return &eb.Error
}

// ListAlerts lists the alerts of the kiosks in the caller's scope, newest first: the unresolved
// ones, or all of them.
func (c *Client) ListAlerts(ctx context.Context, all bool) ([]Alert, error) {
	var out Alerts
	path := "/alerts"
	if all {
		path += "?all=1"
	}
	return out.Alerts, c.Do(ctx, http.MethodGet, Prefix+path, nil, &out)
}

// AckAlert acknowledges an alert as the caller.
func (c *Client) AckAlert(ctx context.Context, id int64) (Alert, error) {
	var out Alert
	return out, c.Do(ctx, http.MethodPost, fmt.Sprintf("%s/alerts/%d/ack", Prefix, id), nil, &out)
}

// ResolveAlert resolves an alert as the caller.
func (c *Client) ResolveAlert(ctx context.Context, id int64) (Alert, error) {
	var out Alert
	return out, c.Do(ctx, http.MethodPost, fmt.Sprintf("%s/alerts/%d/resolve", Prefix, id), nil, &out)
}

// ListAudit lists the hub's audit log, newest first (admin): q holds actor=, target=, before=,
// limit= as wanted.
func (c *Client) ListAudit(ctx context.Context, q url.Values) ([]StaffAction, error) {
	var out StaffActions
	return out.Entries, c.Do(ctx, http.MethodGet, Prefix+"/audit?"+q.Encode(), nil, &out)
}

// Overview returns the kiosk counts of the region hierarchy under region ("": the caller's whole
// scope) and of each site.
func (c *Client) Overview(ctx context.Context, region string) (Overview, error) {
	var out Overview
	path := Prefix + "/overview"
	if region != "" {
		path += "?region=" + url.QueryEscape(region)
	}
	return out, c.Do(ctx, http.MethodGet, path, nil, &out)
}
