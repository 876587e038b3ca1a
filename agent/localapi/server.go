// Package localapi is the kiosk agent's local device API: the WebSocket through which the kiosk
// shell and kiosk apps (Chromium on the same machine) reach the card reader, printers, scanners
// and the QR scanner. It listens on loopback only and is shaped after CEN XFS4IoT: every message
// is {"header": {name, requestId, type, version, timeout}, "payload": {...}}; a command gets an
// acknowledge, then events, then one completion with a completionCode; status changes come as
// unsolicited events. docs/localapi.md is the message catalogue.
//
// Only the shell's origin and registered kiosk apps may connect, and each app only to the
// services its manifest asks for. One app at a time owns a device: while a command of it runs,
// or from Common.Acquire until Common.Release or until it disconnects. ID card data reaches apps
// masked only; the full identity leaves the agent only inside the signed login assertion
// (Login.IdCard) and is held only while a command runs, then wiped.
package localapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kioskfleet/kioskfleet/agent/devices"
	"github.com/kioskfleet/kioskfleet/agent/kiosklogin"
	"github.com/kioskfleet/kioskfleet/drivers/docscan"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// Path is where the API is served (XFS4IoT API, Service Endpoints: ws://host:port/xfs4iot/v1.0/...).
const Path = "/xfs4iot/v1.0/kiosk"

// Devices is what the API needs of the device manager (*devices.Manager), the only owner of
// the devices.
type Devices interface {
	Snapshot() wire.Peripherals
	Changed() <-chan struct{}
	ReadCard(ctx context.Context, id string, use func(devices.Identity) error) error
	NextScan(ctx context.Context, id string) (string, error)
	ScanDocument(ctx context.Context, id string, opt docscan.Options) ([]docscan.Page, error)
	PrintDocument(ctx context.Context, id string, doc devices.Document, progress func(devices.JobProgress)) (devices.JobOutcome, error)
	PrintReceipt(ctx context.Context, id string, r devices.Receipt) (devices.JobOutcome, error)
}

var _ Devices = (*devices.Manager)(nil)

// Authenticator logs a citizen in at the hub with the ID card read at the kiosk; the agent signs
// the assertion with its device key (agent/kiosklogin). The card is wiped when it returns.
type Authenticator interface {
	LoginIDCard(ctx context.Context, card wire.IDCard) (kiosklogin.Session, error)
}

// AuthenticatorFunc adapts a function to Authenticator.
type AuthenticatorFunc func(ctx context.Context, card wire.IDCard) (kiosklogin.Session, error)

// LoginIDCard implements Authenticator.
func (f AuthenticatorFunc) LoginIDCard(ctx context.Context, card wire.IDCard) (kiosklogin.Session, error) {
	return f(ctx, card)
}

// Config configures a Server. Devices and Log are required.
type Config struct {
	Devices Devices
	Log     *slog.Logger
	// ShellOrigins are the origins the kiosk shell is served from (the agent's own listener,
	// e.g. http://127.0.0.1:8090); they get ShellManifest.
	ShellOrigins []string
	Apps         Apps          // registered kiosk apps; nil: only the shell
	Login        Authenticator // nil: Login.IdCard is unsupported

	MaxMessageBytes int64         // largest message read; default 16 MiB (a PDF to print travels in one)
	MaxTimeout      time.Duration // longest command; a command without a timeout gets it; default 5 min
	MaxInFlight     int           // commands running at once per connection; default 8
	CardPoll        time.Duration // how often a command waiting for a card asks the reader; default 250 ms
	WriteTimeout    time.Duration // a client that does not read for this long is disconnected; default 10 s
}

// Server serves the API. Create it with New, mount it at Path (it is an http.Handler) on a
// loopback listener, and stop it with Shutdown.
type Server struct {
	cfg    Config
	log    *slog.Logger
	up     websocket.Upgrader
	owners owners

	mu       sync.Mutex
	sessions map[*session]struct{}
	closing  bool
	wg       sync.WaitGroup // one per session
}

// New checks cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Devices == nil || cfg.Log == nil {
		return nil, errors.New("localapi: Config needs Devices and Log")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.MaxTimeout, 5*time.Minute)
	def(&cfg.CardPoll, 250*time.Millisecond)
	def(&cfg.WriteTimeout, 10*time.Second)
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = 16 << 20
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 8
	}
	var origins []string
	for _, o := range cfg.ShellOrigins {
		n := normalOrigin(o)
		if n == "" {
			return nil, fmt.Errorf("localapi: shell origin %q is not scheme://host:port", o)
		}
		origins = append(origins, n)
	}
	cfg.ShellOrigins = origins
	s := &Server{cfg: cfg, log: cfg.Log, sessions: map[*session]struct{}{}, owners: owners{held: map[string]*hold{}}}
	s.up = websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		CheckOrigin:      func(*http.Request) bool { return true }, // checked by ServeHTTP before upgrading
	}
	return s, nil
}

// ShellOrigins returns the origins for a shell served on addr (host:port of the agent's
// loopback listener): http://127.0.0.1:PORT, and http://localhost:PORT too.
func ShellOrigins(addr string) []string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	out := []string{"http://" + net.JoinHostPort(host, port)}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		out = append(out, "http://"+net.JoinHostPort("localhost", port))
	}
	return out
}

// appFor returns the manifest of the app served from origin (already normalised).
func (s *Server) appFor(origin string) (Manifest, bool) {
	for _, o := range s.cfg.ShellOrigins {
		if o == origin {
			return ShellManifest(s.cfg.ShellOrigins...), true
		}
	}
	if s.cfg.Apps == nil || origin == "" {
		return Manifest{}, false
	}
	return s.cfg.Apps.AppForOrigin(origin)
}

// ServeHTTP upgrades a request from an allowed origin to a session of the API and serves it
// until it ends. Others get a clear HTTP error.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if host, _, err := net.SplitHostPort(r.Host); err != nil || !loopbackName(host) {
		// A page on another name that resolves to 127.0.0.1 (DNS rebinding) is not the kiosk's.
		http.Error(w, fmt.Sprintf("localapi: host %q is not the kiosk's loopback address", r.Host), http.StatusForbidden)
		return
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		http.Error(w, "localapi: an Origin header is required: only the kiosk shell and registered kiosk apps (in the kiosk's browser) may use the kiosk's devices", http.StatusForbidden)
		return
	}
	app, ok := s.appFor(normalOrigin(origin))
	if !ok {
		s.log.Warn("localapi: connection from an origin that is not allowed refused", "origin", clipString(origin, 100))
		http.Error(w, fmt.Sprintf("localapi: origin %q may not use the kiosk's devices: only the kiosk shell and registered kiosk apps may", clipString(origin, 100)), http.StatusForbidden)
		return
	}
	s.mu.Lock()
	closing := s.closing
	if !closing {
		s.wg.Add(1)
	}
	s.mu.Unlock()
	if closing {
		http.Error(w, "localapi: the agent is stopping", http.StatusServiceUnavailable)
		return
	}
	defer s.wg.Done()
	conn, err := s.up.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade has answered with an HTTP error
	}
	conn.SetReadLimit(s.cfg.MaxMessageBytes)
	ss := newSession(s, conn, app)
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		ss.close(websocket.CloseGoingAway, "the agent is stopping")
		conn.Close()
		return
	}
	s.sessions[ss] = struct{}{}
	s.mu.Unlock()
	ss.run()
	s.mu.Lock()
	delete(s.sessions, ss)
	s.mu.Unlock()
}

// loopbackName reports whether host names this machine's loopback interface.
func loopbackName(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// EndSessions closes every connection (at the end of a citizen's session: the apps reconnect
// for the next citizen), canceling their commands and releasing their devices. It returns how
// many connections it closed.
func (s *Server) EndSessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ss := range s.sessions {
		ss.end(errSessionEnd, websocket.CloseNormalClosure, "the citizen's session ended")
	}
	return len(s.sessions)
}

// Shutdown refuses new connections, closes every connection (canceling their commands) and
// waits until they are done or ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for ss := range s.sessions {
		ss.end(errShutdown, websocket.CloseGoingAway, "the agent is stopping")
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("localapi: shutdown: %w", ctx.Err())
	}
}

func clipString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
