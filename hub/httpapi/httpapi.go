// Package httpapi serves the hub's JSON HTTP API under /api/v1 (documented in docs/api.md): sites,
// enrollment, devices, commands, desired and reported state, records, journal verification and
// security events, health, who the caller is (me), live events, kiosks' log tails, alerts with
// their silences and work orders, the audit log, the app catalog with its guides, the update repository's
// management, rollouts and bulk actions. A caller with a region scope sees and acts on the kiosks
// and sites under it only. Every endpoint but enrollment (authorised by its one-time token) and
// the channels' public reads of the catalog requires a bearer token with a staff role; a kiosk's
// own catalog also takes the kiosk's assertion, signed with its device key (KioskAssertions).
//
// One file per resource: it registers its routes and holds its handlers, each written the one way
// route (handler.go) runs them. A new resource is a new file and a line in New.
package httpapi

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/bulk"
	"github.com/kioskfleet/kioskfleet/hub/catalog"
	"github.com/kioskfleet/kioskfleet/hub/rollout"
	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/updates"
	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// Store is the storage the API serves: the domains it has resources for.
type Store interface {
	store.Devices
	store.Presence
	store.Commands
	store.State
	store.Records
	store.Blobs
	store.Updates
	store.Rollouts
	store.Journal
	store.Alerts
	store.StaffAudit
	store.Silences
	store.WorkOrders
	Ping(ctx context.Context) error
}

// Sessions is the broker's view of live device sessions.
type Sessions interface {
	Disconnect(deviceID string)
	Connected(deviceID string) bool
}

// Dispatcher pushes commands and desired state to connected devices.
type Dispatcher interface {
	SendPending(ctx context.Context, deviceID string)
	PushDesired(ctx context.Context, deviceID string)
}

// Config configures the API.
type Config struct {
	Store    Store
	CA       Signer
	Sessions Sessions
	Dispatch Dispatcher
	Auth     Authenticator
	Catalog  *catalog.Catalog    // the app catalog and guides; nil: not served
	Updates  *updates.Repository // the update repository; nil: not served
	Rollouts *rollout.Engine     // rollouts; nil: not served
	Bulk     *bulk.Engine        // bulk actions; nil: not served
	Log      *slog.Logger
	MQTTAddr string // advertised to enrolling agents
	// MQTTAddrs are every address enrolling agents may use and fail over between, MQTTAddr
	// first (default: MQTTAddr alone).
	MQTTAddrs []string
	CertTTL   time.Duration // device certificate validity (default 365 days)
	Version   string
	Now       func() time.Time

	// Events takes the channels' event batches (hub/events), Clients authenticates channel
	// clients for it; EventsInFlight bounds the batches handled at once (default 256).
	Events         EventIntake
	Clients        ClientAuthenticator
	EventsInFlight int
	// Cases is the case room (hub/cases), Ratings the rating room (hub/ratings).
	Cases   CaseRoom
	Ratings RatingRoom
	// Analytics answers heat, funnel and search-miss queries (hub/events).
	Analytics Analytics
	// Outreach recommends services to citizens (hub/outreach).
	Outreach OutreachRoom
	// Anchor returns the CA enrollment tokens pin: the root of the hub's HTTPS certificate chain
	// (nil: the CA's own certificate). It is asked at each use: an operator's certificate may be
	// reloaded.
	Anchor func() *x509.Certificate

	// Feed is the feed of kiosk changes GET /feed streams (nil: no stream); FeedHold how
	// long a stream lasts before the client must reconnect (default 5 minutes).
	Feed     FeedSource
	FeedHold time.Duration
	// TrustedProxies are the reverse proxies whose X-Forwarded-For names the client of a call,
	// as the audit log records it (ratelimit.ClientAddr); none: the connection's address.
	TrustedProxies []netip.Prefix
	// AlertChanged is told about each alert acknowledged or resolved through the API (nil: none).
	AlertChanged AlertChanged
	// Logs holds the kiosks' log tails (hub/logtail); nil: GET /devices/{id}/log is not served.
	Logs LogRoom
}

// API is the HTTP API handler.
type API struct {
	cfg   Config
	mux   *http.ServeMux
	gates map[string]gate // by route pattern, set before the route
}

// A gate admits a request to its route before the body is read (passing on what it learnt in the
// request's context), or refuses it (a full queue, unknown credentials); release is called when
// the request is done.
type gate func(w http.ResponseWriter, r *http.Request) (admitted *http.Request, release func(), err error)

// New returns the API handler.
func New(cfg Config) *API {
	if cfg.CertTTL <= 0 {
		cfg.CertTTL = 365 * 24 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.EventsInFlight <= 0 {
		cfg.EventsInFlight = 256
	}
	if len(cfg.MQTTAddrs) == 0 {
		cfg.MQTTAddrs = []string{cfg.MQTTAddr}
	}
	if cfg.Anchor == nil && cfg.CA != nil {
		blk, _ := pem.Decode(cfg.CA.CertPEM())
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			panic("httpapi: the CA's certificate does not parse: " + err.Error()) // ca.CA parsed it when it loaded
		}
		cfg.Anchor = func() *x509.Certificate { return cert }
	}
	a := &API{cfg: cfg, mux: http.NewServeMux(), gates: map[string]gate{}}
	a.healthRoutes()
	a.siteRoutes()
	a.enrollRoutes()
	a.deviceRoutes()
	a.overviewRoutes()
	a.commandRoutes()
	a.stateRoutes()
	a.recordRoutes()
	a.eventRoutes()
	a.caseRoutes()
	a.ratingRoutes()
	a.analyticsRoutes()
	a.outreachRoutes()
	a.journalRoutes()
	a.meRoutes()
	a.feedRoutes()
	a.alertRoutes()
	a.workOrderRoutes()
	a.auditRoutes()
	if cfg.Catalog != nil {
		a.catalogRoutes()
		a.guideRoutes()
		a.publicRoutes()
	}
	if cfg.Updates != nil && cfg.Catalog != nil {
		a.updateRoutes()
	}
	if cfg.Rollouts != nil {
		a.rolloutRoutes()
	}
	if cfg.Bulk != nil {
		a.bulkRoutes()
	}
	if cfg.Logs != nil {
		a.logRoutes()
	}
	a.mux.HandleFunc(api.Prefix+"/", func(w http.ResponseWriter, r *http.Request) {
		a.writeErr(w, apiErr(http.StatusNotFound, "not_found", "no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	return a
}

func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }
