// Package server assembles a hub: its CA, store, embedded MQTT broker, ingest, journal verifier,
// identity provider, event stream, cases, ratings, outreach, app catalog, update repository,
// rollouts and HTTP API, with the bootstrap admin token (Assemble), and serves them until the
// context ends, shutting down gracefully (Hub.Serve). The HTTP side is HTTPS, plain HTTP only on
// loopback (tls.go).
package server

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kioskfleet/kioskfleet/hub/alerts"
	"github.com/kioskfleet/kioskfleet/hub/broker"
	"github.com/kioskfleet/kioskfleet/hub/bulk"
	"github.com/kioskfleet/kioskfleet/hub/ca"
	"github.com/kioskfleet/kioskfleet/hub/cases"
	"github.com/kioskfleet/kioskfleet/hub/catalog"
	"github.com/kioskfleet/kioskfleet/hub/cluster"
	"github.com/kioskfleet/kioskfleet/hub/connlimit"
	"github.com/kioskfleet/kioskfleet/hub/events"
	"github.com/kioskfleet/kioskfleet/hub/feed"
	"github.com/kioskfleet/kioskfleet/hub/httpapi"
	"github.com/kioskfleet/kioskfleet/hub/identity"
	"github.com/kioskfleet/kioskfleet/hub/ingest"
	"github.com/kioskfleet/kioskfleet/hub/journal"
	"github.com/kioskfleet/kioskfleet/hub/logtail"
	"github.com/kioskfleet/kioskfleet/hub/outreach"
	"github.com/kioskfleet/kioskfleet/hub/ratelimit"
	"github.com/kioskfleet/kioskfleet/hub/ratings"
	"github.com/kioskfleet/kioskfleet/hub/rollout"
	"github.com/kioskfleet/kioskfleet/hub/security"
	"github.com/kioskfleet/kioskfleet/hub/store"
	_ "github.com/kioskfleet/kioskfleet/hub/store/postgres" // the shared backend, postgres://...
	_ "github.com/kioskfleet/kioskfleet/hub/store/sqlite"   // the embedded backend, sqlite:PATH
	"github.com/kioskfleet/kioskfleet/hub/updates"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/atomicfile"
	"github.com/kioskfleet/kioskfleet/pkg/flagconf"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// Config configures a hub.
type Config struct {
	// DataDir holds the secrets (the device CA, the identity secret, the bootstrap token) and, by
	// default, the SQLite database. Replicas on one PostgreSQL database are all given the same
	// secrets (the same folder, read-only is enough), made once by Init.
	DataDir  string
	Store    string // store URL (default sqlite:<DataDir>/hub.db), see store.Open
	HTTPAddr string // e.g. 127.0.0.1:8080 (":0" style for tests)
	MQTTAddr string // TLS MQTT listener, e.g. 127.0.0.1:8883
	// AdvertiseMQTT is the comma-separated list of addresses agents are told at enrollment and
	// fail over between: every replica's, or a load balancer's (default: the bound MQTT address).
	AdvertiseMQTT string
	Hosts         []string // names and IPs in the broker's server certificate (default 127.0.0.1, localhost)
	Version       string
	Log           *slog.Logger
	// PublicURL is the hub's base URL as browsers and agents reach it: the OpenID issuer and the
	// base of the built-in clients' redirect URIs (default: https:// + the bound HTTP address).
	PublicURL string
	// ConsoleURL is the fleet console's base URL as browsers reach it, where the hub's login
	// sends staff back (default: PublicURL + "/console").
	ConsoleURL string

	// The HTTP side is served over TLS (tls.go): with a certificate of the hub's CA for Hosts, or
	// the operator's: TLSCertFile (PEM chain, server certificate first, ending with the CA kiosks
	// pin) and TLSKeyFile, reloaded when the files change.
	TLSCertFile, TLSKeyFile string
	// HTTPInsecure serves plain HTTP instead, only on a loopback HTTPAddr unless HTTPInsecureForce
	// (behind a TLS-terminating proxy, say); a forced start logs a warning every time.
	HTTPInsecure, HTTPInsecureForce bool

	// AlertWebhook, if set, is where the hub posts each alert opened or resolved (JSON, retried;
	// hub/alerts.Webhook). OfflineAfter is how long a kiosk is offline before it is an alert
	// (default 5 minutes).
	AlertWebhook string
	OfflineAfter time.Duration
	// SecurityFlush is how often the refusals counted as security events are written (default
	// 10 s; hub/security).
	SecurityFlush time.Duration

	// Ingest tuning (zero values: package defaults).
	Ingest ingest.Config
	// Events tuning: retention, suppression threshold, group commit, client rates (zero values:
	// package defaults; the secret is the hub's own).
	Events events.Config
	// RecheckInterval is how often live sessions are re-authorised (revocation); default 30 s.
	RecheckInterval time.Duration
	// Limits bound what the hub holds for clients before it knows who they are.
	Limits Limits
	// TrustedProxies are the reverse proxies (addresses or CIDR prefixes) whose X-Forwarded-For
	// names the client address for the per-address limits; none: the connection's address.
	TrustedProxies []string
	// ProxyProtocolFrom are the L4 load balancers (addresses or CIDR prefixes) in front of the
	// MQTT and HTTP listeners whose connections start with a PROXY protocol v2 header (HAProxy's
	// send-proxy-v2) naming the client's address, which the per-address limits, the logs and
	// the metrics then see; their connections must, nobody else's may (hub/proxyproto).
	ProxyProtocolFrom []string

	// Replica names this hub among the replicas sharing its database: unique per replica and
	// stable across its restarts (default: the host name and MQTTAddr). See hub/cluster.
	Replica string
	// PresenceLease bounds how long the devices of a replica that died show online (default
	// cluster.DefaultLease).
	PresenceLease time.Duration
	// Init lets the hub create missing secrets in DataDir even on a shared store, which it
	// otherwise refuses: replicas that each made their own would not trust each other's kiosks
	// and tokens. A cluster is set up once with Init (fleet-hub init); a hub on SQLite makes
	// its secrets at its first start anyway.
	Init bool
	// Citizens configures phone-code and passkey logins (citizens.go).
	Citizens Citizens
}

// Validate reports every problem with cfg at once.
func (c *Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("data dir: required"))
	}
	for name, a := range map[string]string{"http addr": c.HTTPAddr, "mqtt addr": c.MQTTAddr} {
		if _, _, err := net.SplitHostPort(a); err != nil {
			errs = append(errs, fmt.Errorf("%s: %q: %w", name, a, err))
		}
	}
	if c.Store != "" {
		if err := store.CheckURL(c.Store); err != nil {
			errs = append(errs, err)
		}
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			errs = append(errs, fmt.Errorf("public url: %q: want http(s)://host[:port]", c.PublicURL))
		}
	}
	if c.AlertWebhook != "" {
		if u, err := url.Parse(c.AlertWebhook); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			errs = append(errs, fmt.Errorf("alert webhook: %q: want an http(s) URL", c.AlertWebhook))
		}
	}
	if c.ConsoleURL != "" {
		if u, err := url.Parse(c.ConsoleURL); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || u.RawQuery != "" || u.Fragment != "" {
			errs = append(errs, fmt.Errorf("console url: %q: want http(s)://host[:port][/path]", c.ConsoleURL))
		}
	}
	for _, a := range flagconf.List(c.AdvertiseMQTT) {
		if _, _, err := net.SplitHostPort(a); err != nil {
			errs = append(errs, fmt.Errorf("advertise mqtt: %q: %w", a, err))
		}
	}
	if c.PresenceLease < 0 || (c.PresenceLease > 0 && c.PresenceLease < 3*time.Second) {
		errs = append(errs, fmt.Errorf("presence lease: %v: want at least 3s", c.PresenceLease))
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, errors.New("tls cert and tls key: give both or neither"))
	}
	switch {
	case c.HTTPInsecure && c.TLSCertFile != "":
		errs = append(errs, errors.New("http insecure: serves plain HTTP, yet a tls cert is given: choose one"))
	case c.HTTPInsecureForce && !c.HTTPInsecure:
		errs = append(errs, errors.New("http insecure force: only with http insecure"))
	case c.HTTPInsecure && !c.HTTPInsecureForce && !loopback(c.HTTPAddr):
		errs = append(errs, fmt.Errorf("http insecure: %s is not a loopback address: bearer tokens, staff passwords, "+
			"enrollment tokens and ID-card logins would cross the network in clear; serve HTTPS (the default: drop "+
			"http insecure), or, only behind a TLS-terminating proxy, add http insecure force", c.HTTPAddr))
	}
	errs = append(errs, c.Limits.validate(), c.Citizens.validate())
	if _, bad := ratelimit.ParsePrefixes(c.TrustedProxies); len(bad) > 0 {
		errs = append(errs, fmt.Errorf("trusted proxies: %q: want addresses or CIDR prefixes", bad))
	}
	if _, bad := ratelimit.ParsePrefixes(c.ProxyProtocolFrom); len(bad) > 0 {
		errs = append(errs, fmt.Errorf("proxy protocol from: %q: want addresses or CIDR prefixes of load balancers", bad))
	}
	return errors.Join(errs...)
}

// Info says where a started hub can be reached.
type Info struct {
	HTTPURL        string // https://, or http:// when serving plain HTTP
	MQTTAddr       string
	CAFile         string // the hub's CA certificate, for clients to trust (curl --cacert, fleetctl --ca)
	CAHash         string // the pin of the CA enrollment tokens carry (api.CAHash)
	BootstrapToken string
	FirstStart     bool // the bootstrap token was created by this start
	// Credentials created by this start (admin password, client secrets), shown once; also kept
	// in DataDir/initial-credentials (mode 0600) for the operator to collect and delete.
	Credentials map[string]string
}

const tokenFile = "bootstrap-token"

// Init sets a hub's data folder and store up, creating what is missing (the secrets in DataDir,
// the schema, the bootstrap admin and built-in clients), and returns what it created, without
// serving. A cluster of replicas on one PostgreSQL database is set up this way once, before any
// replica starts; the replicas are then all given the same data folder.
func Init(ctx context.Context, cfg Config) (Info, error) {
	cfg.Init = true
	cfg.HTTPAddr, cfg.MQTTAddr = "127.0.0.1:0", "127.0.0.1:0"
	h, err := Assemble(ctx, cfg)
	if err != nil {
		return Info{}, err
	}
	return h.Info, h.Close()
}

// Run assembles the hub and serves it until ctx is done. ready, if not nil, is called once
// everything listens.
func Run(ctx context.Context, cfg Config, ready func(Info)) error {
	h, err := Assemble(ctx, cfg)
	if err != nil {
		return err
	}
	return h.Serve(ctx, ready)
}

// Hub is an assembled hub: its store open and its listeners bound, every part built and wired,
// nothing yet served on HTTP or run in the background. Serve runs it; Close releases it unserved.
type Hub struct {
	Info    Info
	Handler http.Handler // what the HTTP listener serves: the API, the OpenID Provider, metrics, health

	log    *slog.Logger
	data   string
	ln     net.Listener
	tls    *tls.Config // of the HTTP side; nil: plain HTTP
	lim    *httpLimits
	ing    *ingest.Ingest
	br     *broker.Broker // held (Config.Hold) until Serve: a hello nobody answers leaves its kiosk waiting
	st     store.Store
	idp    *identity.Provider
	ev     *events.Events
	rep    *cluster.Replica
	jv     *journal.Verifier
	feed   *feed.Feed // kiosk changes for live viewers (GET /api/v1/feed)
	alerts *alerts.Engine
	sec    *security.Recorder // refusals at the hub's doors, counted into security events
	closer []func() error     // in the order opened

	repo     *updates.Repository // the update repository (signed bundles and agent binaries)
	rollouts *rollout.Engine
	bulk     *bulk.Engine
}

// Assemble builds a hub from cfg: data folder, bootstrap token, CA, store, ingest, broker (listening,
// bound, holding kiosks until Serve), identity provider and HTTP handlers, with the HTTP listener bound.
func Assemble(ctx context.Context, cfg Config) (h *Hub, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if len(cfg.Hosts) == 0 {
		cfg.Hosts = []string{"127.0.0.1", "localhost"}
	}
	if cfg.Store == "" {
		cfg.Store = "sqlite:" + filepath.Join(cfg.DataDir, "hub.db")
	}
	cfg.Limits = cfg.Limits.withDefaults()
	if err := atomicfile.MkdirPrivate(cfg.DataDir); err != nil {
		return nil, fmt.Errorf("hub: data dir: %w", err)
	}
	if cfg.Replica == "" {
		host, _ := os.Hostname()
		cfg.Replica = cmp.Or(host, "hub") + "/" + cfg.MQTTAddr
	}
	h = &Hub{log: log, data: cfg.DataDir}
	opened := h // h is nil once an error is returned
	defer func() {
		if err != nil {
			opened.Close()
		}
	}()
	st, err := store.Open(ctx, cfg.Store, log.With("component", "store"))
	if err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	h.st, h.closer = st, append(h.closer, st.Close)
	_, shared := st.(store.Notifier)
	if shared && !cfg.Init {
		if err := secretsPresent(cfg.DataDir); err != nil {
			return nil, err
		}
	}
	token, first, err := loadOrCreateToken(filepath.Join(cfg.DataDir, tokenFile))
	if err != nil {
		return nil, err
	}
	authority, err := ca.LoadOrCreate(filepath.Join(cfg.DataDir, "ca"))
	if err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	secret, err := identity.LoadOrCreateSecret(filepath.Join(cfg.DataDir, secretFile))
	if err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	if err := pinSecrets(ctx, st, authority, secret, cfg.DataDir); err != nil {
		return nil, err
	}
	serverCert, err := authority.ServerTLSCert(cfg.Hosts)
	if err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	ecfg := cfg.Events
	ecfg.Secret, ecfg.Log = secret, log.With("component", "events")
	if h.ev, err = events.New(ecfg, st, reg); err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	caseRoom, err := cases.New(cases.Config{Secret: secret, Log: log.With("component", "cases")}, st, cases.NewLocal())
	if err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	cfg.Ingest.Replica = cfg.Replica
	cfg.Ingest.Hooks = map[string]ingest.RecordHook{wire.KindEvent: h.ev}
	if h.ing, err = ingest.New(cfg.Ingest, st, nil, log.With("component", "ingest"), reg); err != nil {
		return nil, err
	}
	h.jv = journal.New(st, log.With("component", "journal"))
	h.ing.AddHook(h.jv)
	h.feed = feed.New(0, nil)
	h.ing.AddHook(h.feed)
	acfg := alerts.Config{Store: st, Feed: h.feed, OfflineAfter: cfg.OfflineAfter, Claimer: cfg.Replica, Log: log.With("component", "alerts")}
	if cfg.AlertWebhook != "" {
		acfg.Notify = &alerts.Webhook{URL: cfg.AlertWebhook, Log: acfg.Log}
	}
	h.alerts = alerts.New(acfg)
	h.sec = security.New(security.Config{Store: st, FlushEvery: cfg.SecurityFlush, Log: log.With("component", "security")})
	if err := errors.Join(h.feed.Register(reg), h.alerts.Register(reg), h.sec.Register(reg)); err != nil {
		return nil, fmt.Errorf("hub: metrics: %w", err)
	}
	lbs, err := newBalancers(cfg.ProxyProtocolFrom, reg, log.With("component", "proxyproto"))
	if err != nil {
		return nil, err
	}
	mqttLn, err := lbs.listen("mqtt", cfg.MQTTAddr)
	if err != nil {
		return nil, fmt.Errorf("hub: broker: listen: %w", err)
	}
	br, err := broker.Start(ctx, broker.Config{
		Listener:        mqttLn,
		ClientCAs:       authority.Pool(),
		Certificate:     serverCert,
		Authorize:       authorizer(st),
		Credentials:     credentials(st),
		RecheckInterval: cfg.RecheckInterval,
		ConnectTimeout:  cfg.Limits.MQTTConnectTimeout,
		MaxConnectSize:  cfg.Limits.MQTTMaxConnect,
		Pending:         connlimit.Limits{PerAddr: cfg.Limits.MQTTPendingPerAddr, Total: cfg.Limits.MQTTPending},
		// Tickets survive a restart, so a reconnecting fleet resumes TLS cheaply.
		SessionTicketSecret: secret,
		OnSession: func(c broker.SessionChange) {
			if c.Online {
				h.ing.SetPresence(context.WithoutCancel(ctx), c.DeviceID, true, "")
				return
			}
			h.ing.EndSession(c.DeviceID, c.At, store.SessionEnd{StartedAt: c.Since, Reason: c.Reason, Detail: c.Detail})
		},
		OnReject: h.sec.NoteBroker,
		Logger:   log.With("component", "broker"),
		Hold:     true, // until ingest listens: a hello nobody answers leaves its kiosk waiting
	})
	if err != nil {
		mqttLn.Close()
		return nil, fmt.Errorf("hub: broker: %w", err)
	}
	h.closer = append(h.closer, br.Close)
	h.br = br
	h.ing.SetBus(br)
	if err := reg.Register(br.Collector()); err != nil {
		return nil, fmt.Errorf("hub: metrics: %w", err)
	}
	logs := logtail.New(logtail.Config{Notify: h.feed.Publish, Log: log.With("component", "logtail")})
	if err := errors.Join(logs.Register(reg), logs.Subscribe(br)); err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	advertise := flagconf.List(cfg.AdvertiseMQTT)
	if len(advertise) == 0 {
		advertise = []string{br.Addr()}
	}
	// A kiosk checks the broker's certificate against the host it is told: refuse to tell one
	// it would fail on.
	for _, a := range advertise {
		if err := covered(serverCert.Leaf, a); err != nil {
			return nil, fmt.Errorf("hub: advertise mqtt %s: %w (the broker's certificate is for --hosts): set --advertise-mqtt or --hosts", a, err)
		}
	}

	scheme, anchor := "https", authority.Certificate
	var served *servingCert
	switch {
	case cfg.HTTPInsecure:
		scheme = "http"
		if !loopback(cfg.HTTPAddr) {
			log.Warn("serving plain HTTP on a non-loopback address (http insecure force): tokens, passwords and "+
				"ID-card logins cross the network in clear unless a TLS-terminating proxy is in front", "addr", cfg.HTTPAddr)
		}
	case cfg.TLSCertFile != "":
		if served, err = loadServingCert(cfg.TLSCertFile, cfg.TLSKeyFile, log.With("component", "tls")); err != nil {
			return nil, fmt.Errorf("hub: %w", err)
		}
		anchor = served.Anchor
	default:
		served = ownServingCert(serverCert, authority.Certificate())
		h.Info.CAFile = filepath.Join(cfg.DataDir, "ca", ca.CertFile)
	}
	if h.ln, err = lbs.listen("http", cfg.HTTPAddr); err != nil {
		return nil, fmt.Errorf("hub: http: %w", err)
	}
	h.closer = append(h.closer, h.ln.Close)
	if served != nil {
		h.tls = served.config()
	}
	public := strings.TrimRight(cmp.Or(cfg.PublicURL, scheme+"://"+h.ln.Addr().String()), "/")
	proxies, _ := ratelimit.ParsePrefixes(cfg.TrustedProxies)
	icfg := identity.Config{Issuer: public, Secret: secret, Insecure: strings.HasPrefix(public, "http://"), TrustedProxies: proxies,
		OnRefused: func(kind, staff, source string) { h.sec.Note(kind, "", staff, source, "") }}
	ratingRoom := ratings.New(ratings.Config{}, st)
	// A deleted account reaches every room that keeps data under it (PIPL art. 47).
	icfg.AccountHooks = []identity.AccountDeleted{caseRoom, h.ev, ratingRoom, outreach.OptOuts{Store: st}}
	if err := cfg.Citizens.apply(&icfg); err != nil {
		return nil, fmt.Errorf("hub: identity: %w", err)
	}
	if cfg.Citizens.SMSDevFile != "" {
		log.Warn("phone codes go to a file in clear: development only, never in production", "file", cfg.Citizens.SMSDevFile)
	}
	h.idp, err = identity.New(ctx, icfg, st, st, log.With("component", "identity"))
	if err != nil {
		return nil, fmt.Errorf("hub: identity: %w", err)
	}
	if err := reg.Register(h.idp.Collector()); err != nil {
		return nil, fmt.Errorf("hub: metrics: %w", err)
	}
	boot, err := h.idp.Bootstrap(ctx, identity.BootstrapConfig{BaseURL: public, ConsoleURL: cfg.ConsoleURL})
	if err != nil {
		return nil, fmt.Errorf("hub: identity bootstrap: %w", err)
	}
	creds := map[string]string{}
	if boot.AdminPassword != "" {
		creds["admin password (user admin)"] = boot.AdminPassword
	}
	for c, sec := range boot.ClientSecrets {
		creds["client secret "+c] = sec
	}
	if len(creds) > 0 {
		if err := saveCredentials(filepath.Join(cfg.DataDir, "initial-credentials"), creds); err != nil {
			return nil, err
		}
	}

	h.rep, err = cluster.New(cluster.Config{Replica: cfg.Replica, Lease: cfg.PresenceLease, Log: log.With("component", "cluster")},
		st, br, h.ing, h.idp)
	if err != nil {
		return nil, err
	}
	var dispatch httpapi.Dispatcher = h.ing
	if shared {
		// Every replica hears of the change from the database, this one included; the one
		// holding the device sends it.
		dispatch = byNotice{}
	}
	onlineKey, err := updates.LoadOrCreateKey(filepath.Join(cfg.DataDir, "tuf-online.key"))
	if err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	if h.repo, err = updates.New(updates.Config{Store: st, OnlineKey: onlineKey, Log: log.With("component", "updates")}); err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	cat, err := catalog.New(catalog.Config{Store: st, Log: log.With("component", "catalog"), Gates: []catalog.Gate{updates.Gate{Repo: h.repo}}})
	if err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	if h.rollouts, err = rollout.New(rollout.Config{Store: st, Dispatch: dispatch, Targets: h.repo, Log: log.With("component", "rollout")}); err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	if h.bulk, err = bulk.New(bulk.Config{Store: st, Sessions: br, Dispatch: dispatch, Notify: h.feed.Publish, Security: h.sec,
		Log: log.With("component", "bulk")}); err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	if h.lim, err = newHTTPLimits(cfg.Limits, reg, log.With("component", "http")); err != nil {
		return nil, err
	}
	apiH := httpapi.New(httpapi.Config{
		Store: st, CA: authority, Sessions: br, Dispatch: dispatch, Catalog: cat, Updates: h.repo, Rollouts: h.rollouts, Bulk: h.bulk,
		Auth:     httpapi.AnyOf{httpapi.NewBootstrapToken(token), httpapi.OIDC{P: h.idp}, httpapi.KioskAssertions{Verifier: h.idp}},
		Log:      log.With("component", "api"),
		MQTTAddr: advertise[0], MQTTAddrs: advertise, Version: cfg.Version, Anchor: anchor, Feed: h.feed,
		Events: h.ev, Clients: h.idp, Cases: caseRoom, Ratings: ratingRoom,
		Analytics: h.ev, Outreach: outreach.New(outreach.Config{}, st, h.idp, h.ev.Pseudonyms()),
		AlertChanged: h.alerts.Changed, TrustedProxies: proxies, Logs: logs, Security: h.sec,
	})
	// Every body is bounded by its route: small where the hub reads it before it knows who sent
	// it (enrollment, the OpenID Provider), larger only where it reads it after.
	anon, mux := cfg.Limits.AnonBody, http.NewServeMux()
	mux.Handle("/api/", h.lim.body(apiBody, apiH))
	mux.Handle("POST "+api.Prefix+"/enroll", h.lim.body(anon, apiH))
	mux.Handle("GET "+events.SDKPath, h.lim.body(anon, events.SDK()))
	// Uploads, read after authentication and bounded by their routes (httpapi): bundles, guide
	// templates, agent binaries and the offline-signed metadata.
	for _, p := range []string{"PUT /apps/{id}/versions/{version}/bundle", "POST /templates", "POST /updates/files",
		"PUT /updates/root", "PUT /updates/targets"} {
		method, path, _ := strings.Cut(p, " ")
		mux.Handle(method+" "+api.Prefix+path, h.lim.body(0, apiH))
	}
	mux.Handle(updates.Prefix, h.lim.body(anon, h.repo.Handler()))
	mux.Handle("/.well-known/openid-configuration", h.lim.body(anon, h.idp.Handler()))
	mux.Handle("/oidc/", h.lim.body(anon, h.idp.Handler()))
	mux.Handle("/oidc/admin/", h.lim.body(adminBody, h.idp.Handler())) // staff only: read after authentication
	mux.Handle("GET /metrics", h.lim.body(anon, promhttp.HandlerFor(reg, promhttp.HandlerOpts{})))
	mux.Handle("GET /healthz", h.lim.body(anon, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := st.Ping(r.Context()); err != nil {
			http.Error(w, "store: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})))
	h.Handler = mux
	h.Info = Info{HTTPURL: scheme + "://" + h.ln.Addr().String(), MQTTAddr: br.Addr(), BootstrapToken: token, FirstStart: first,
		Credentials: creds, CAFile: h.Info.CAFile, CAHash: api.CAHash(anchor())}
	return h, nil
}

// Serve runs the hub until ctx is done, then shuts down gracefully: it stops taking requests, lets
// ingest commit and ack what it holds, then closes the broker and the store. ready, if not nil,
// is called once everything runs.
func (h *Hub) Serve(ctx context.Context, ready func(Info)) error {
	defer h.Close()
	srv := h.lim.server(h.Handler)
	srv.RegisterOnShutdown(h.feed.Close) // event streams end, so that Shutdown does not wait for them
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Ingest listens before the broker lets kiosks in: a hello that reaches no subscriber is never
	// answered, and its kiosk would wait for an ack that never comes.
	if err := h.ing.Subscribe(ctx); err != nil {
		return err
	}
	// The replica takes its lease (releasing what its previous process held) before kiosks come.
	if err := h.rep.Start(ctx); err != nil {
		return err
	}
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	wg.Go(func() { _ = h.idp.Run(runCtx, time.Minute) })
	wg.Go(func() { _ = h.ev.Run(runCtx) })
	wg.Go(func() { h.rep.Run(runCtx) })
	wg.Go(func() { _ = h.jv.Run(runCtx) })
	wg.Go(func() { _ = h.alerts.Run(runCtx) })
	wg.Go(func() { _ = h.sec.Run(runCtx) })
	wg.Go(func() { h.repo.Run(runCtx, 10*time.Minute) })
	wg.Go(func() { h.rollouts.Run(runCtx) })
	wg.Go(func() { h.bulk.Run(runCtx) })
	wg.Go(func() {
		if err := h.ing.Run(runCtx); err != nil {
			errc <- err
			cancel()
		}
	})
	wg.Go(func() {
		// TLS outermost, so that the server sees a *tls.Conn (HTTP/2, r.TLS); connlimit.RefusalOf
		// finds a refused connection's mark beneath it.
		ln := h.lim.listener(h.ln)
		if h.tls != nil {
			ln = tls.NewListener(ln, h.tls)
		}
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("hub: http: %w", err)
			cancel()
		}
	})
	h.br.Open()
	h.log.Info("hub started", "http", h.Info.HTTPURL, "mqtt", h.Info.MQTTAddr, "data", h.data)
	if ready != nil {
		ready(h.Info)
	}
	<-runCtx.Done()

	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer scancel()
	_ = srv.Shutdown(sctx)
	cancel()
	wg.Wait()
	// The sessions end with the broker; the devices it held are then offline here, not only
	// when the lease runs out.
	h.br.Close()
	h.ing.FlushPresence(sctx)                 // the sessions the broker ended, with their reasons
	if err := h.sec.Flush(sctx); err != nil { // the refusals counted while the broker closed
		h.log.Warn("security events not written at shutdown", "err", err)
	}
	if err := h.rep.Release(sctx); err != nil {
		h.log.Warn("presence not released", "err", err)
	}
	h.log.Info("hub stopped")
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

// Close releases what Assemble opened, newest first: the HTTP listener, the broker, the store.
// Serve closes the hub when it returns.
func (h *Hub) Close() error {
	var errs []error
	for i := len(h.closer) - 1; i >= 0; i-- {
		errs = append(errs, h.closer[i]())
	}
	h.closer = nil
	return errors.Join(errs...)
}

// authorizer refuses unknown and revoked devices and certificates other than the current one.
func authorizer(st store.Devices) func(ctx context.Context, deviceID, serial string) error {
	return func(ctx context.Context, deviceID, serial string) error {
		d, err := st.GetDevice(ctx, deviceID)
		if err != nil {
			return fmt.Errorf("device %s: %w", deviceID, err)
		}
		return broker.Credential{DeviceID: d.ID, Serial: d.CertSerial, Revoked: d.Revoked}.Check(serial)
	}
}

// credentials lists every device's credential with one query: the broker loads it every
// RecheckInterval to re-authorize the live sessions and check TLS handshakes.
func credentials(st store.Devices) func(ctx context.Context) ([]broker.Credential, error) {
	return func(ctx context.Context) ([]broker.Credential, error) {
		all, err := st.DeviceCredentials(ctx)
		if err != nil {
			return nil, err
		}
		out := make([]broker.Credential, len(all))
		for i, d := range all {
			out[i] = broker.Credential{DeviceID: d.ID, Serial: d.CertSerial, Revoked: d.Revoked}
		}
		return out, nil
	}
}

func loadOrCreateToken(path string) (string, bool, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		t := strings.TrimSpace(string(b))
		if len(t) < 32 {
			return "", false, fmt.Errorf("hub: %s: token too short", path)
		}
		return t, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", false, fmt.Errorf("hub: %w", err)
	}
	buf := make([]byte, 24)
	_, _ = rand.Read(buf)
	t := "kfa_" + hex.EncodeToString(buf)
	if err := os.WriteFile(path, []byte(t+"\n"), 0o600); err != nil {
		return "", false, fmt.Errorf("hub: %w", err)
	}
	return t, true, nil
}

func saveCredentials(path string, creds map[string]string) error {
	var b strings.Builder
	b.WriteString("# Created at the hub's first start. Collect, store safely, then delete this file.\n")
	keys := make([]string, 0, len(creds))
	for k := range creds {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s: %s\n", k, creds[k])
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	return nil
}

// secretFile holds the identity provider's master secret in the data folder.
const secretFile = "identity.secret"

// secretsPresent reports which secrets dir lacks: a hub on a shared store must be given them.
func secretsPresent(dir string) error {
	var missing []string
	// The CA's root certificate: its key, or an intermediate's, signs (ca.LoadOrCreate says
	// which is missing); without the certificate LoadOrCreate would make a CA of its own.
	for _, f := range []string{tokenFile, filepath.Join("ca", ca.CertFile), secretFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			missing = append(missing, f)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("hub: the data folder %s lacks %s: replicas on a shared store must all be given the same secrets; "+
		"make them once with 'fleet-hub init --data %s --store URL --public-url URL', then give every replica that folder",
		dir, strings.Join(missing, ", "), dir)
}

// pinSecrets checks that this hub's device CA and identity secret are those every other replica
// of its database uses (the first to start pinned them), so that a replica given other secrets
// stops here instead of issuing certificates and tokens the others reject.
func pinSecrets(ctx context.Context, st store.Replicas, authority *ca.CA, secret []byte, dir string) error {
	caSum := sha256.Sum256(authority.Certificate().Raw)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("kioskfleet identity secret fingerprint"))
	for _, p := range []struct {
		name, file string
		fp         []byte
	}{
		{"device-ca", filepath.Join(dir, "ca", ca.CertFile), caSum[:]},
		{"identity-secret", filepath.Join(dir, secretFile), m.Sum(nil)},
	} {
		err := st.PinFingerprint(ctx, p.name, p.fp)
		if errors.Is(err, store.ErrMismatch) {
			return fmt.Errorf("hub: %s is not the %s this database was first used with: every hub on one database must be given the same secrets (the same data folder)", p.file, p.name)
		}
		if err != nil {
			return fmt.Errorf("hub: %w", err)
		}
	}
	return nil
}

// byNotice is the API's dispatcher when the store tells every replica of a new command or
// desired state (store.Notifier): the replica holding the device acts on the notice, so the API
// sends nothing itself.
type byNotice struct{}

func (byNotice) SendPending(context.Context, string) {}
func (byNotice) PushDesired(context.Context, string) {}
