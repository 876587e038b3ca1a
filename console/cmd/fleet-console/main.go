// Command fleet-console serves the fleet console: web pages for field ops, readable on a phone,
// showing which kiosks are down or degraded and why, and letting a technician send commands, set
// desired state and revoke kiosks. It talks to the hub only through its HTTP API. Run
// `fleet-console --help` for usage.
package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
	_ "time/tzdata" // --tz works on machines without a zoneinfo database

	"github.com/kioskfleet/kioskfleet/console/web"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/flagconf"
	"github.com/kioskfleet/kioskfleet/pkg/logging"
)

const envPrefix = "KF_CONSOLE_"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stderr, nil)
	stop()
	os.Exit(code)
}

// config is the console's settings after flags, environment and config file.
type config struct {
	hub, token, tokenFile, addr, tz, logLevel, logFormat, configFile string
	refresh, timeout                                                 time.Duration
	secureCookies                                                    bool
	hubCA                                                            string
}

func flags(c *config, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("fleet-console", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.hub, "hub", "https://127.0.0.1:8080", "hub base URL (also KF_HUB)")
	fs.StringVar(&c.hubCA, "hub-ca", "", "the hub's CA certificate (PEM) to trust, e.g. the hub's <data>/ca/ca.crt (also KF_CA; default: the system's roots)")
	fs.StringVar(&c.token, "token", "", "bearer token for the hub API (also KF_TOKEN); prefer --token-file")
	fs.StringVar(&c.tokenFile, "token-file", "", "file holding the bearer token")
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8081", "address to serve the console on")
	fs.StringVar(&c.tz, "tz", "Asia/Shanghai", "time zone pages show times in (IANA name, or UTC, or Local)")
	fs.DurationVar(&c.refresh, "refresh", 5*time.Second, "how often open pages refresh their data (1s..5m)")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "timeout of each call to the hub (1s..2m)")
	fs.BoolVar(&c.secureCookies, "secure-cookies", false, "mark cookies Secure (set when a TLS proxy serves the console)")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.logFormat, "log-format", "text", "text or json")
	fs.StringVar(&c.configFile, "config", "", "YAML file mapping flag names to values")
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: fleet-console --hub URL --token-file FILE [--addr 127.0.0.1:8081]

Serves the fleet console, web pages for field ops (zh-CN by default, English with ?lang=en or the
browser's language): an overview of the fleet with the kiosks that need attention first, a kiosk
list with filters, and a page per kiosk with its presence, health, peripherals, configuration and
commands, with forms to send a command, set the desired configuration and revoke it. It talks to
the hub only over its HTTP API, with one bearer token (role fieldops or admin, issued for the
fleet API: the one fleetctl login saves, or the bootstrap token): anyone who can reach the console
acts with that token, so keep --addr on loopback or behind an authenticating proxy.

Each flag can also be set in the environment as %sNAME (upper case, '-' as '_'), or in the
--config file; flags win over the environment, the environment over the file. --hub, --hub-ca and
--token also fall back to KF_HUB, KF_CA and KF_TOKEN, as fleetctl uses them.

Flags:
`, envPrefix)
		fs.PrintDefaults()
	}
	return fs
}

// run parses the command line, serves until ctx ends, and returns the exit code. ready, if not
// nil, gets the address served once listening.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, ready func(string)) int {
	var c config
	fs := flags(&c, stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "fleet-console: unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return 2
	}
	cfg, log, err := configure(fs, &c, getenv, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "fleet-console: %v\n", err)
		return 2
	}
	srv, err := web.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "fleet-console: %v\n", err)
		return 1
	}
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		fmt.Fprintf(stderr, "fleet-console: %v\n", err)
		return 1
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: c.timeout + 30*time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	log.Info("fleet console listening", "url", "http://"+ln.Addr().String(), "hub", c.hub)
	if ready != nil {
		ready(ln.Addr().String())
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		log.Error("serve", "err", err)
		return 1
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		log.Warn("shutdown", "err", err)
	}
	<-errc
	log.Info("fleet console stopped")
	return 0
}

// configure applies the environment and config file and checks every value, reporting all
// problems at once.
func configure(fs *flag.FlagSet, c *config, getenv func(string) string, stderr io.Writer) (web.Config, *slog.Logger, error) {
	var errs []error
	path := c.configFile
	if path == "" {
		path = getenv(envPrefix + "CONFIG")
	}
	if err := flagconf.Apply(fs, envPrefix, path); err != nil {
		errs = append(errs, err)
	}
	set := map[string]bool{} // by flag, environment or file
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["hub"] && getenv("KF_HUB") != "" {
		c.hub = getenv("KF_HUB")
	}
	if !set["hub-ca"] && getenv("KF_CA") != "" {
		c.hubCA = getenv("KF_CA")
	}
	if c.token == "" && c.tokenFile == "" {
		c.token = getenv("KF_TOKEN")
	}
	var roots *x509.CertPool
	if c.hubCA != "" {
		var err error
		if roots, err = api.LoadCA(c.hubCA); err != nil {
			errs = append(errs, fmt.Errorf("--hub-ca: %w", err))
		}
	}
	if u, err := url.Parse(c.hub); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("--hub %q: want an http:// or https:// URL", c.hub))
	}
	token := strings.TrimSpace(c.token)
	switch {
	case c.token != "" && c.tokenFile != "":
		errs = append(errs, errors.New("--token and --token-file: give one, not both"))
	case c.tokenFile != "":
		b, err := os.ReadFile(c.tokenFile)
		token = strings.TrimSpace(string(b))
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("--token-file: %w", err))
		case token == "":
			errs = append(errs, fmt.Errorf("--token-file %s: the file is empty", c.tokenFile))
		}
	case token == "":
		errs = append(errs, errors.New("no token: give --token-file, --token or KF_TOKEN"))
	}
	if _, _, err := net.SplitHostPort(c.addr); err != nil {
		errs = append(errs, fmt.Errorf("--addr %q: want host:port, e.g. 127.0.0.1:8081", c.addr))
	}
	loc, err := time.LoadLocation(c.tz)
	if err != nil {
		errs = append(errs, fmt.Errorf("--tz %q: unknown time zone (try Asia/Shanghai or UTC)", c.tz))
	}
	if c.refresh < time.Second || c.refresh > 5*time.Minute {
		errs = append(errs, fmt.Errorf("--refresh %v: want 1s..5m", c.refresh))
	}
	if c.timeout < time.Second || c.timeout > 2*time.Minute {
		errs = append(errs, fmt.Errorf("--timeout %v: want 1s..2m", c.timeout))
	}
	log, err := logging.New(stderr, c.logLevel, c.logFormat)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = strings.ReplaceAll(e.Error(), "\n", "\n  ")
		}
		return web.Config{}, nil, fmt.Errorf("invalid configuration:\n  %s", strings.Join(msgs, "\n  "))
	}
	hub := &api.Client{BaseURL: c.hub, Token: token, HTTP: &http.Client{Timeout: c.timeout, Transport: api.Transport(roots)}}
	return web.Config{Hub: hub, Log: log, Location: loc, Refresh: c.refresh, Timeout: c.timeout, SecureCookies: c.secureCookies}, log, nil
}
