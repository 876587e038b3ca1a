package broker

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/kioskfleet/kioskfleet/hub/ca"
	"github.com/kioskfleet/kioskfleet/hub/ca/catest"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// connEnv is a broker whose Authorize a test can hold or fail per certificate serial, and paho
// clients for it. (An internal test: it adds hooks to the embedded mochi server.)
type connEnv struct {
	ca *ca.CA
	b  *Broker

	mu   sync.Mutex
	hold map[string]chan struct{} // Authorize for this serial waits until the channel is closed
	fail map[string]error         // Authorize for this serial returns the error
	held chan string              // serials whose Authorize is waiting
}

func startConnEnv(t *testing.T, adjust ...func(*Config)) *connEnv {
	t.Helper()
	e := &connEnv{ca: catest.New(t), hold: map[string]chan struct{}{}, fail: map[string]error{}, held: make(chan string, 8)}
	srv, err := e.ca.ServerTLSCert([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Addr: "127.0.0.1:0", ClientCAs: e.ca.Pool(), Certificate: srv,
		Authorize: func(ctx context.Context, _, serial string) error {
			e.mu.Lock()
			ch, fail := e.hold[serial], e.fail[serial]
			e.mu.Unlock()
			if fail != nil {
				return fail
			}
			if ch != nil {
				e.held <- serial
				select {
				case <-ch:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		}}
	for _, f := range adjust {
		f(&cfg)
	}
	e.b, err = Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.b.Close() })
	return e
}

// client is a paho client of device id with its own certificate.
type client struct {
	paho.Client
	serial  string
	connect paho.Token // started by dial, not awaited
	acks    chan string
}

// dial starts connecting a client of device id; with hold, Authorize waits for release.
func (e *connEnv) dial(t *testing.T, id string, hold bool) *client {
	t.Helper()
	return e.dialWith(t, id, func(serial string) {
		if hold {
			e.hold[serial] = make(chan struct{})
		}
	})
}

// dialWith starts connecting a client of device id after setup (under e.mu) with its serial.
func (e *connEnv) dialWith(t *testing.T, id string, setup func(serial string)) *client {
	t.Helper()
	cert, iss := catest.DeviceCert(t, e.ca, id, time.Hour)
	c := &client{serial: iss.Serial, acks: make(chan string, 16)}
	e.mu.Lock()
	setup(iss.Serial)
	e.mu.Unlock()
	o := paho.NewClientOptions().AddBroker("ssl://" + e.b.Addr()).SetClientID(id).
		SetTLSConfig(catest.ClientConfig(e.ca, cert)).SetProtocolVersion(4).SetCleanSession(true).
		SetKeepAlive(30 * time.Second).SetAutoReconnect(false).SetConnectTimeout(10 * time.Second)
	c.Client = paho.NewClient(o)
	c.connect = c.Client.Connect()
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

func (e *connEnv) release(serial string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if ch := e.hold[serial]; ch != nil {
		close(ch)
		delete(e.hold, serial)
	}
}

// connected waits for c's CONNACK and subscribes it to its ack topic.
func connected(t *testing.T, c *client, id string) {
	t.Helper()
	if !c.connect.WaitTimeout(10*time.Second) || c.connect.Error() != nil {
		t.Fatalf("connect: %v", c.connect.Error())
	}
	tok := c.Subscribe(wire.Topic(id, wire.ChAck), 1, func(_ paho.Client, m paho.Message) { c.acks <- string(m.Payload()) })
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
}

// cut waits until the broker has closed c's connection.
func cut(t *testing.T, c *client, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for c.IsConnectionOpen() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: still connected", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// hears reports whether c receives an ack the hub publishes to device id now.
func (e *connEnv) hears(t *testing.T, c *client, id, ack string) bool {
	t.Helper()
	if err := e.b.Publish(wire.Topic(id, wire.ChAck), []byte(ack), false, 1); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case got := <-c.acks:
			if got == ack {
				return true
			}
		case <-time.After(3 * time.Second):
			return false
		}
	}
}

// gate holds the first goroutine that passes it once armed, until it is opened.
type gate struct {
	armed   atomic.Bool
	blocked chan struct{} // closed when a goroutine is held
	release chan struct{}
	once    sync.Once
}

func newGate(t *testing.T) *gate {
	g := &gate{blocked: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(g.open)
	return g
}

func (g *gate) pass() {
	if g.armed.CompareAndSwap(true, false) {
		close(g.blocked)
		<-g.release
	}
}

func (g *gate) open() { g.once.Do(func() { close(g.release) }) }

// encodeGate holds the DISCONNECT mochi encodes for the session it takes over, inside
// inheritClientSession: after looking the client ID up, before adding the new client under it.
type encodeGate struct {
	mqtt.HookBase
	*gate
}

func (g *encodeGate) ID() string           { return "test-encode-gate" }
func (g *encodeGate) Provides(b byte) bool { return b == mqtt.OnPacketEncode }
func (g *encodeGate) OnPacketEncode(_ *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type == packets.Disconnect {
		g.pass()
	}
	return pk
}

// cleanupGate holds mochi's end-of-session cleanup of a clean session: it runs in
// UnsubscribeClient, after the check that the session was not taken over and before the client
// ID is deleted from the clients map.
type cleanupGate struct {
	mqtt.HookBase
	*gate
}

func (g *cleanupGate) ID() string                                  { return "test-cleanup-gate" }
func (g *cleanupGate) Provides(b byte) bool                        { return b == mqtt.OnUnsubscribed }
func (g *cleanupGate) OnUnsubscribed(*mqtt.Client, packets.Packet) { g.pass() }

// TestTakeoverRaceLeavesNoDeafSession is mochi's takeover race, made to happen: device D has a
// session (X); two new CONNECTs of D (S, then L, the kiosk's live one) both look up D's client
// before either adds itself, so S, added last, overwrites L in mochi's clients map. L's
// subscriptions then resolve to S's connection: L, the session the kiosk uses, is deaf.
//
// With CONNECTs of one device serialized, L takes over from S and hears the hub.
func TestTakeoverRaceLeavesNoDeafSession(t *testing.T) {
	e := startConnEnv(t)
	gate := newGate(t)
	if err := e.b.srv.AddHook(&encodeGate{gate: gate}, nil); err != nil {
		t.Fatal(err)
	}
	const id = "kiosk-race"

	x := e.dial(t, id, false)
	connected(t, x, id)
	gate.armed.Store(true)
	s := e.dial(t, id, false)
	// S is either stopped inside mochi's takeover of X, or (CONNECTs serialized) took over from
	// X without it.
	select {
	case <-gate.blocked:
	case <-s.connect.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("S neither connected nor reached mochi's takeover")
	}
	l := e.dial(t, id, false)
	connected(t, l, id)
	gate.open()
	s.connect.WaitTimeout(10 * time.Second)
	if !e.hears(t, l, id, "ack-1") {
		t.Fatal("the device's newest session hears nothing from the hub: deaf")
	}
	cut(t, s, "S, taken over by L")
	cut(t, x, "X, taken over by S")
}

// TestStaleConnectRefused: a CONNECT still being authorized when a newer connection of the same
// device got its session (the kiosk gave up on it and connected again) is refused; it does not
// take the live session over.
func TestStaleConnectRefused(t *testing.T) {
	e := startConnEnv(t)
	const id = "kiosk-stale"
	s := e.dial(t, id, true)
	if got := <-e.held; got != s.serial {
		t.Fatalf("held %s", got)
	}
	l := e.dial(t, id, false)
	connected(t, l, id)
	e.release(s.serial)
	if !s.connect.WaitTimeout(10*time.Second) || s.connect.Error() == nil {
		t.Error("the stale CONNECT was accepted")
	}
	if !l.IsConnectionOpen() || !e.hears(t, l, id, "ack-1") {
		t.Fatal("the live session was disturbed by a stale CONNECT")
	}
}

// TestLateCleanupLeavesNoDeafSession: a session whose end lags (its goroutine held between
// mochi's taken-over check and its delete by client ID) must not delete the device's next
// session from mochi's clients map.
func TestLateCleanupLeavesNoDeafSession(t *testing.T) {
	e := startConnEnv(t)
	gate := newGate(t)
	if err := e.b.srv.AddHook(&cleanupGate{gate: gate}, nil); err != nil {
		t.Fatal(err)
	}
	const id = "kiosk-late"

	a := e.dial(t, id, false)
	connected(t, a, id)
	gate.armed.Store(true)
	a.Disconnect(0)
	<-gate.blocked
	b := e.dial(t, id, false)
	// B gets its session while A's cleanup is held, or (serialized) waits for A to be done.
	waiting := func() bool {
		e.b.mu.Lock()
		defer e.b.mu.Unlock()
		d := e.b.devices[id]
		return d != nil && d.wake != nil
	}
	for deadline := time.Now().Add(10 * time.Second); !b.connect.WaitTimeout(10*time.Millisecond) && !waiting(); {
		if time.Now().After(deadline) {
			t.Fatal("B neither connected nor waits for A")
		}
	}
	gate.open()
	connected(t, b, id)
	if !e.hears(t, b, id, "ack-1") {
		t.Fatal("the device's new session hears nothing from the hub: deaf")
	}
}
