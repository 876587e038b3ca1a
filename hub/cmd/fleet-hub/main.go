// Command fleet-hub runs the kioskfleet hub: the embedded MQTT broker kiosks sync with (mutual TLS),
// the store, the device registry and the HTTP API.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/broker"
	"github.com/kioskfleet/kioskfleet/hub/events"
	"github.com/kioskfleet/kioskfleet/hub/server"
	"github.com/kioskfleet/kioskfleet/pkg/flagconf"
	"github.com/kioskfleet/kioskfleet/pkg/gcheadroom"
	"github.com/kioskfleet/kioskfleet/pkg/logging"
)

var version = "dev"

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "fleet-hub:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) > 0 && args[0] == "ca" {
		return runCA(args[1:], os.Stdout, os.Stderr)
	}
	initOnly := len(args) > 0 && args[0] == "init"
	if initOnly {
		args = args[1:]
	}
	fs := flag.NewFlagSet("fleet-hub", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: fleet-hub [flags]
       fleet-hub init [flags]
       fleet-hub ca COMMAND [flags]   the device CA's offline root (fleet-hub ca --help)

Runs the kioskfleet hub on one machine: an embedded MQTT broker (TLS, one client certificate per
kiosk, issued by the hub's own CA), the store (SQLite by default, or PostgreSQL) and the HTTP API
(/api/v1, /metrics, /healthz), the OpenID Provider and enrollment, over HTTPS.
At first start it creates its CA and a bootstrap admin token in the data folder and prints the token.

Several replicas on one PostgreSQL database (--store postgres://...) share its state; each is
given the same data folder (its secrets: the device CA, the identity secret, the bootstrap
token), which 'fleet-hub init' makes once, with the database's schema and first accounts, and
prints what it created. A replica on PostgreSQL never makes secrets of its own. Give the
replicas the same --public-url (the load balancer's) and --advertise-mqtt (every replica's
address, or the load balancer's), and each its own --replica name. See docs/cluster.md.

HTTPS uses a certificate of the hub's CA for --hosts: clients trust <data>/ca/ca.crt (curl
--cacert, fleetctl --ca or KF_CA, fleet-console --hub-ca); kiosks pin it through their enrollment
token. Or give your own with --tls-cert (the chain, ending with the CA kiosks will pin) and
--tls-key; they are reloaded when the files change. Plain HTTP (--http-insecure) is allowed only on
a loopback --http-addr, elsewhere only with --http-insecure-force, behind a TLS-terminating proxy.

Every flag can also be set in the environment (KF_HUB_<FLAG>, e.g. KF_HUB_HTTP_ADDR) or in a YAML
file given with --config (keys are flag names). Flags win over environment, environment over file.

Flags:
`)
		fs.PrintDefaults()
	}
	var (
		cfgFile   = fs.String("config", "", "YAML config file")
		dataDir   = fs.String("data", "var/hub", "data folder (CA, bootstrap token, the SQLite database by default)")
		storeURL  = fs.String("store", "", "store URL: sqlite:PATH (default sqlite:<data>/hub.db) or postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?sslmode=...] (PostgreSQL, for several hubs on one database)")
		httpAddr  = fs.String("http-addr", "127.0.0.1:8080", "HTTP API listen address")
		mqttAddr  = fs.String("mqtt-addr", "127.0.0.1:8883", "MQTT over TLS listen address")
		advertise = fs.String("advertise-mqtt", "", "comma-separated MQTT addresses told to enrolling kiosks, which fail over between them: every replica's, or a load balancer's (default: the listen address)")
		replica   = fs.String("replica", "", "this hub's name among the replicas on its database: unique, and the same across its restarts (default: host name/MQTT address)")
		lease     = fs.Duration("presence-lease", 0, "how long the kiosks of a replica that died show online, at most (default 15s)")
		publicURL = fs.String("public-url", "", "base URL browsers and agents use to reach the hub: the OpenID issuer (default: https:// + the HTTP address)")
		webhook   = fs.String("alert-webhook", "", "URL the hub posts each alert opened or resolved to (JSON; retried with an Idempotency-Key)")
		offline   = fs.Duration("offline-after", 5*time.Minute, "a kiosk offline this long is an alert")
		console   = fs.String("console-url", "", "base URL of the fleet console as browsers reach it, where staff return after logging in (default: the public URL + /console)")
		hosts     = fs.String("hosts", "127.0.0.1,localhost", "comma-separated names and IPs for the broker's and the HTTPS certificate (the advertised MQTT hosts must be among them)")
		tlsCert   = fs.String("tls-cert", "", "HTTPS certificate chain (PEM: server certificate first, ending with the CA kiosks pin) instead of one of the hub's CA; reloaded when it changes")
		tlsKey    = fs.String("tls-key", "", "private key (PEM) of --tls-cert")
		insecure  = fs.Bool("http-insecure", false, "serve plain HTTP instead of HTTPS: only on a loopback --http-addr")
		force     = fs.Bool("http-insecure-force", false, "with --http-insecure, allow a non-loopback --http-addr (only behind a TLS-terminating proxy; warned at every start)")
		proxies   = fs.String("trusted-proxies", "", "comma-separated addresses or CIDR prefixes of reverse proxies whose X-Forwarded-For gives the client address for the per-address login, token and device limits (default: none, the connection's address)")
		ppFrom    = fs.String("proxy-protocol-from", "", "comma-separated addresses or CIDR prefixes of L4 load balancers (HAProxy with send-proxy-v2) in front of the MQTT and HTTP listeners: their connections must start with a PROXY protocol v2 header, whose client address the per-address limits, logs and metrics then use; nobody else may send one (default: none)")
		smsURL    = fs.String("sms-gateway-url", "", "HTTPS URL of the SMS gateway that sends the phone login's one-time codes (see hub/identity/sms); none: no phone login")
		smsKey    = fs.String("sms-gateway-key", "", "bearer key of --sms-gateway-url (better in the environment: KF_HUB_SMS_GATEWAY_KEY)")
		smsDev    = fs.String("sms-dev-file", "", "DEVELOPMENT ONLY, never in production: append phone login codes, in clear, to this file instead of sending them")
		pkRPID    = fs.String("passkey-rp-id", "", "passkeys' relying party ID, a domain (default: the host of --public-url; passkeys are off when it is an IP address)")
		pkOrigins = fs.String("passkey-origins", "", "comma-separated origins accepted for passkeys besides --public-url's (a portal on a subdomain, the app's android:apk-key-hash:...)")
		conns     = fs.String("connectors", "", "YAML file of upstream identity providers citizens may log in with (OIDC, wechat, alipay; see hub/identity/connector); register <public-url>/oidc/upstream/<id>/callback at each")
		logLevel  = fs.String("log-level", "info", "debug, info, warn or error")
		logFormat = fs.String("log-format", "text", "text or json")
		pprofAddr = fs.String("pprof-addr", "", "serve net/http/pprof on this (loopback) address, for profiling; its block and mutex profiles are then recorded too (at a small cost)")
		retention = fs.Duration("event-retention", 180*24*time.Hour, "how long raw events (web, mobile, mini-program, kiosk) are kept; their rollups stay")
		headroom  = fs.Int("gc-headroom-mib", 64, "bound the garbage collector's headroom to about this many MiB (or 2 s of allocation, if more) once the hub's memory in use is large (many connected kiosks); 0: GOGC alone decides")

		// What the hub holds for clients before it knows who they are (docs/api.md, docs/protocol.md).
		httpRead       = fs.Duration("http-read-timeout", server.DefaultHTTPReadTimeout, "time to read a whole HTTP request, body included")
		httpWrite      = fs.Duration("http-write-timeout", server.DefaultHTTPWriteTimeout, "time from the end of an HTTP request's header to the end of its answer (a long poll extends its own)")
		httpIdle       = fs.Duration("http-idle-timeout", server.DefaultHTTPIdleTimeout, "time a kept-alive HTTP connection may wait for its next request")
		httpPerAddr    = fs.Int("http-conns-per-addr", server.DefaultHTTPConnsPerAddr, "open HTTP connections per client address (IPv4 address or IPv6 /64); more are answered 503; -1: no limit (behind a proxy that does not pass client addresses)")
		anonBody       = fs.Int64("http-anon-body-bytes", server.DefaultAnonBody, "largest request body read before its sender is authenticated (enrollment, OpenID endpoints)")
		mqttConnect    = fs.Duration("mqtt-connect-timeout", broker.DefaultConnectTimeout, "time for a kiosk's TLS handshake and CONNECT")
		mqttMaxConnect = fs.Int("mqtt-connect-bytes", broker.DefaultMaxConnectSize, "largest MQTT CONNECT packet (a kiosk's is under 200 bytes)")
		mqttPerAddr    = fs.Int("mqtt-pending-per-addr", broker.DefaultPendingPerAddr, "MQTT connections not yet admitted to a session per client address; more are closed at once; -1: no limit")
		mqttPending    = fs.Int("mqtt-pending", broker.DefaultPending, "MQTT connections not yet admitted to a session, in all; -1: no limit")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if err := flagconf.Apply(fs, "KF_HUB_", *cfgFile); err != nil {
		return err
	}
	log, err := logging.New(os.Stderr, *logLevel, *logFormat)
	if err != nil {
		return err
	}
	// Our code is handed log; the OpenID Provider library (zitadel/oidc) logs only through
	// slog's default logger, which would otherwise write in the log package's format.
	slog.SetDefault(log.With("component", "oidc"))
	cfg := server.Config{
		DataDir: *dataDir, Store: *storeURL, HTTPAddr: *httpAddr, MQTTAddr: *mqttAddr, AdvertiseMQTT: *advertise, PublicURL: *publicURL,
		ConsoleURL: *console, AlertWebhook: *webhook, OfflineAfter: *offline,
		Hosts: strings.Split(*hosts, ","), Version: version, Log: log, Replica: *replica, PresenceLease: *lease,
		Events:      events.Config{Retention: *retention},
		TLSCertFile: *tlsCert, TLSKeyFile: *tlsKey, HTTPInsecure: *insecure, HTTPInsecureForce: *force,
		Limits: server.Limits{HTTPReadTimeout: *httpRead, HTTPWriteTimeout: *httpWrite, HTTPIdleTimeout: *httpIdle,
			HTTPConnsPerAddr: *httpPerAddr, AnonBody: *anonBody, MQTTConnectTimeout: *mqttConnect,
			MQTTMaxConnect: *mqttMaxConnect, MQTTPendingPerAddr: *mqttPerAddr, MQTTPending: *mqttPending},
	}
	if *proxies != "" {
		cfg.TrustedProxies = strings.Split(*proxies, ",")
	}
	if *ppFrom != "" {
		cfg.ProxyProtocolFrom = strings.Split(*ppFrom, ",")
	}
	cfg.Citizens = server.Citizens{SMSGatewayURL: *smsURL, SMSGatewayKey: *smsKey, SMSDevFile: *smsDev, PasskeyRPID: *pkRPID,
		ConnectorsFile: *conns}
	if *pkOrigins != "" {
		cfg.Citizens.PasskeyOrigins = strings.Split(*pkOrigins, ",")
	}
	err = cfg.Validate()
	if *retention < 24*time.Hour {
		err = errors.Join(err, fmt.Errorf("event retention: %s: want at least 24h", *retention))
	}
	if *headroom < 0 {
		err = errors.Join(err, fmt.Errorf("gc headroom mib: %d: want >= 0", *headroom))
	}
	if err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	if *pprofAddr != "" {
		ln, err := net.Listen("tcp", *pprofAddr)
		if err != nil {
			return fmt.Errorf("pprof: %w", err)
		}
		go func() { _ = http.Serve(ln, nil) }() // net/http/pprof registers on the default mux
		// Where goroutines wait (handshake slots, the store's pool, the broker's locks): one
		// event per 100 us blocked, one contended lock in 20.
		runtime.SetBlockProfileRate(100_000)
		runtime.SetMutexProfileFraction(20)
		log.Info("pprof listening", "addr", ln.Addr().String())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if initOnly {
		i, err := server.Init(ctx, cfg)
		if err != nil {
			return err
		}
		fmt.Printf("fleet-hub %s: data folder %s and store set up\n", version, *dataDir)
		printCredentials(i, *dataDir)
		return nil
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	gcCtx, stopGC := context.WithCancel(ctx)
	defer stopGC()
	wg.Go(func() {
		gcheadroom.Run(gcCtx, gcheadroom.Config{Headroom: uint64(*headroom) << 20}, log.With("component", "gcheadroom"))
	})
	return server.Run(ctx, cfg, func(i server.Info) {
		fmt.Printf("fleet-hub %s ready\n  HTTP API:  %s/api/v1\n  OpenID:    %s/.well-known/openid-configuration\n  MQTT/TLS:  %s\n", version, i.HTTPURL, i.HTTPURL, i.MQTTAddr)
		if i.CAFile != "" {
			fmt.Printf("  hub CA:    %s (trust it: curl --cacert, fleetctl --ca or KF_CA, fleet-console --hub-ca)\n", i.CAFile)
		}
		fmt.Printf("  CA pin:    %s (in every enrollment token)\n", i.CAHash)
		printCredentials(i, *dataDir)
	})
}

// printCredentials prints what a start created (shown once) or where the bootstrap token is.
func printCredentials(i server.Info, dataDir string) {
	if len(i.Credentials) > 0 {
		fmt.Printf("  first-start credentials (shown once; also in %s/initial-credentials):\n", dataDir)
		keys := make([]string, 0, len(i.Credentials))
		for k := range i.Credentials {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Printf("    %s: %s\n", k, i.Credentials[k])
		}
	}
	if i.FirstStart {
		fmt.Printf("  bootstrap admin token (shown once; also in %s/bootstrap-token): %s\n", dataDir, i.BootstrapToken)
	} else {
		fmt.Printf("  bootstrap admin token: in %s/bootstrap-token\n", dataDir)
	}
}
