// Package link is the agent's side of the sync protocol: it keeps one MQTT 3.1.1 session over
// mutual TLS to the hub (reconnecting with jittered exponential backoff, failing over between the
// hub's addresses when it has several replicas), announces itself with a
// hello, uploads the outbox in batches with several in flight, deletes records only on the hub's
// cumulative ack, resends from the first unacked record when acks stall, and hands commands and
// desired state to the agent.
package link

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/kioskfleet/kioskfleet/pkg/tlsconn"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// Outbox is what the link needs of the agent's durable outbox.
type Outbox interface {
	Epoch() string
	NextSeq() uint64
	// Pending returns up to max records with seq > afterSeq in seq order.
	Pending(ctx context.Context, afterSeq uint64, max int) ([]wire.Record, error)
	// Ack deletes every record of epoch with seq <= upTo.
	Ack(ctx context.Context, epoch string, upTo uint64) error
	// Notify is signalled when records are appended.
	Notify() <-chan struct{}
}

// StableSession is how long a session must have been up for its loss to reset the reconnect
// backoff. Sessions that drop sooner (a hub that accepts and then cuts) keep the backoff growing.
const StableSession = 10 * time.Second

// Config configures a Link.
type Config struct {
	DeviceID string
	// Brokers are the host:port addresses of the hub's TLS MQTT listeners: every hub replica's,
	// or a load balancer's. The link tries them in an order of its own, shuffled anew for each
	// round, moving on to the next after each failed attempt or lost session, and backs off only
	// once it tried them all: a fleet spreads over the replicas, and the kiosks of a replica
	// that died spread over the others.
	Brokers []string

	TLS          *tls.Config // client certificate and the hub CA
	Outbox       Outbox
	AgentVersion string

	// StateVersion returns the desired-state version the agent runs (sent in hello).
	StateVersion func() int64
	// OnCommand and OnDesired receive downlink messages. They run on the link's dispatch
	// goroutine, one at a time, and should return quickly (persist, then act elsewhere).
	OnCommand func(ctx context.Context, c wire.Command)
	OnDesired func(ctx context.Context, d wire.Desired)

	// OnAck, if set, is called after the outbox applied an ack (for latency measurement).
	OnAck func(epoch string, upTo uint64)
	// OnEnd, if set, is called with the error that ended each session or connect attempt (for
	// simulators counting why sessions end).
	OnEnd func(err error)

	BatchRecords int // records per batch (default 200)
	// MaxInflight bounds the batches published and not yet acked (default 8). Only full
	// batches (BatchRecords records) go out while another is in flight: see upload.
	MaxInflight int
	AckTimeout  time.Duration // resend from the first unacked record when no ack progress (default 10 s)
	KeepAlive   time.Duration // MQTT keepalive (default 15 s)
	// DeadSession is how long a session may go without any ack from the hub while it waits for
	// one (its hello's, or a batch's), before the link ends it and reconnects (default 45 s).
	DeadSession time.Duration
	MinBackoff  time.Duration // default 500 ms
	MaxBackoff  time.Duration // default 60 s
	Log         *slog.Logger

	// Dial opens the TCP connection to Broker (TLS is still done here, with TLS): a seam for
	// simulators and tests that cut or refuse connections. Default: net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

func (c *Config) defaults() error {
	if c.BatchRecords <= 0 {
		c.BatchRecords = 200
	}
	c.BatchRecords = min(c.BatchRecords, wire.MaxBatchRecords)
	if c.MaxInflight <= 0 {
		c.MaxInflight = 8
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = 10 * time.Second
	}
	if c.DeadSession <= 0 {
		c.DeadSession = 45 * time.Second
	}
	if c.KeepAlive <= 0 {
		c.KeepAlive = 15 * time.Second
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = 500 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 60 * time.Second
	}
	if c.Dial == nil {
		c.Dial = (&net.Dialer{}).DialContext
	}
	if c.StateVersion == nil {
		c.StateVersion = func() int64 { return 0 }
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	var errs []error
	if !wire.ValidDeviceID(c.DeviceID) {
		errs = append(errs, fmt.Errorf("link: bad device id %q", c.DeviceID))
	}
	if len(c.Brokers) == 0 || slices.Contains(c.Brokers, "") {
		errs = append(errs, errors.New("link: broker address missing"))
	}
	if c.Outbox == nil {
		errs = append(errs, errors.New("link: outbox missing"))
	}
	return errors.Join(errs...)
}

// Link is one agent's sync session manager.
type Link struct {
	cfg       Config
	connected atomic.Bool
	broker    atomic.Value // string: the address of the current or last session
	sessions  atomic.Uint64
	acked     atomic.Uint64               // highest seq the hub acked in this process
	client    atomic.Pointer[mqtt.Client] // the session's, while one is up
}

// ErrNotConnected is returned by PublishLog without a session.
var ErrNotConnected = errors.New("link: not connected")

// PublishLog sends a log tail batch (wire.LogBatch) on the device's log topic at QoS 0: best
// effort, not through the outbox, lost if the session is. It waits at most a few seconds for
// the bytes to go out.
func (l *Link) PublishLog(payload []byte) error {
	c := l.client.Load()
	if c == nil {
		return ErrNotConnected
	}
	t := (*c).Publish(wire.Topic(l.cfg.DeviceID, wire.ChLog), 0, false, payload)
	if !t.WaitTimeout(5 * time.Second) {
		return errors.New("link: log batch not sent within 5s")
	}
	return t.Error()
}

// New validates cfg and returns a Link; start it with Run.
func New(cfg Config) (*Link, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	return &Link{cfg: cfg}, nil
}

// Connected reports whether a session is up.
func (l *Link) Connected() bool { return l.connected.Load() }

// Broker returns the address of the hub the current (or last) session is (was) with; "" before
// the first.
func (l *Link) Broker() string {
	b, _ := l.broker.Load().(string)
	return b
}

// Sessions returns how many sessions have been established.
func (l *Link) Sessions() uint64 { return l.sessions.Load() }

// Acked returns the highest sequence number the hub has acknowledged to this process.
func (l *Link) Acked() uint64 { return l.acked.Load() }

// Run keeps a session up until ctx is done.
func (l *Link) Run(ctx context.Context) error {
	backoff := l.cfg.MinBackoff
	order := slices.Clone(l.cfg.Brokers)
	rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	n := len(order)
	at, tried := 0, 0 // tried: attempts since every address was last tried, or a session held
	for ctx.Err() == nil {
		start, sessions := time.Now(), l.sessions.Load()
		err := l.session(ctx, order[at])
		if ctx.Err() != nil {
			return nil
		}
		if l.cfg.OnEnd != nil {
			l.cfg.OnEnd(err)
		}
		if l.sessions.Load() > sessions && time.Since(start) >= StableSession {
			// The last session came up and held: it was lost, not refused. Start over, so that
			// a kiosk on a flaky line is not kept off for minutes by drops it did not cause.
			backoff, tried = l.cfg.MinBackoff, 0
		}
		// The next address (another replica, if the hub has several) is tried after a short
		// wait; once every one was tried, after the backoff, which then grows.
		at, tried = at+1, tried+1
		if at == n {
			last := order[n-1]
			rand.Shuffle(n, func(i, j int) { order[i], order[j] = order[j], order[i] })
			if n > 1 && order[0] == last { // not the one that just failed, first
				order[0], order[n-1] = order[n-1], order[0]
			}
			at = 0
		}
		wait := l.cfg.MinBackoff
		if tried >= n {
			wait = backoff
		}
		// Full jitter (AWS architecture blog, "Exponential Backoff And Jitter"): spread a fleet's
		// reconnects after a hub restart instead of having them arrive in waves.
		wait = time.Duration(rand.Int64N(int64(wait))) + wait/2
		l.cfg.Log.Warn("hub session ended; reconnecting", "err", err, "to", order[at], "in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		if tried >= n {
			backoff, tried = l.nextBackoff(backoff, err), 0
		}
	}
	return nil
}

// errBusy marks a connect attempt the hub turned away for load, not for cause.
var errBusy = errors.New("hub busy")

// ErrDeaf ends a session that heard no ack from the hub for Config.DeadSession while it waited
// for one.
var ErrDeaf = errors.New("link: no ack from the hub")

// busy reports whether a failed connect was turned away for load: CONNACK 0x03, server
// unavailable (no authorization verdict in time, or the previous session not ended in time); the
// connection cut or reset before CONNACK (no TLS handshake slot); or no answer in time.
// Refusals for cause (a certificate or CONNACK 0x05) and a hub that is not listening are not.
func busy(err error) bool {
	var ne net.Error
	return errors.Is(err, packets.ErrorRefusedServerUnavailable) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// BusyBackoff is as far as connects turned away for load raise the backoff, in MinBackoffs. In
// a reconnect storm most connects are turned away at first (the hub admits handshakes a few
// hundred at a time, its store lags): doubling on each would leave a tail of kiosks waiting
// 15-45 s for a hub that has long caught up. Capped here, each kiosk retries every 1-3 s (with
// the default MinBackoff), and a refused connect costs the hub little: an accept, or a resumed
// handshake and one store lookup.
const BusyBackoff = 4

// nextBackoff is the backoff after a failed attempt: twice the last, up to MaxBackoff; or, when
// the hub was busy, up to BusyBackoff MinBackoffs (never lowered).
func (l *Link) nextBackoff(backoff time.Duration, err error) time.Duration {
	if errors.Is(err, errBusy) {
		return max(backoff, min(2*backoff, BusyBackoff*l.cfg.MinBackoff))
	}
	return min(2*backoff, l.cfg.MaxBackoff)
}

type downMsg struct {
	ch      wire.Channel
	payload []byte
}

// session runs one MQTT session with the broker at addr until it fails or ctx is done.
func (l *Link) session(ctx context.Context, addr string) error {
	lost := make(chan error, 1)
	down := make(chan downMsg, 256)
	acks := make(chan wire.AckMsg, 256)
	epoch := l.cfg.Outbox.Epoch()
	id := l.cfg.DeviceID

	opts := mqtt.NewClientOptions().
		AddBroker("tls://"+addr).
		SetClientID(id).
		SetTLSConfig(l.cfg.TLS).
		SetProtocolVersion(4). // MQTT 3.1.1
		SetCleanSession(true). // the hub's database, not the broker, holds what we have not confirmed
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetKeepAlive(l.cfg.KeepAlive).
		SetPingTimeout(l.cfg.KeepAlive).
		SetConnectTimeout(10*time.Second).
		SetWriteTimeout(10*time.Second).
		SetOrderMatters(false).
		SetBinaryWill(wire.Topic(id, wire.ChPresence), wire.Encode(wire.PresenceMsg{V: wire.Version, Online: false}), 1, true).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			select {
			case lost <- err:
			default:
			}
		})
	opts.SetCustomOpenConnectionFn(func(uri *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
		return l.dialTLS(ctx, uri.Host, o.ConnectTimeout)
	})
	c := mqtt.NewClient(opts)
	if err := wait(ctx, c.Connect(), 15*time.Second); err != nil {
		if busy(err) {
			err = fmt.Errorf("%w: %w", errBusy, err)
		}
		return fmt.Errorf("connect %s: %w", addr, err)
	}
	l.broker.Store(addr)
	defer c.Disconnect(250)
	defer l.connected.Store(false)

	handler := func(ch wire.Channel) mqtt.MessageHandler {
		return func(_ mqtt.Client, m mqtt.Message) {
			if ch == wire.ChAck {
				a, err := wire.DecodeAck(m.Payload())
				if err != nil {
					l.cfg.Log.Warn("ack rejected", "err", err)
					return
				}
				select {
				case acks <- a:
				default: // acks are cumulative: a dropped one is superseded by the next
				}
				return
			}
			select {
			case down <- downMsg{ch, m.Payload()}:
			case <-ctx.Done():
			}
		}
	}
	subHandlers := map[string]wire.Channel{}
	for _, ch := range wire.DownlinkChannels {
		subHandlers[wire.Topic(id, ch)] = ch
	}
	for t, ch := range subHandlers {
		if err := wait(ctx, c.Subscribe(t, 1, handler(ch)), 10*time.Second); err != nil {
			return fmt.Errorf("subscribe %s: %w", t, err)
		}
	}
	pres := wire.Encode(wire.PresenceMsg{V: wire.Version, Online: true, AgentVersion: l.cfg.AgentVersion})
	if err := wait(ctx, c.Publish(wire.Topic(id, wire.ChPresence), 1, true, pres), 10*time.Second); err != nil {
		return fmt.Errorf("presence: %w", err)
	}
	hello := wire.Encode(wire.Hello{V: wire.Version, Epoch: epoch, NextSeq: l.cfg.Outbox.NextSeq(),
		StateVersion: l.cfg.StateVersion(), AgentVersion: l.cfg.AgentVersion})
	if err := wait(ctx, c.Publish(wire.Topic(id, wire.ChHello), 1, false, hello), 10*time.Second); err != nil {
		return fmt.Errorf("hello: %w", err)
	}
	l.connected.Store(true)
	l.client.Store(&c)
	defer l.client.Store(nil)
	l.sessions.Add(1)
	l.cfg.Log.Info("hub session up", "broker", addr, "epoch", epoch)

	var wg sync.WaitGroup
	defer wg.Wait() // runs after cancel below
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Add(1)
	go func() { // dispatch downlink messages one at a time, off paho's goroutines
		defer wg.Done()
		for {
			select {
			case <-sctx.Done():
				return
			case m := <-down:
				l.dispatch(sctx, m)
			}
		}
	}()
	return l.upload(sctx, c, epoch, acks, lost)
}

// dialTLS opens a connection through cfg.Dial and completes the TLS handshake on it, as paho
// does for a tls:// broker with its own dialer. The connection never ends with a close_notify
// the hub cannot authenticate (paho closes it after a write that timed out): tlsconn.
func (l *Link) dialTLS(ctx context.Context, addr string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	raw, err := l.cfg.Dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	cfg := l.cfg.TLS.Clone()
	if cfg == nil {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" {
		if host, _, err := net.SplitHostPort(addr); err == nil {
			cfg.ServerName = host
		}
	}
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return tlsconn.New(tc), nil
}

func (l *Link) dispatch(ctx context.Context, m downMsg) {
	switch m.ch {
	case wire.ChCmd:
		cmd, err := wire.DecodeCommand(m.payload)
		if err != nil {
			l.cfg.Log.Warn("command rejected", "err", err)
			return
		}
		if l.cfg.OnCommand != nil {
			l.cfg.OnCommand(ctx, cmd)
		}
	case wire.ChDesired:
		d, err := wire.DecodeDesired(m.payload)
		if err != nil {
			l.cfg.Log.Warn("desired state rejected", "err", err)
			return
		}
		if l.cfg.OnDesired != nil {
			l.cfg.OnDesired(ctx, d)
		}
	}
}

// upload sends the outbox with up to MaxInflight unacked batches and applies acks.
//
// A batch that is not full goes out only when nothing is in flight; the records appended
// meanwhile wait for the ack and leave together (Nagle's rule, RFC 896 §2, with the hub's ack as
// the ACK). A kiosk trickling records (a fleet at 10 records/s each) otherwise sends each alone,
// and the hub pays its per-message costs (TLS record, MQTT packet, decode, a row of the group
// commit in a B-tree page of its own, an ack) once per record: 1,000 such kiosks saturated a
// 2-core hub at 10,000 messages/s, each keeping up to 8 single-record batches queued, and p99
// went from 160 ms to 1.9 s. With the rule a record waits at most one round trip more (the
// batch in flight's, never more than one), and only while the hub has one of the kiosk's
// batches: an idle kiosk's record (a heartbeat, a command result) leaves at once, and when the
// hub slows down the batches grow, so its messages per second fall as its round trip grows
// instead of its queue. A backlog (full batches) still has MaxInflight in flight.
func (l *Link) upload(ctx context.Context, c mqtt.Client, epoch string, acks <-chan wire.AckMsg, lost <-chan error) error {
	topic := wire.Topic(l.cfg.DeviceID, wire.ChUp)
	var (
		sent     uint64   // highest seq published in this session (0: start from the first pending)
		acked    uint64   // highest seq the hub acked in this session
		inflight []uint64 // last seq of each unacked batch, ascending
		progress = time.Now()
		// heard is when the link last heard an ack, or began to wait for one with nothing
		// outstanding: a kiosk that sends its next record minutes after the last ack waits from
		// the send, not from that ack (else a busy hub's first ack to come later than the next
		// tick would end a working session).
		heard    = time.Now()
		answered bool // an ack came in this session (the hello's, at least)
		resent   bool // a resend is under way: its batches wait since the last ack, not since sent
	)
	tick := time.NewTicker(l.cfg.AckTimeout / 4)
	defer tick.Stop()
	for {
		for len(inflight) < l.cfg.MaxInflight {
			from := max(sent, acked)
			if len(inflight) > 0 && l.cfg.Outbox.NextSeq() <= from+uint64(l.cfg.BatchRecords) {
				break // not a full batch waiting: it goes with the next ack (Nagle)
			}
			recs, err := l.cfg.Outbox.Pending(ctx, from, l.cfg.BatchRecords)
			if err != nil {
				return fmt.Errorf("read outbox: %w", err)
			}
			if len(recs) == 0 {
				break
			}
			recs = fit(recs, maxBatchBytes)
			if len(inflight) == 0 {
				progress = time.Now()
				if answered && !resent {
					heard = progress
				}
			}
			payload, err := wire.AppendBatch(nil, wire.Batch{V: wire.Version, Epoch: epoch, Records: recs})
			if err != nil {
				// The outbox validates bodies on append, so this is a corrupt outbox: stop the
				// session loudly rather than skip records.
				return fmt.Errorf("encode batch: %w", err)
			}
			// Do not wait for PUBACK: the hub's ack after its commit is what counts.
			c.Publish(topic, 1, false, payload)
			sent = recs[len(recs)-1].Seq
			inflight = append(inflight, sent)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-lost:
			return fmt.Errorf("connection lost: %w", err)
		case a := <-acks:
			heard, answered, resent = time.Now(), true, false
			if a.Epoch != epoch || a.UpTo <= acked {
				continue
			}
			if err := l.cfg.Outbox.Ack(ctx, epoch, a.UpTo); err != nil {
				l.cfg.Log.Warn("ack not applied", "upTo", a.UpTo, "err", err)
				continue
			}
			acked = a.UpTo
			if acked > l.acked.Load() {
				l.acked.Store(acked)
			}
			if l.cfg.OnAck != nil {
				l.cfg.OnAck(epoch, acked)
			}
			for len(inflight) > 0 && inflight[0] <= acked {
				inflight = inflight[1:]
			}
			progress = time.Now()
		case <-l.cfg.Outbox.Notify():
		case <-tick.C:
			// The hub answers every hello and every batch with an ack. A session that hears
			// none for a long while, though it has sent, is not working (seen once in a
			// reconnect storm: a session whose downlink subscriptions the broker had lost kept
			// its keep-alives going): end it, and the next session starts clean.
			if since := time.Since(heard); (len(inflight) > 0 || !answered) && since > l.cfg.DeadSession {
				return fmt.Errorf("%w for %s since the session started or last ack", ErrDeaf, since.Round(time.Second))
			}
			if len(inflight) > 0 && time.Since(progress) > l.cfg.AckTimeout {
				// A batch was lost (or the hub could not commit): the hub never acks over a gap,
				// so resend everything from the first unacked record.
				l.cfg.Log.Info("no ack progress; resending from first unacked", "acked", acked, "sent", sent)
				sent, inflight, progress, resent = 0, nil, time.Now(), true
			}
		}
	}
}

// maxBatchBytes keeps an encoded batch well under the broker's packet limit (wire.MaxPayloadBytes).
const maxBatchBytes = wire.MaxPayloadBytes * 3 / 4

// fit returns the longest prefix of recs (at least one record) whose encoding stays under limit.
func fit(recs []wire.Record, limit int) []wire.Record {
	n := 64
	for i, r := range recs {
		n += len(r.Body) + len(r.Kind) + 64 // seq, class, ts and punctuation
		if n > limit && i > 0 {
			return recs[:i]
		}
	}
	return recs
}

// wait waits for a paho token, bounded by d and ctx.
func wait(ctx context.Context, t mqtt.Token, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-t.Done():
		return t.Error()
	case <-timer.C:
		return errors.New("timed out")
	case <-ctx.Done():
		return ctx.Err()
	}
}
