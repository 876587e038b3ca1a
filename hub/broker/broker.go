// Package broker is the hub's embedded MQTT broker: mochi-mqtt v2.7.9 behind a TLS listener that
// requires a client certificate from the hub's CA, a framing guard that lets only well-formed
// MQTT 3.1.1 packets of bounded size reach mochi, a deny-by-default ACL (wire.Allowed, Wills
// included), presence callbacks, an in-process bus for the hub, and a loop that re-authorizes
// live sessions so a revoked device is cut even when another hub replica revoked it.
package broker

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/kioskfleet/kioskfleet/hub/ca"
	"github.com/kioskfleet/kioskfleet/hub/connlimit"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
	"github.com/kioskfleet/kioskfleet/pkg/logging"
	"github.com/kioskfleet/kioskfleet/pkg/tlsconn"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// Defaults for zero Config fields.
const (
	DefaultRecheckInterval  = 30 * time.Second
	DefaultConnectTimeout   = 10 * time.Second
	DefaultAuthorizeTimeout = 5 * time.Second
	DefaultWriteTimeout     = 10 * time.Second
	DefaultWritesPending    = 192
	DefaultSessionExpiry    = time.Hour
	// DefaultMaxPacketSize fits a PUBLISH of wire.MaxPayloadBytes with its topic and headers.
	DefaultMaxPacketSize = wire.MaxPayloadBytes + 1024
	// DefaultMaxConnectSize fits a kiosk's CONNECT, Will included: 95 bytes with a device ID as
	// the hub issues them, 188 with the longest one allowed (docs/protocol.md).
	DefaultMaxConnectSize = 512
	// DefaultPendingPerAddr and DefaultPending bound the connections not yet admitted to a
	// session: per client address (a service hall behind one NAT address reconnecting at once
	// fits), and in all (at ~40 KB each before CONNECT, 4096 hold at most ~160 MB).
	DefaultPendingPerAddr = 256
	DefaultPending        = 4096
)

var (
	// ErrConfig marks an unusable Config.
	ErrConfig = errors.New("broker: bad config")
	// ErrClosed is returned by the bus after Close.
	ErrClosed = errors.New("broker: closed")
	// ErrBadTopic marks a bus topic or filter that is not valid.
	ErrBadTopic = errors.New("broker: bad topic")
	// ErrRevoked is the stop cause of a session cut by Disconnect or the recheck loop.
	ErrRevoked = errors.New("broker: session revoked")
	// ErrUnavailable, wrapped by an Authorize error, says the check could not be made (the store
	// did not answer): no verdict on the device. Context errors say the same.
	ErrUnavailable = errors.New("broker: authorization unavailable")
)

// Config configures a Broker. ClientCAs, Certificate and Authorize are required.
type Config struct {
	Addr string // listen address, e.g. "127.0.0.1:0" or ":8883"
	// Listener, if set, is served instead of listening on Addr (the hub's, reading PROXY
	// protocol headers: hub/proxyproto); Close closes it.
	Listener    net.Listener
	ClientCAs   *x509.CertPool  // roots device certificates must chain to (ca.CA.Pool)
	Certificate tls.Certificate // the broker's server certificate (ca.CA.ServerTLSCert)
	Logger      *slog.Logger    // nil: discard
	// Authorize decides whether a device may hold a session with the certificate whose serial
	// (lowercase hex, ca.Serial) it presented: an error refuses (revoked device, superseded
	// certificate, or the check failed). It is called at CONNECT and every RecheckInterval for
	// every live session, with a context bounded by AuthorizeTimeout. At CONNECT, an error that
	// is no verdict (wrapping ErrUnavailable or a context error) gets the device CONNACK 0x03,
	// server unavailable, so that it retries soon; any other gets 0x05, not authorized.
	Authorize func(ctx context.Context, deviceID, certSerial string) error
	// Credentials, if set, lists every registered device's credential. The broker loads it every
	// RecheckInterval and soon after Disconnect, judges the live sessions by it instead of
	// calling Authorize for each (one bulk lookup keeps the loop cheap with tens of thousands of
	// kiosks connected), and refuses during the TLS handshake, before any MQTT byte and without
	// a lookup, the certificate of a device it lists as revoked or a certificate it saw replaced
	// (credentials.go). A returned error skips the round.
	Credentials func(ctx context.Context) ([]Credential, error)
	// SessionTicketSecret, if set, derives the TLS session-ticket keys (rotated daily, yesterday's
	// still accepted), so that agents resume their TLS sessions after a hub restart with a cheap
	// abbreviated handshake instead of a full one: it is what keeps a reconnect storm short. Keep it
	// secret and stable across restarts (the hub derives it from its identity secret).
	SessionTicketSecret []byte
	// MaxHandshakes bounds TLS handshakes in progress (default 256 per CPU). Connections beyond
	// it wait in line instead of all burning CPU at once and timing out together. A handshake
	// spends most of its time waiting for the kiosk's round trips, not computing, so the bound
	// is wide: with 8 per CPU a 19,000-kiosk reconnect storm took 50-72 s, with 256 per CPU 30 s.
	// As many again may wait in line, accepted; past that the broker stops accepting until one
	// gets a slot, and further kiosks wait in the kernel's listen queue (see listener.Accept).
	MaxHandshakes int
	// HandshakeCompute bounds the handshakes computing at once (default GOMAXPROCS): a handshake
	// holds one of these while it computes (key exchange, signature, certificate checks) and
	// gives it back while it waits for the kiosk's bytes or writes its own. In a reconnect storm
	// hundreds of handshakes in progress, all runnable at once, otherwise filled the Go
	// scheduler's queue: every other goroutine of the hub (the presence writer, the feed's live
	// viewers, each return from SQLite) waited behind them, and 100 console viewers saw their
	// notices 10 s late (p99). Bounded, the cores stay as busy with handshakes, and the rest of
	// the hub is served between them. Handshakes past their first flight get tokens first.
	HandshakeCompute int

	// OnSession, if set, is told when a device's session starts (online) and ends (offline,
	// with why: SessionChange), also on a clean disconnect without Will. Calls are serialized
	// across all devices, in the order the events happened: it must return quickly (hand off to
	// a queue). The online call comes after authentication and before the device receives
	// CONNACK; a device's end comes before its next session's start.
	OnSession func(SessionChange)
	// OnReject, if set, is told of every refusal the rejection counter counts (hub/security
	// keeps those for cause as security events). It is called on the refusing goroutine, by the
	// thousand a second in a flood: it must be quick and must not block.
	OnReject func(Rejection)

	RecheckInterval  time.Duration // default 30s
	ConnectTimeout   time.Duration // TLS handshake plus CONNECT; default 10s
	AuthorizeTimeout time.Duration // default 5s
	WriteTimeout     time.Duration // each write to a device (one that stops reading); default 10s
	MaxPacketSize    int           // bytes, fixed header included; default DefaultMaxPacketSize
	MaxConnectSize   int           // bytes of the CONNECT packet; default DefaultMaxConnectSize
	// Pending bounds the connections accepted and not yet admitted to a session (in the TLS
	// handshake or before it, before or in CONNECT, being authorized), per client address and
	// in all; one over a limit is closed at once. Zero fields: DefaultPendingPerAddr and
	// DefaultPending; negative: no limit. Besides, a device has at most one such connection past
	// its TLS handshake: a newer one closes it.
	Pending connlimit.Limits
	// MaxClientWritesPending bounds each client's outbound queue (mochi's default of 8192 costs
	// about 90 KB per idle client); default 192.
	MaxClientWritesPending int
	// Hold makes Start listen without accepting connections until Open is called: a hub
	// subscribes its handlers first, so that no device's message finds nobody to handle it.
	Hold bool
	// SessionExpiry is how long mochi keeps the state of a disconnected clean-session=false
	// client; default 1h. Downlink lives in the hub's database, not in broker sessions.
	SessionExpiry time.Duration
}

// Broker is a running broker. Its methods are safe for concurrent use.
type Broker struct {
	cfg    Config
	log    *slog.Logger
	srv    *mqtt.Server
	ln     net.Listener
	tlsCfg *tls.Config
	counts counters
	ends   [len(fleet.DisconnectReasons)]atomic.Uint64 // sessions ended, by reason

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	once   sync.Once
	done   chan struct{} // closed when the owner goroutine has ended
	opened chan struct{} // closed by Open: connections are accepted
	open   sync.Once

	mu       sync.Mutex
	sessions map[string]*session     // live sessions by device ID
	conns    map[*guardConn]struct{} // open connections, closed on shutdown
	devices  map[string]*device      // devices with a connection past CONNECT (takeover.go)
	waiting  map[string]*guardConn   // each device's connection past the handshake, not admitted (takeover.go)
	accepted uint64                  // connections accepted, for their accept order
	closed   bool
	pending  *connlimit.Counter // connections not yet admitted, by client address
	creds    credentials        // what Config.Credentials said last (credentials.go)
	reload   chan struct{}      // asks run to refresh now
	floodLog [len(reasons)]logging.Throttle
	presence sync.Mutex // serializes OnSession calls
	subID    atomic.Int64
	hs       chan struct{}  // handshake slots
	queue    chan struct{}  // accepted connections waiting for a handshake slot (listener.Accept)
	compute  *computeTokens // handshakes computing (computeConn)
}

type session struct {
	cl     *mqtt.Client
	serial string
	since  time.Time
}

// Start listens on cfg.Addr and serves until ctx is cancelled or Close is called.
func Start(ctx context.Context, cfg Config) (*Broker, error) {
	switch {
	case cfg.ClientCAs == nil:
		return nil, fmt.Errorf("%w: ClientCAs is required", ErrConfig)
	case len(cfg.Certificate.Certificate) == 0:
		return nil, fmt.Errorf("%w: Certificate is required", ErrConfig)
	case cfg.Authorize == nil:
		return nil, fmt.Errorf("%w: Authorize is required", ErrConfig)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.RecheckInterval, DefaultRecheckInterval)
	def(&cfg.ConnectTimeout, DefaultConnectTimeout)
	def(&cfg.AuthorizeTimeout, DefaultAuthorizeTimeout)
	def(&cfg.WriteTimeout, DefaultWriteTimeout)
	def(&cfg.SessionExpiry, DefaultSessionExpiry)
	if cfg.MaxPacketSize <= 0 {
		cfg.MaxPacketSize = DefaultMaxPacketSize
	}
	if cfg.MaxConnectSize <= 0 {
		cfg.MaxConnectSize = DefaultMaxConnectSize
	}
	cfg.MaxHandshakes = cmp.Or(cfg.MaxHandshakes, 256*runtime.GOMAXPROCS(0))
	cfg.HandshakeCompute = cmp.Or(cfg.HandshakeCompute, runtime.GOMAXPROCS(0))
	cfg.Pending.PerAddr = cmp.Or(cfg.Pending.PerAddr, DefaultPendingPerAddr)
	cfg.Pending.Total = cmp.Or(cfg.Pending.Total, DefaultPending)
	if cfg.MaxClientWritesPending <= 0 {
		cfg.MaxClientWritesPending = DefaultWritesPending
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}

	ln := cfg.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", cfg.Addr); err != nil {
			return nil, fmt.Errorf("broker: listen: %w", err)
		}
	}
	b := &Broker{
		cfg:      cfg,
		log:      cfg.Logger, // named by the caller (component=broker), as every part of the hub
		ln:       ln,
		done:     make(chan struct{}),
		opened:   make(chan struct{}),
		sessions: map[string]*session{},
		conns:    map[*guardConn]struct{}{},
		devices:  map[string]*device{},
		waiting:  map[string]*guardConn{},
		pending:  connlimit.New(cfg.Pending),
		reload:   make(chan struct{}, 1),
		hs:       make(chan struct{}, cfg.MaxHandshakes),
		queue:    make(chan struct{}, cfg.MaxHandshakes), // a line as long as the slots
		compute:  newComputeTokens(cfg.HandshakeCompute),
		tlsCfg: &tls.Config{
			Certificates: []tls.Certificate{cfg.Certificate},
			ClientAuth:   tls.RequireAndVerifyClientCert, // expiry, chain and clientAuth usage
			ClientCAs:    cfg.ClientCAs,
			MinVersion:   tls.VersionTLS12,
		},
	}
	if cfg.Credentials != nil {
		b.tlsCfg.VerifyConnection = b.verifyConnection
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.setTicketKeys(time.Now())

	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = uint32(cfg.MaxPacketSize) // second line behind the guard (issue 502)
	caps.MaximumClientWritesPending = int32(cfg.MaxClientWritesPending)
	caps.MaximumSessionExpiryInterval = uint32(min(cfg.SessionExpiry.Seconds(), math.MaxUint32))
	caps.MaximumQos = 1
	caps.MinimumProtocolVersion = protocolLevel
	caps.SharedSubAvailable = 0
	b.srv = mqtt.New(&mqtt.Options{
		Capabilities: caps,
		// The guard hands mochi whole packets and mochi reads each body straight into its own
		// buffer: its bufio.Reader only ever holds a fixed header, so 2 KiB per connection
		// (the default) would sit idle.
		ClientNetReadBufferSize: 64,
		InlineClient:            true,
		// mochi logs whole packets, payloads included, at Warn: keep only its errors.
		Logger:                 slog.New(minLevel{slog.LevelError, b.log.With("mochi", true).Handler()}),
		SysTopicResendInterval: 24 * 3600, // nobody may read $SYS; do not churn it every second
	})
	if err := b.srv.AddHook(&hook{b: b}, nil); err != nil {
		ln.Close()
		return nil, fmt.Errorf("broker: %w", err)
	}
	if err := b.srv.AddListener(mqttListener{listeners.NewNet("mqtts", &listener{Listener: ln, b: b}), b}); err != nil {
		ln.Close()
		return nil, fmt.Errorf("broker: %w", err)
	}
	if err := b.srv.Serve(); err != nil {
		ln.Close()
		return nil, fmt.Errorf("broker: %w", err)
	}
	if !cfg.Hold {
		b.Open()
	}
	go b.run(ctx)
	b.log.Info("mqtt broker listening", "addr", b.Addr(), "max_packet", cfg.MaxPacketSize, "recheck", cfg.RecheckInterval)
	return b, nil
}

// Open starts accepting connections, if Config.Hold kept them waiting (in the listen backlog).
func (b *Broker) Open() { b.open.Do(func() { close(b.opened) }) }

// Addr returns the bound listen address.
func (b *Broker) Addr() string { return b.ln.Addr().String() }

// Close stops accepting, ends every session and waits for the broker's goroutines. It is
// idempotent.
func (b *Broker) Close() error {
	b.shutdown()
	<-b.done
	return nil
}

func (b *Broker) shutdown() {
	b.once.Do(func() {
		b.cancel()
		b.mu.Lock()
		b.closed = true
		conns := make([]*guardConn, 0, len(b.conns))
		for c := range b.conns {
			conns = append(conns, c)
		}
		b.mu.Unlock()
		// Connections still in the handshake or before CONNECT are not mochi clients yet.
		for _, c := range conns {
			c.closeFor(fleet.DisconnectShutdown, ErrClosed)
		}
		b.srv.Close() // closes the listener and the clients, waits for their goroutines
	})
}

// run owns the recheck ticker; it ends at shutdown.
func (b *Broker) run(ctx context.Context) {
	defer close(b.done)
	t := time.NewTicker(b.cfg.RecheckInterval)
	defer t.Stop()
	if b.cfg.Credentials != nil {
		b.reloadSoon() // the handshake check needs a view from the start
	}
	for {
		select {
		case <-ctx.Done():
			b.shutdown()
			return
		case <-b.ctx.Done():
			return
		case <-b.reload:
			b.refresh()
		case now := <-t.C:
			b.refresh()
			b.setTicketKeys(now)
		}
	}
}

func (b *Broker) authorize(id, serial string) error {
	ctx, cancel := context.WithTimeout(b.ctx, b.cfg.AuthorizeTimeout)
	defer cancel()
	return b.cfg.Authorize(ctx, id, serial)
}

// Disconnect cuts deviceID's session now, if it has one (used on revocation), and has the
// credentials reloaded soon. The device's reconnection is then subject to Authorize, and its
// TLS handshake to the reloaded credentials.
func (b *Broker) Disconnect(deviceID string) {
	b.mu.Lock()
	s := b.sessions[deviceID]
	b.mu.Unlock()
	if s != nil {
		b.cut(deviceID, s.cl, "disconnected by the hub")
	}
	if b.cfg.Credentials != nil {
		b.reloadSoon()
	}
}

// reloadSoon has run refresh the credentials.
func (b *Broker) reloadSoon() {
	select {
	case b.reload <- struct{}{}:
	default: // a reload is already asked for
	}
}

func (b *Broker) cut(id string, cl *mqtt.Client, why string) {
	if cl.Closed() {
		return
	}
	b.reject(ReasonRevoked, why, "device", id)
	cl.Stop(ErrRevoked) // closes the connection; the session ends through OnDisconnect
}

// Live returns the IDs of the devices with a live session, in no order.
func (b *Broker) Live() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	ids := make([]string, 0, len(b.sessions))
	for id, s := range b.sessions {
		if !s.cl.Closed() {
			ids = append(ids, id)
		}
	}
	return ids
}

// Recheck has every live session re-authorized soon (the credentials reloaded first), as the
// recheck loop does every RecheckInterval, and the refused ones cut: a hub replica calls it when
// it may have missed the notice of a revocation made elsewhere.
func (b *Broker) Recheck() { b.reloadSoon() }

// Connected reports whether deviceID has a live session.
func (b *Broker) Connected(deviceID string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.sessions[deviceID]
	return s != nil && !s.cl.Closed()
}

// Publish publishes a message from the hub to every subscriber the ACL lets read topic (a
// device receives only its own downlink topics). qos is 0 or 1. It returns when the message is
// queued for every subscriber; a subscriber whose queue is full misses it (the sync protocol
// resends from the database on the next hello).
func (b *Broker) Publish(topic string, payload []byte, retain bool, qos byte) error {
	if b.ctx.Err() != nil {
		return ErrClosed
	}
	if qos > 1 {
		return fmt.Errorf("%w: qos %d, want 0 or 1", ErrBadTopic, qos)
	}
	if topic == "" || strings.ContainsAny(topic, "+#") {
		return fmt.Errorf("%w: %q is not a topic name", ErrBadTopic, topic)
	}
	return b.srv.Publish(topic, payload, retain, qos)
}

// Subscribe delivers every message published on a topic matching filter (MQTT wildcards allowed,
// e.g. wire.Filter(wire.ChUp)) to handler, with the publishing device's ID ("inline" for the
// hub's own Publish). Retained messages matching filter are delivered at once.
//
// handler runs synchronously on the publishing client's read goroutine (or the caller's, for the
// hub's own Publish): while it runs, that device's next packets wait, so it must be quick and hand
// slow work (database commits) to another goroutine. For QoS 1 the MQTT PUBACK has already been
// sent when handler runs: durability is promised by the protocol's own ack topic, not by PUBACK.
// Handlers of different devices run concurrently. payload must not be modified; it may be kept.
func (b *Broker) Subscribe(filter string, handler func(deviceID, topic string, payload []byte)) error {
	if b.ctx.Err() != nil {
		return ErrClosed
	}
	if handler == nil {
		return fmt.Errorf("%w: nil handler", ErrConfig)
	}
	if !mqtt.IsValidFilter(filter, false) || mqtt.IsSharedFilter(filter) {
		return fmt.Errorf("%w: %q is not a topic filter", ErrBadTopic, filter)
	}
	return b.srv.Subscribe(filter, int(b.subID.Add(1)), func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		handler(pk.Origin, pk.TopicName, pk.Payload)
	})
}

// reject counts a refusal and logs it. Only topics, IDs and reasons are logged, never payloads.
// The refusals anyone can cause at will by the thousand (floods) are logged at most once a
// second per reason.
func (b *Broker) reject(r Reason, detail string, attrs ...any) {
	i := b.counts.inc(r)
	if b.cfg.OnReject != nil {
		b.cfg.OnReject(Rejection{Reason: r, Detail: detail, DeviceID: attr(attrs, "device"), Remote: attr(attrs, "remote")})
	}
	attrs = append([]any{"reason", string(r), "detail", detail}, attrs...)
	if r.flood() && i >= 0 {
		b.floodLog[i].Log(context.Background(), b.log, slog.LevelWarn, "mqtt refused", attrs...)
		return
	}
	b.log.Warn("mqtt refused", attrs...)
}

// sessionStarted and sessionEnded keep the live-session map and report presence. A session that
// was taken over by a newer one of the same device ends silently.
func (b *Broker) sessionStarted(cl *mqtt.Client, serial string) {
	b.presence.Lock()
	defer b.presence.Unlock()
	now := time.Now()
	b.mu.Lock()
	b.sessions[cl.ID] = &session{cl: cl, serial: serial, since: now}
	b.mu.Unlock()
	if b.cfg.OnSession != nil {
		b.cfg.OnSession(SessionChange{DeviceID: cl.ID, Online: true, At: now})
	}
}

// sessionEnded is told the error that ended the session's read loop, if any (endReason), and
// returns why the session ended.
func (b *Broker) sessionEnded(cl *mqtt.Client, readErr error) fleet.DisconnectReason {
	gc, _ := cl.Net.Conn.(*guardConn)
	reason, cause := endReason(cl.StopCause(), gc.closedFor(), readErr)
	b.presence.Lock()
	defer b.presence.Unlock()
	b.mu.Lock()
	s := b.sessions[cl.ID]
	current := s != nil && s.cl == cl
	if current {
		delete(b.sessions, cl.ID)
	}
	b.mu.Unlock()
	if i := slices.Index(fleet.DisconnectReasons[:], reason); current && i >= 0 {
		b.ends[i].Add(1)
	}
	if current && b.cfg.OnSession != nil {
		c := SessionChange{DeviceID: cl.ID, At: time.Now(), Since: s.since, Reason: reason}
		if cause != nil {
			c.Detail = cause.Error()
		}
		b.cfg.OnSession(c)
	}
	return reason
}

// hook is the broker's mochi hook: authentication at CONNECT, the ACL, and session tracking.
type hook struct {
	mqtt.HookBase
	b *Broker
}

func (h *hook) ID() string { return "kioskfleet" }

func (h *hook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnSessionEstablish, mqtt.OnDisconnect,
		mqtt.OnPublish, mqtt.OnWill:
		return true
	}
	return false
}

// OnConnectAuthenticate admits a client whose client ID is the device ID of its verified
// certificate, whose Will (if any) stays in its own uplink topics (mochi publishes Wills without
// an ACL check, upstream issue 503), and whom Authorize accepts. A refusal gets CONNACK 0x05.
func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	gc, ok := cl.Net.Conn.(*guardConn)
	if !ok {
		return false
	}
	id, remote := gc.deviceID, cl.Net.Remote
	switch {
	case pk.Connect.ClientIdentifier != id:
		h.b.reject(ReasonConnectRefused, fmt.Sprintf("client id %q is not the certificate's device", pk.Connect.ClientIdentifier), "device", id, "remote", remote)
		return false
	case pk.Connect.WillFlag && !wire.Allowed(id, pk.Connect.WillTopic, true):
		h.b.reject(ReasonACLDenied, "will topic not allowed", "device", id, "topic", pk.Connect.WillTopic, "remote", remote)
		return false
	}
	h.b.connecting(gc)
	err := h.b.authorize(id, gc.serial)
	switch {
	case errors.Is(err, ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		h.b.reject(ReasonUnavailable, fmt.Sprintf("authorize: %v", err), "device", id, "serial", gc.serial, "remote", remote)
		gc.refuseUnavailable()
		return false
	case err != nil:
		h.b.reject(ReasonConnectRefused, fmt.Sprintf("authorize: %v", err), "device", id, "serial", gc.serial, "remote", remote)
		return false
	}
	switch err := h.b.claim(gc); {
	case errors.Is(err, errReplaced):
		return false // closed, and counted, by the connection that replaced it
	case err != nil:
		h.b.reject(ReasonUnavailable, err.Error(), "device", id, "remote", remote)
		gc.refuseUnavailable()
		return false
	}
	h.b.admitted(gc)
	return true
}

// OnACLCheck is the deny-by-default ACL: a device writes only its own uplink topics and reads
// only its own downlink topics, by exact name (wire.Allowed). It is consulted for PUBLISH,
// SUBSCRIBE filters and every delivery.
func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if cl.Net.Inline {
		return true
	}
	if wire.Allowed(cl.ID, topic, write) {
		return true
	}
	if !write {
		h.b.reject(ReasonACLDenied, "subscribe not allowed", "device", cl.ID, "topic", topic)
		return false
	}
	// A refused PUBLISH cannot be reported to an MQTT 3.1.1 client: the server acknowledges it
	// or closes the connection [MQTT-3.3.5-2]. mochi drops a QoS 0 one silently; cutting every
	// such publisher instead keeps a misbehaving device from flooding the log.
	h.b.reject(ReasonACLDenied, "publish not allowed; connection closed", "device", cl.ID, "topic", topic)
	cl.Stop(violation(ReasonACLDenied, "publish to %q not allowed", topic))
	return false
}

// OnPublish and OnWill drop the retain flag of what devices publish: the embedded broker keeps
// no retained messages. Their one use in the sync protocol, presence, is kept by the hub in its
// database (it subscribes before any device connects, and no device may read another's
// presence), while a retained copy per device would cost memory and, every second, a copy of all
// of them in mochi's expiry loop. A standard external broker keeps them as usual.
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if !cl.Net.Inline {
		pk.FixedHeader.Retain = false
	}
	return pk, nil
}

func (h *hook) OnWill(_ *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	will.Retain = false
	return will, nil
}

// OnSessionEstablish runs after authentication and before CONNACK, so a device is Connected by
// the time it learns it is.
func (h *hook) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) {
	gc, _ := cl.Net.Conn.(*guardConn)
	if gc == nil {
		return
	}
	h.b.sessionStarted(cl, gc.serial)
	h.b.log.Info("mqtt session started", "device", cl.ID, "remote", cl.Net.Remote)
}

func (h *hook) OnDisconnect(cl *mqtt.Client, err error, _ bool) {
	reason := h.b.sessionEnded(cl, err)
	h.b.log.Info("mqtt session ended", "device", cl.ID, "remote", cl.Net.Remote, "reason", reason, "cause", errors.Join(err, cl.StopCause()))
}

// listener hands mochi TLS connections wrapped in the framing guard. The handshake happens on
// the connection's first read, in mochi's per-connection goroutine, not in the accept loop.
type listener struct {
	net.Listener
	b *Broker
}

func (l *listener) Accept() (net.Conn, error) {
	select {
	case <-l.b.opened:
	case <-l.b.ctx.Done():
		return nil, net.ErrClosed
	}
	for {
		// A place in line first. When a handshake slot's worth of connections already wait for
		// one, the broker stops accepting: further kiosks wait in the kernel's listen queue and,
		// once it is full, their SYNs go unanswered and their kernels retry. Either way they
		// cost nothing meanwhile, where accepting and then refusing them (pending limit, no slot
		// in time) cost each a dial and a ClientHello -- a post-quantum key pair -- per attempt,
		// and its next attempt 1-3 s later the same again: in a 19,000-kiosk storm on one
		// machine, ~100,000 such attempts used more CPU than the handshakes that succeeded.
		select {
		case l.b.queue <- struct{}{}:
		case <-l.b.ctx.Done():
			return nil, net.ErrClosed
		}
		c, err := l.Listener.Accept()
		if err != nil {
			<-l.b.queue
			if l.b.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil, err
			}
			// mochi stops serving on any Accept error; ride out transient ones (EMFILE).
			l.b.log.Error("mqtt accept", "error", err)
			select {
			case <-time.After(100 * time.Millisecond):
				continue
			case <-l.b.ctx.Done():
				return nil, err
			}
		}
		// A slot until admitted, or closed at once: to the device, a hub turning it away for load.
		release, err := l.b.pending.Acquire(c.RemoteAddr())
		if err != nil {
			r := ReasonPendingLimit
			if errors.Is(err, connlimit.ErrPerAddr) {
				r = ReasonAddrLimit
			}
			l.b.reject(r, err.Error(), "remote", c.RemoteAddr().String())
			c.Close()
			<-l.b.queue
			continue
		}
		cc := &computeConn{Conn: c, tokens: l.b.compute, stop: l.b.ctx.Done()}
		gc := &guardConn{Conn: tlsconn.New(tls.Server(cc, l.b.tlsCfg)), b: l.b, unpend: release, compute: cc}
		gc.queued.Store(true)
		gc.g = guard{r: gc.Conn, max: l.b.cfg.MaxPacketSize, maxConnect: l.b.cfg.MaxConnectSize}
		l.b.mu.Lock()
		closed := l.b.closed
		if !closed {
			l.b.conns[gc] = struct{}{}
			l.b.accepted++
			gc.seq = l.b.accepted
		}
		l.b.mu.Unlock()
		if closed {
			release()
			gc.leaveQueue()
			c.Close()
			return nil, net.ErrClosed
		}
		return gc, nil
	}
}

// guardConn is a client connection as mochi sees it: the TLS connection, read through a guard.
// It never closes with a close_notify after a failed write (tlsconn), and mochi's keep-alive
// deadline bounds its reads only (SetDeadline).
type guardConn struct {
	*tlsconn.Conn
	b        *Broker
	g        guard
	ready    bool   // handshake done
	deviceID string // from the verified certificate
	serial   string
	seq      uint64       // accept order
	counted  bool         // in b.devices (takeover.go), under b.mu
	unpend   func()       // gives back the connection's slot in b.pending, once admitted or closed
	compute  *computeConn // the TCP connection under TLS, holding a compute token while its handshake computes
	queued   atomic.Bool  // holds a place in b.queue: accepted, not yet given a handshake slot
	closed   atomic.Bool
	cause    atomic.Pointer[closeCause] // why the broker closed it, if it did (closeFor)
}

func (c *guardConn) Read(p []byte) (int, error) {
	if !c.ready {
		if err := c.handshake(); err != nil {
			c.Close()
			return 0, err
		}
		c.ready = true
	}
	n, err := c.g.Read(p)
	if err != nil {
		var v *Violation
		switch {
		case errors.As(err, &v):
			c.b.reject(v.Reason, v.Detail, "device", c.deviceID, "remote", c.RemoteAddr().String())
			if v.Reason == ReasonProtocolVersion {
				c.Write(connackBadVersion) // [MQTT-3.1.2-2]
			}
			c.closeFor(fleet.DisconnectProtocol, v)
		case !c.g.connected && errors.Is(err, os.ErrDeadlineExceeded):
			c.b.reject(ReasonConnectTimeout, "no CONNECT within the connect timeout", "device", c.deviceID, "remote", c.RemoteAddr().String())
			c.Close()
		}
	}
	return n, err
}

// SetDeadline is how mochi applies the keep-alive: each time it starts reading a packet it sets
// a deadline 1.5 keep-alives away [MQTT-3.1.2-24], on reads and writes alike. Only reads take it.
// A device's read goroutine also runs the hub's bus handlers, and ingest holds it while the
// committer is behind: the deadline then passes with the device in good health, and a write
// after it (the ack the hub owes that device) would fail, the connection's write side broken
// for good while its reads go on: a deaf session, ended at the next PINGRESP. Each write has
// its own deadline instead (Write).
func (c *guardConn) SetDeadline(t time.Time) error { return c.Conn.SetReadDeadline(t) }

// Write writes to the device within the write timeout (mochi serializes a client's writes). A
// failed write ends the connection at once: its write side is broken for good, and mochi drops
// the errors of queued writes, so the session would stay up deaf until a write on the read
// goroutine (a PINGRESP) failed too.
func (c *guardConn) Write(p []byte) (int, error) {
	c.Conn.SetWriteDeadline(time.Now().Add(c.b.cfg.WriteTimeout))
	n, err := c.Conn.Write(p)
	if err != nil {
		c.closeFor(fleet.DisconnectNetwork, fmt.Errorf("write: %w", err))
	}
	return n, err
}

// handshake completes TLS (certificate verified against ClientCAs) and reads the device ID. The
// connect deadline stays set until mochi replaces it with the keep-alive deadline after CONNECT.
func (c *guardConn) handshake() error {
	c.Conn.SetDeadline(time.Now().Add(c.b.cfg.ConnectTimeout))
	// A slot, or give up before doing any work. Waiting for one takes at most half the connect
	// timeout, so that the handshake and CONNECT have the other half: a kiosk gives up after its
	// own connect timeout, and a slot spent on a connection it gave up on is lost to the others.
	wait := time.NewTimer(c.b.cfg.ConnectTimeout / 2)
	select {
	case c.b.hs <- struct{}{}:
		wait.Stop()
		c.leaveQueue()
	case <-wait.C:
		c.b.reject(ReasonUnavailable, "no handshake slot within half the connect timeout (overloaded)", "remote", c.RemoteAddr().String())
		return errors.New("broker: handshake queue timeout")
	case <-c.b.ctx.Done():
		wait.Stop()
		return c.b.ctx.Err()
	}
	// Bounded by the connect deadline, and ended at shutdown by closing the connection (every
	// accepted one is in b.conns). Not by b.ctx: each HandshakeContext registers with its parent
	// context and takes that one mutex, shared by every handshake in progress; in a storm's mutex
	// profile a quarter of all contention (420 of 1,782 s) was there.
	err := c.Handshake()
	c.compute.handshaken()
	<-c.b.hs
	if err != nil {
		var v *Violation
		switch {
		case c.b.ctx.Err() != nil:
		case errors.As(err, &v): // verifyConnection
			c.b.reject(v.Reason, v.Detail, "remote", c.RemoteAddr().String())
		case errors.Is(err, os.ErrDeadlineExceeded):
			c.b.reject(ReasonConnectTimeout, "TLS handshake not done within the connect timeout", "remote", c.RemoteAddr().String())
		default:
			c.b.reject(ReasonTLS, err.Error(), "remote", c.RemoteAddr().String())
		}
		return err
	}
	certs := c.ConnectionState().PeerCertificates
	id, err := ca.DeviceIDFromCert(certs[0])
	if err != nil {
		c.b.reject(ReasonTLS, err.Error(), "remote", c.RemoteAddr().String())
		return err
	}
	c.deviceID, c.serial = id, ca.Serial(certs[0])
	c.b.handshaken(c)
	return nil
}

// leaveQueue gives back the connection's place in line (b.queue), once: when it gets a handshake
// slot or is closed before.
func (c *guardConn) leaveQueue() {
	if c.queued.CompareAndSwap(true, false) {
		<-c.b.queue
	}
}

// refuseUnavailable answers a CONNECT with CONNACK 0x03, server unavailable, and closes the
// connection [MQTT-3.2.2-5]; mochi's own CONNACK (0x05) after the hook then finds it closed.
func (c *guardConn) refuseUnavailable() {
	c.Write(connackUnavailable)
	c.Close()
}

func (c *guardConn) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return nil
	}
	c.leaveQueue()
	c.b.admitted(c) // or closed: it is no longer waiting
	c.b.mu.Lock()
	delete(c.b.conns, c)
	c.b.mu.Unlock()
	return c.Conn.Close()
}

// minLevel drops records below a level.
type minLevel struct {
	min slog.Level
	slog.Handler
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(a []slog.Attr) slog.Handler {
	return minLevel{h.min, h.Handler.WithAttrs(a)}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.min, h.Handler.WithGroup(name)}
}

// setTicketKeys installs the session-ticket keys for the UTC day of now and the day before
// (RFC 8446 §4.6.1 tickets; Go encrypts them with these keys). Without a secret Go's own random,
// per-process keys are used.
func (b *Broker) setTicketKeys(now time.Time) {
	if len(b.cfg.SessionTicketSecret) == 0 {
		return
	}
	key := func(day time.Time) [32]byte {
		m := hmac.New(sha256.New, b.cfg.SessionTicketSecret)
		m.Write([]byte("kioskfleet mqtt session ticket " + day.UTC().Format("2006-01-02")))
		var k [32]byte
		copy(k[:], m.Sum(nil))
		return k
	}
	b.tlsCfg.SetSessionTicketKeys([][32]byte{key(now), key(now.Add(-24 * time.Hour))})
}
