// Package api defines the hub's HTTP API (version 1, under /api/v1): request and response types
// shared by the hub, fleetctl, the fleet simulator and tests, and a small Go client. The API is
// documented in docs/api.md.
package api

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/fleet"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// Prefix is the path prefix of every versioned endpoint.
const Prefix = "/api/v1"

// FleetResource is the resource indicator (RFC 8707) of the fleet API at the hub whose OpenID
// issuer is issuer: what fleetctl and the console ask their tokens for. The API (and the
// identity admin API) refuse tokens issued for anything else.
func FleetResource(issuer string) string { return strings.TrimRight(issuer, "/") + Prefix }

// CitizenResource is the resource indicator (RFC 8707) of the citizens' API at the hub whose
// OpenID issuer is issuer: a citizen's own cases, recommendations and ratings (/api/v1/me/...)
// and the channels' events, what the citizens' channels (web portal, mobile app, mini-program,
// kiosk shell) ask their tokens for. The fleet API refuses these tokens, the citizens' API
// refuses the fleet API's.
func CitizenResource(issuer string) string { return FleetResource(issuer) + "/me" }

// Error is the body of every non-2xx response.
type Error struct {
	Status  int      `json:"-"`
	Code    string   `json:"code"`             // machine-readable: bad_request, unauthorized, forbidden, not_found, conflict, gone, internal
	Message string   `json:"message"`          // what was wrong, for a person
	Fields  []string `json:"fields,omitempty"` // every invalid field, when the request body was at fault
	// RetryAfter, on a 429 or 503, is sent as the Retry-After header (RFC 9110 §10.2.3).
	RetryAfter time.Duration `json:"-"`
}

// ErrorBody wraps Error on the wire: {"error": {...}}.
type ErrorBody struct {
	Error Error `json:"error"`
}

func (e *Error) Error() string {
	if len(e.Fields) > 0 {
		b, _ := json.Marshal(e.Fields)
		return "api: " + e.Code + ": " + e.Message + " " + string(b)
	}
	return "api: " + e.Code + ": " + e.Message
}

// Me is the body of GET /api/v1/me: the caller as the API sees it. Any staff role may ask.
type Me struct {
	Subject  string   `json:"subject"`            // account ID ("bootstrap-admin" for the bootstrap token)
	Username string   `json:"username,omitempty"` // none for the bootstrap token
	Name     string   `json:"name,omitempty"`
	Roles    []string `json:"roles"`
	// Regions is the caller's region scope (GB/T 2260 prefixes): the API shows it the kiosks and
	// sites under one of them only and refuses (403 forbidden) to act on any other. Empty: the
	// whole country.
	Regions []string `json:"regions"`
}

// Health is the body of GET /api/v1/health.
type Health struct {
	Status         string `json:"status"` // ok or degraded
	Version        string `json:"version"`
	Store          string `json:"store"`
	Broker         string `json:"broker"` // MQTT listener address
	ConnectedCount int    `json:"connected"`
	Devices        int    `json:"devices"`
}

// CreateSite is the body of POST /api/v1/sites.
type CreateSite = fleet.Site

// Sites is the body of GET /api/v1/sites.
type Sites struct {
	Sites []fleet.Site `json:"sites"`
}

// CreateToken is the body of POST /api/v1/enrollment-tokens.
type CreateToken struct {
	SiteID string `json:"siteId"`
	TTL    string `json:"ttl,omitempty"` // Go duration, default 24h, at most 30 days
}

// Token is the response to CreateToken. Secret is shown once and never stored by the hub: the
// whole token, "<secret>.<CA pin>", as kiosk-agent enroll --token takes it (EnrollToken).
type Token struct {
	ID        string    `json:"id"`
	Secret    string    `json:"token"`
	CAHash    string    `json:"caHash"` // "sha256:<64 hex>": the CA the kiosk will pin (also in Secret)
	SiteID    string    `json:"siteId"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// CA is the body of GET /api/v1/ca (no token needed): the CA certificate enrollment tokens pin,
// the root of the hub's HTTPS certificate chain.
type CA struct {
	Certificate string `json:"certificate"` // PEM
	CAHash      string `json:"caHash"`      // CAHash of Certificate
}

// Enroll is the body of POST /api/v1/enroll; it is authorised by the enrollment token it carries.
type Enroll struct {
	Token string `json:"token"` // the token's secret (EnrollToken.Secret); a trailing ".<pin>" is ignored
	CSR   string `json:"csr"`   // PEM CERTIFICATE REQUEST; the private key stays on the kiosk
	Model string `json:"model,omitempty"`
}

// Enrolled is the response to Enroll.
type Enrolled struct {
	DeviceID      string `json:"deviceId"`
	Certificate   string `json:"certificate"`   // PEM
	CACertificate string `json:"caCertificate"` // PEM: the hub's CA, to verify the broker
	MQTTAddr      string `json:"mqttAddr"`      // host:port of the TLS MQTT listener
	// MQTTAddrs are every address the agent may use and fail over between (several hub replicas,
	// or a load balancer), MQTTAddr first.
	MQTTAddrs []string  `json:"mqttAddrs,omitempty"`
	NotAfter  time.Time `json:"notAfter"`
}

// ValidDeviceID reports whether id is a device ID: 3 to 64 of a-z 0-9 -, not starting with a dash
// (the hub answers 400 bad_request for any other in a path).
func ValidDeviceID(id string) bool { return wire.ValidDeviceID(id) }

// Devices is the body of GET /api/v1/devices?site=&region=&model=&status=online|offline|retired.
type Devices struct {
	Devices []fleet.Device `json:"devices"`
}

// RetireDevices is the body of POST /api/v1/devices/retire: it takes the kiosks it selects out of
// service for good (revoked, their sessions cut, listed only with retired=true; their records
// stay). At least one selector is required. DryRun lists what would be retired without doing it;
// Expect, when set, makes the hub refuse (409) unless exactly that many would be retired, so that
// a count confirmed by a person is the count acted on.
type RetireDevices struct {
	IDs    []string `json:"ids,omitempty"`
	Site   string   `json:"site,omitempty"`
	Region string   `json:"region,omitempty"` // GB/T 2260 prefix
	Model  string   `json:"model,omitempty"`
	// OfflineFor selects kiosks offline and not heard from for at least this long (a Go
	// duration, e.g. "720h"); a kiosk never heard from counts from its enrollment.
	OfflineFor string `json:"offlineFor,omitempty"`
	DryRun     bool   `json:"dryRun,omitempty"`
	Expect     *int   `json:"expect,omitempty"`
}

// Retired is the response to RetireDevices: the IDs retired (or, on a dry run, that would be).
type Retired struct {
	DryRun  bool     `json:"dryRun"`
	Count   int      `json:"count"`
	Devices []string `json:"devices"`
}

// DeviceDetail is the body of GET /api/v1/devices/{id}.
type DeviceDetail struct {
	Device   fleet.Device    `json:"device"`
	Desired  *fleet.DocState `json:"desired,omitempty"`
	Reported *fleet.DocState `json:"reported,omitempty"`
	Drift    bool            `json:"drift"`    // desired and reported differ in version
	Commands []fleet.Command `json:"commands"` // most recent first
}

// Presence is the body of GET /api/v1/devices/{id}/presence: the kiosk's presence now and its
// ended sessions, newest first, each with why it ended (?limit=, default 50).
type Presence struct {
	DeviceID   string          `json:"deviceId"`
	Online     bool            `json:"online"`
	Replica    string          `json:"replica,omitempty"`
	PresenceAt time.Time       `json:"presenceAt,omitzero"` // when Online last changed
	Sessions   []fleet.Session `json:"sessions"`
}

// CreateCommand is the body of POST /api/v1/devices/{id}/commands.
type CreateCommand struct {
	Name string          `json:"name"`
	Args json.RawMessage `json:"args,omitempty"`
	TTL  string          `json:"ttl,omitempty"` // Go duration, default 1h, at most 7 days
}

// Commands is the body of GET /api/v1/devices/{id}/commands.
type Commands struct {
	Commands []fleet.Command `json:"commands"`
}

// SetDesired is the body of PUT /api/v1/devices/{id}/desired.
type SetDesired struct {
	Doc json.RawMessage `json:"doc"`
}

// State is the body of GET /api/v1/devices/{id}/state.
type State struct {
	Desired  *fleet.DocState `json:"desired,omitempty"`
	Reported *fleet.DocState `json:"reported,omitempty"`
	Drift    bool            `json:"drift"`
}

// RecordClass says how a kiosk's outbox treats a record when it is full (fleet.Record.Class).
type RecordClass = wire.Class

// Record classes.
const (
	ClassTelemetry = wire.Telemetry // may be dropped, oldest first, when the kiosk's outbox is full
	ClassBusiness  = wire.Business  // never dropped
)

// ValidKind reports whether k is a record kind, as the kind= filter of records takes it: 1 to 64
// of a-z 0-9 . _ - starting with a letter (docs/protocol.md).
func ValidKind(k string) bool { return wire.ValidKind(k) }

// Records is the body of GET /api/v1/devices/{id}/records?kind=&after=&limit=.
type Records struct {
	Records []fleet.Record `json:"records"`
	Next    int64          `json:"next"` // pass as after= to continue
}

// FeedPath streams the hub's change notices (GET, text/event-stream; HTML Living Standard
// §9.2 server-sent events): each "data:" line is a Notice as JSON, for the kiosks in the caller's
// region scope. The hub ends a stream after some minutes; the client reconnects.
const FeedPath = Prefix + "/events"

// Kinds of Notice.
const (
	NoticePresence = "presence" // the kiosk connected or disconnected (Online)
	NoticeRecords  = "records"  // records of the kiosk were committed: health, peripherals, command results
	NoticeResync   = "resync"   // notices were lost (a slow reader): read everything again
)

// Notice is a notice that a kiosk changed: which and how, not the change itself; a viewer reads
// what it shows through the API, in its own scope.
type Notice struct {
	Kind     string    `json:"kind"`
	DeviceID string    `json:"deviceId,omitempty"`
	Online   bool      `json:"online,omitempty"` // presence: connected
	At       time.Time `json:"at"`
}

// NoticeAlert is the kind of Notice sent when an alert of the kiosk opened or moved.
const NoticeAlert = "alert"

// NoticeBulk is the kind of Notice sent when the kiosk's progress in a bulk job changed.
const NoticeBulk = "bulk"

// Alert is a condition of a kiosk that needs a person, as GET /api/v1/alerts shows it and the
// hub's notifications (webhook) carry it.
type Alert struct {
	ID         int64     `json:"id"`
	DeviceID   string    `json:"deviceId"`
	Region     string    `json:"region,omitempty"`
	Rule       string    `json:"rule"`              // offline, peripheral-fault, peripheral-degraded
	Subject    string    `json:"subject,omitempty"` // the peripheral's ID
	Detail     string    `json:"detail,omitempty"`  // paper-out, cover-open, ...
	State      string    `json:"state"`             // open, acknowledged, resolved
	OpenedAt   time.Time `json:"openedAt"`
	AckBy      string    `json:"ackBy,omitempty"`
	AckAt      time.Time `json:"ackAt,omitzero"`
	ResolvedBy string    `json:"resolvedBy,omitempty"` // empty with resolvedAt: the condition cleared
	ResolvedAt time.Time `json:"resolvedAt,omitzero"`
	Silenced   bool      `json:"silenced,omitempty"` // a silence covers it now: nobody is notified
}

// Alerts is the body of GET /api/v1/alerts.
type Alerts struct {
	Alerts []Alert `json:"alerts"`
}

// StaffAction is one staff or admin action in the hub's audit log (GET /api/v1/audit): each is
// chained to the one before by its hash.
type StaffAction struct {
	ID     int64     `json:"id"`
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Roles  string    `json:"roles"`
	Action string    `json:"action"` // "POST /devices/{id}/revoke"
	Target string    `json:"target"` // the path acted on
	Source string    `json:"source"` // the client's address
	Status int       `json:"status"`
	Result string    `json:"result"` // ok, or the error code
	Prev   string    `json:"prev"`
	Hash   string    `json:"hash"`
}

// StaffActions is the body of GET /api/v1/audit, newest first.
type StaffActions struct {
	Entries []StaffAction `json:"entries"`
}

// Overview is the body of GET /api/v1/overview (?region= a code prefix): how many kiosks of the
// caller's scope are online, degraded and offline at every level of the region hierarchy —
// province, city and county (GB/T 2260 code prefixes of 2, 4 and 6 digits) — and at every site.
type Overview struct {
	Total   Tally         `json:"total"`
	Regions []RegionTally `json:"regions"` // by code: each province before its cities, each city before its counties
	Sites   []SiteTally   `json:"sites"`   // by region, then ID
}

// Tally counts kiosks in service: Online (every peripheral fine), Degraded (online, a peripheral
// not ok or not connected), Offline, and Revoked (counted apart from the other three).
type Tally struct {
	Kiosks   int `json:"kiosks"`
	Online   int `json:"online"`
	Degraded int `json:"degraded"`
	Offline  int `json:"offline"`
	Revoked  int `json:"revoked"`
}

// RegionTally is the tally of a province, city or county.
type RegionTally struct {
	Code  string `json:"code"`  // 2, 4 or 6 digits
	Level string `json:"level"` // province, city or county
	Tally
}

// SiteTally is the tally of a site.
type SiteTally struct {
	ID     string `json:"id"`
	Name   string `json:"name,omitempty"`
	Region string `json:"region"`
	Tally
}
