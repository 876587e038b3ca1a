package broker_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/kioskfleet/kioskfleet/hub/broker"
	"github.com/kioskfleet/kioskfleet/hub/broker/brokertest"
	"github.com/kioskfleet/kioskfleet/hub/ca/catest"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// --- raw MQTT encoding for defect packets ---

func varint(n int) []byte {
	var b []byte
	for {
		c := byte(n % 128)
		n /= 128
		if n > 0 {
			c |= 0x80
		}
		b = append(b, c)
		if n == 0 {
			return b
		}
	}
}

func str(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }

func packet(first byte, body ...[]byte) []byte {
	b := bytes.Join(body, nil)
	return append(append([]byte{first}, varint(len(b))...), b...)
}

// connect is a CONNECT for protocol level (4: MQTT 3.1.1, 5: MQTT 5 with empty properties).
func connect(level byte, clientID string) []byte {
	vh := append(str("MQTT"), level, 0x02, 0, 30) // clean session, keep alive 30 s
	if level == 5 {
		vh = append(vh, 0) // properties length
	}
	return packet(0x10, vh, str(clientID))
}

func publish(topic string, qos byte, id uint16, payload []byte) []byte {
	var pid []byte
	if qos > 0 {
		pid = []byte{byte(id >> 8), byte(id)}
	}
	return packet(0x30|qos<<1, str(topic), pid, payload)
}

// rawDial opens a TLS connection to the broker with cfg, sends CONNECT for id (MQTT 3.1.1) and
// checks the CONNACK accepts it.
func rawDial(t testing.TB, env *brokertest.Env, cfg *tls.Config, id string) *tls.Conn {
	t.Helper()
	return rawDialWith(t, env, cfg, connect(4, id))
}

// rawDialWith opens a TLS connection to the broker with cfg, sends the CONNECT packet pk and
// checks the CONNACK accepts it.
func rawDialWith(t testing.TB, env *brokertest.Env, cfg *tls.Config, pk []byte) *tls.Conn {
	t.Helper()
	c, err := tls.Dial("tcp", env.Broker.Addr(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write(pk); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 4)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, ack); err != nil || !bytes.Equal(ack, []byte{0x20, 2, 0, 0}) {
		t.Fatalf("CONNACK %x, %v", ack, err)
	}
	c.SetReadDeadline(time.Time{})
	return c
}

// closedWithin reads until the broker closes c, which must happen within d.
func closedWithin(t *testing.T, c net.Conn, d time.Duration) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	got, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v", d)
	}
	return got
}

type msg struct{ dev, topic, payload string }

// collector is an inline bus subscriber.
type collector struct {
	mu   sync.Mutex
	msgs []msg
}

func (c *collector) handle(dev, topic string, payload []byte) {
	c.mu.Lock()
	c.msgs = append(c.msgs, msg{dev, topic, string(payload)})
	c.mu.Unlock()
}

func (c *collector) count(f func(msg) bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, m := range c.msgs {
		if f(m) {
			n++
		}
	}
	return n
}

func TestAllowedTraffic(t *testing.T) {
	type ev struct {
		id     string
		online bool
	}
	var mu sync.Mutex
	var evs []ev
	env := brokertest.Start(t, brokertest.Options{OnSession: func(c broker.SessionChange) {
		mu.Lock()
		evs = append(evs, ev{c.DeviceID, c.Online})
		mu.Unlock()
	}})
	var up collector
	if err := env.Broker.Subscribe(wire.Filter(wire.ChUp), up.handle); err != nil {
		t.Fatal(err)
	}

	const a = "kiosk-a"
	acks := make(chan string, 10)
	cl := env.MustConnect(t, a)
	if !env.Broker.Connected(a) {
		t.Fatal("Connected(a) = false after connect")
	}
	if err := brokertest.Wait(cl.Subscribe(wire.Topic(a, wire.ChAck), 1, func(_ paho.Client, m paho.Message) {
		acks <- m.Topic() + " " + string(m.Payload())
	})); err != nil {
		t.Fatal(err)
	}
	if err := brokertest.Wait(cl.Publish(wire.Topic(a, wire.ChUp), 1, false, "batch-1")); err != nil {
		t.Fatal(err)
	}
	brokertest.Eventually(t, 5*time.Second, "inline subscriber sees the batch", func() bool {
		return up.count(func(m msg) bool { return m == msg{a, wire.Topic(a, wire.ChUp), "batch-1"} }) == 1
	})

	if err := env.Broker.Publish(wire.Topic(a, wire.ChAck), []byte("ack-1"), false, 1); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-acks:
		if got != wire.Topic(a, wire.ChAck)+" ack-1" {
			t.Fatalf("got %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("device did not receive the hub's ack")
	}

	cl.Disconnect(100) // clean DISCONNECT, no Will: presence must still say offline
	brokertest.Eventually(t, 5*time.Second, "offline after clean disconnect", func() bool { return !env.Broker.Connected(a) })
	mu.Lock()
	defer mu.Unlock()
	if len(evs) != 2 || evs[0] != (ev{a, true}) || evs[1] != (ev{a, false}) {
		t.Fatalf("session events %v, want online then offline", evs)
	}
}

func TestBusRefusesBadInput(t *testing.T) {
	env := brokertest.Start(t, brokertest.Options{})
	for _, tc := range []struct {
		topic string
		qos   byte
	}{{"", 0}, {"kf/v1/dev/+/ack", 0}, {"kf/#", 1}, {wire.Topic("kiosk-a", wire.ChAck), 2}} {
		if err := env.Broker.Publish(tc.topic, nil, false, tc.qos); !errors.Is(err, broker.ErrBadTopic) {
			t.Errorf("Publish(%q, qos %d) = %v", tc.topic, tc.qos, err)
		}
	}
	for _, f := range []string{"", "a/#/b", "$share/g/kf/#"} {
		if err := env.Broker.Subscribe(f, func(string, string, []byte) {}); !errors.Is(err, broker.ErrBadTopic) {
			t.Errorf("Subscribe(%q) = %v", f, err)
		}
	}
}

func TestIsolation(t *testing.T) {
	env := brokertest.Start(t, brokertest.Options{})
	const a, b = "kiosk-a", "kiosk-b"
	var up, presence collector
	env.Broker.Subscribe(wire.Filter(wire.ChUp), up.handle)

	// B listens on its own downlink topics while the hub keeps publishing to them.
	var bGot atomic.Int64
	bc := env.MustConnect(t, b)
	for _, ch := range wire.DownlinkChannels {
		if err := brokertest.Wait(bc.Subscribe(wire.Topic(b, ch), 1, func(paho.Client, paho.Message) { bGot.Add(1) })); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	var sent atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			for _, ch := range wire.DownlinkChannels {
				env.Broker.Publish(wire.Topic(b, ch), []byte(fmt.Sprint("secret-", i)), i%2 == 0, 1)
				sent.Add(1)
			}
		}
	}()

	var aGot atomic.Int64
	onA := func(paho.Client, paho.Message) { aGot.Add(1) }
	aOpts := func(o *paho.ClientOptions) { o.SetDefaultPublishHandler(onA) }
	ac := env.MustConnect(t, a, aOpts)
	before := env.Broker.Stats()[broker.ReasonACLDenied]
	filters := []string{"#", "+/#", "kf/v1/dev/+/ack", "kf/v1/dev/" + b + "/#", wire.Topic(b, wire.ChAck), wire.Topic(b, wire.ChLog),
		"$share/g/kf/v1/dev/" + b + "/ack", "$SYS/#"}
	for _, f := range filters {
		tok := ac.Subscribe(f, 1, onA)
		if err := brokertest.Wait(tok); err != nil {
			t.Fatalf("subscribe %q: %v", f, err)
		}
		res := tok.(*paho.SubscribeToken).Result() // one entry, keyed without a $share prefix
		for _, code := range res {
			if code != 0x80 {
				t.Errorf("subscribe %q: SUBACK %#x, want 0x80 failure", f, code)
			}
		}
		if len(res) != 1 {
			t.Errorf("subscribe %q: SUBACK results %v", f, res)
		}
	}
	if n := env.Broker.Stats()[broker.ReasonACLDenied] - before; n < uint64(len(filters)-1) { // $share is refused by mochi before the ACL
		t.Errorf("acl_denied grew by %d for %d refused filters", n, len(filters))
	}

	// Publishing into B's subtree, plain, retained or QoS 1, costs the publisher its session.
	for _, p := range []struct {
		topic  string
		qos    byte
		retain bool
	}{{wire.Topic(b, wire.ChUp), 0, false}, {wire.Topic(b, wire.ChPresence), 0, true}, {wire.Topic(b, wire.ChAck), 0, false},
		{wire.Topic(b, wire.ChUp), 1, false}, {wire.Topic(b, wire.ChPresence), 1, true}, {wire.Topic(b, wire.ChLog), 0, false}} {
		ac := env.MustConnect(t, a, aOpts)
		ac.Publish(p.topic, p.qos, p.retain, "spoof").WaitTimeout(2 * time.Second)
		brokertest.Eventually(t, 5*time.Second, "A cut after publishing to "+p.topic, func() bool { return !ac.IsConnectionOpen() })
	}

	// Will into B's subtree, B's client ID: refused at CONNECT.
	o := env.ClientOptions(a, env.DeviceTLS(t, a)).SetWill(wire.Topic(b, wire.ChPresence), "offline", 1, true)
	if _, err := brokertest.Connect(t, o); err == nil {
		t.Error("connect with a Will into B's subtree was accepted")
	}
	if _, err := brokertest.Connect(t, env.ClientOptions(b, env.DeviceTLS(t, a))); err == nil {
		t.Error("A's certificate connected with B's client ID")
	}
	if !env.Broker.Connected(b) {
		t.Fatal("B's session was disturbed")
	}

	// Certificates: revoked, expired, foreign CA, none.
	env.Authz.Revoke("kiosk-c")
	expired := catest.ExpiredDeviceCert(t, env.CA, a)
	foreign, _ := catest.DeviceCert(t, catest.ForeignCA(t), a, time.Hour)
	for name, tc := range map[string]*tls.Config{
		"revoked": env.DeviceTLS(t, "kiosk-c"),
		"expired": catest.ClientConfig(env.CA, expired),
		"foreign": catest.ClientConfig(env.CA, foreign),
		"none":    catest.ClientConfig(env.CA, tls.Certificate{}),
	} {
		id := a
		if name == "revoked" {
			id = "kiosk-c"
		}
		if _, err := brokertest.Connect(t, env.ClientOptions(id, tc)); err == nil {
			t.Errorf("%s certificate: connected", name)
		}
	}

	close(stop)
	wg.Wait()
	brokertest.Eventually(t, 5*time.Second, "B receives everything", func() bool { return bGot.Load() == sent.Load() })
	if n := aGot.Load(); n != 0 {
		t.Fatalf("A received %d messages", n)
	}
	if n := up.count(func(m msg) bool { return m.dev == a }); n != 0 {
		t.Fatalf("the hub saw %d uplink messages from A into B's subtree", n)
	}
	env.Broker.Subscribe(wire.Topic(b, wire.ChPresence), presence.handle) // delivers retained at once
	if n := presence.count(func(msg) bool { return true }); n != 0 {
		t.Fatalf("A's retained spoof is stored on B's presence topic")
	}
	// A TLS 1.3 client learns of its refused certificate before the broker counts it: poll.
	var st map[broker.Reason]uint64
	brokertest.Eventually(t, 5*time.Second, "refusals counted", func() bool {
		st = env.Broker.Stats()
		return st[broker.ReasonTLS] >= 3 && st[broker.ReasonConnectRefused] >= 2 && st[broker.ReasonACLDenied] >= uint64(len(filters)+6)
	})
	t.Logf("B received %d of %d; counters %v", bGot.Load(), sent.Load(), st)
}

func TestDefectPackets(t *testing.T) {
	env := brokertest.Start(t, brokertest.Options{})
	const d, e = "kiosk-d", "kiosk-e"
	dcfg := env.DeviceTLS(t, d)

	// E keeps a round trip going through the hub the whole time: its up is echoed to its ack.
	env.Broker.Subscribe(wire.Topic(e, wire.ChUp), func(_, _ string, p []byte) {
		env.Broker.Publish(wire.Topic(e, wire.ChAck), p, false, 1)
	})
	echoes := make(chan string, 16)
	ec := env.MustConnect(t, e)
	brokertest.Wait(ec.Subscribe(wire.Topic(e, wire.ChAck), 1, func(_ paho.Client, m paho.Message) { echoes <- string(m.Payload()) }))
	roundTrip := func(s string) {
		t.Helper()
		if err := brokertest.Wait(ec.Publish(wire.Topic(e, wire.ChUp), 1, false, s)); err != nil {
			t.Fatalf("E publish: %v", err)
		}
		select {
		case got := <-echoes:
			if got != s {
				t.Fatalf("E got %q, want %q", got, s)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("E's round trip %q failed", s)
		}
	}
	roundTrip("before")

	issue501 := []byte{0x82, 0x08, 0x00, 0x01, 0x00, 0x00, 0x03, 'a', '/', 'b'} // MQTT 5 SUBSCRIBE without its options byte
	for _, tc := range []struct {
		name      string
		connected bool // send after a valid 3.1.1 CONNECT
		bytes     []byte
		reason    broker.Reason
		reply     []byte // what the broker answers before closing
	}{
		{"issue 501 subscribe", true, issue501, broker.ReasonMalformed, nil},
		{"mqtt 5 connect then issue 501", false, append(connect(5, d), issue501...), broker.ReasonProtocolVersion, []byte{0x20, 2, 0, 1}},
		{"mqtt 5 connect", false, connect(5, d), broker.ReasonProtocolVersion, []byte{0x20, 2, 0, 1}},
		{"mqtt 3.1 connect", false, packet(0x10, str("MQIsdp"), []byte{3, 2, 0, 30}, str(d)), broker.ReasonProtocolVersion, []byte{0x20, 2, 0, 1}},
		{"200 MB publish", true, []byte{0x30, 0x80, 0x80, 0x80, 0x64, 't'}, broker.ReasonOversize, nil},
		{"200 MB connect", false, []byte{0x10, 0x80, 0x80, 0x80, 0x64}, broker.ReasonOversize, nil},
		{"garbage", true, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), broker.ReasonMalformed, nil},
		{"garbage first", false, []byte("\x00\xff\xfe garbage"), broker.ReasonMalformed, nil},
		{"five-byte length", true, []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01}, broker.ReasonMalformed, nil},
		{"qos 2 publish", true, publish(wire.Topic(d, wire.ChUp), 2, 1, []byte("x")), broker.ReasonMalformed, nil},
		{"second connect", true, connect(4, d), broker.ReasonMalformed, nil},
		{"connack from client", true, []byte{0x20, 0x02, 0, 0}, broker.ReasonMalformed, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := env.Broker.Stats()[tc.reason]
			var m0 runtime.MemStats
			runtime.ReadMemStats(&m0)
			var c *tls.Conn
			if tc.connected {
				c = rawDial(t, env, dcfg, d)
			} else {
				var err error
				if c, err = tls.Dial("tcp", env.Broker.Addr(), dcfg); err != nil {
					t.Fatal(err)
				}
				defer c.Close()
			}
			c.Write(tc.bytes)
			if got := closedWithin(t, c, 5*time.Second); !bytes.Equal(got, tc.reply) {
				t.Errorf("broker answered %x, want %x", got, tc.reply)
			}
			brokertest.Eventually(t, 2*time.Second, "counter "+string(tc.reason), func() bool {
				return env.Broker.Stats()[tc.reason] == before+1
			})
			var m1 runtime.MemStats
			runtime.ReadMemStats(&m1)
			if grew := int64(m1.TotalAlloc - m0.TotalAlloc); grew > 16<<20 {
				t.Errorf("allocated %d MB for one bad packet", grew>>20)
			}
			roundTrip(tc.name)
		})
	}
}

func TestRevocation(t *testing.T) {
	for _, creds := range []bool{false, true} {
		t.Run(fmt.Sprintf("credentials=%v", creds), func(t *testing.T) { testRevocation(t, creds) })
	}
}

func testRevocation(t *testing.T, creds bool) {
	env := brokertest.Start(t, brokertest.Options{RecheckInterval: 100 * time.Millisecond, Credentials: creds})
	lost := func(id string) (paho.Client, chan struct{}) {
		ch := make(chan struct{})
		c := env.MustConnect(t, id, func(o *paho.ClientOptions) {
			o.SetConnectionLostHandler(func(paho.Client, error) { close(ch) })
		})
		return c, ch
	}
	waitLost := func(ch chan struct{}, d time.Duration, what string) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(d):
			t.Fatalf("%s: session not cut within %v", what, d)
		}
	}

	// Revocation on this replica: the hub calls Disconnect.
	_, lostR := lost("kiosk-r")
	env.Authz.Revoke("kiosk-r")
	start := time.Now()
	env.Broker.Disconnect("kiosk-r")
	waitLost(lostR, 2*time.Second, "Disconnect")
	t.Logf("Disconnect cut the session in %v", time.Since(start))
	if env.Broker.Connected("kiosk-r") {
		t.Error("still Connected after Disconnect")
	}
	if _, err := brokertest.Connect(t, env.ClientOptions("kiosk-r", env.DeviceTLS(t, "kiosk-r"))); err == nil {
		t.Error("revoked device reconnected")
	}

	// Revocation elsewhere: only the recheck loop notices.
	_, lostS := lost("kiosk-s")
	env.Authz.Revoke("kiosk-s")
	start = time.Now()
	waitLost(lostS, 2*time.Second, "recheck")
	t.Logf("recheck cut the session in %v", time.Since(start))
	if n := env.Broker.Stats()[broker.ReasonRevoked]; n != 2 {
		t.Errorf("revoked counter %d, want 2", n)
	}
	if creds && env.Authz.BulkCalls.Load() == 0 {
		t.Error("the recheck loop never called Credentials")
	}
}

func TestTakeoverKeepsPresence(t *testing.T) {
	var mu sync.Mutex
	var last []bool
	env := brokertest.Start(t, brokertest.Options{OnSession: func(c broker.SessionChange) {
		mu.Lock()
		last = append(last, c.Online)
		mu.Unlock()
	}})
	const id = "kiosk-t"
	first := env.MustConnect(t, id)
	second := env.MustConnect(t, id) // takes the session over
	brokertest.Eventually(t, 5*time.Second, "first session cut", func() bool { return !first.IsConnectionOpen() })
	if !env.Broker.Connected(id) || !second.IsConnectionOpen() {
		t.Fatal("the new session is not live")
	}
	mu.Lock()
	if last[len(last)-1] != true {
		t.Errorf("presence events %v end offline while the device is connected", last)
	}
	mu.Unlock()
}

func TestConnectTimeout(t *testing.T) {
	env := brokertest.Start(t, brokertest.Options{ConnectTimeout: 200 * time.Millisecond})
	silent, err := net.Dial("tcp", env.Broker.Addr()) // never starts TLS
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	mute, err := tls.Dial("tcp", env.Broker.Addr(), env.DeviceTLS(t, "kiosk-q")) // never sends CONNECT
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	closedWithin(t, silent, 3*time.Second)
	closedWithin(t, mute, 3*time.Second)
	brokertest.Eventually(t, 5*time.Second, "counted", func() bool { return env.Broker.Stats()[broker.ReasonConnectTimeout] == 2 })
}

// refusedAtHandshake dials the broker with cfg and reports the TLS error that ends the
// connection before any MQTT byte is answered (TLS 1.3: the client learns of the server's
// verdict on its certificate at its first read).
func refusedAtHandshake(t *testing.T, env *brokertest.Env, cfg *tls.Config) error {
	t.Helper()
	c, err := tls.Dial("tcp", env.Broker.Addr(), cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	c.Write(connect(4, "x"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = c.Read(make([]byte, 4))
	return err
}

// TestRevokedCertificateFailsHandshake: with Credentials, the TLS handshake itself refuses the
// certificate of a revoked device, resumed sessions included, and a certificate that was
// replaced, without an Authorize call; the current certificate still connects.
func TestRevokedCertificateFailsHandshake(t *testing.T) {
	env := brokertest.Start(t, brokertest.Options{Credentials: true, RecheckInterval: time.Hour})
	reloaded := func(after int64) {
		t.Helper()
		brokertest.Eventually(t, 5*time.Second, "credentials reloaded", func() bool { return env.Authz.BulkCalls.Load() > after })
	}
	// kiosk-v resumes its TLS session on its next connect.
	cfg := env.DeviceTLS(t, "kiosk-v")
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	rawDial(t, env, cfg, "kiosk-v").Close() // the CONNACK read takes the session ticket in
	if c := rawDial(t, env, cfg, "kiosk-v"); !c.ConnectionState().DidResume {
		t.Fatal("the test needs a resumed session, and got a full handshake")
	}
	old := env.DeviceTLS(t, "kiosk-w") // replaced below
	rawDial(t, env, old, "kiosk-w")
	bulk := env.Authz.BulkCalls.Load()
	env.Broker.Disconnect("kiosk-x") // a revocation elsewhere: the credentials now list old
	reloaded(bulk)

	calls, bulk := env.Authz.Calls.Load(), env.Authz.BulkCalls.Load()
	env.Authz.Revoke("kiosk-v")
	current := env.DeviceTLS(t, "kiosk-w")
	env.Broker.Disconnect("kiosk-v") // what the hub does on revocation: cut, reload the credentials
	reloaded(bulk)
	for name, c := range map[string]*tls.Config{"revoked device, resumed": cfg, "replaced certificate": old} {
		if err := refusedAtHandshake(t, env, c); err == nil || !strings.Contains(err.Error(), "bad certificate") {
			t.Errorf("%s: %v, want a TLS alert: bad certificate", name, err)
		}
	}
	brokertest.Eventually(t, 5*time.Second, "cert_refused counted twice", func() bool { return env.Broker.Stats()[broker.ReasonCertRefused] == 2 })
	if n := env.Authz.Calls.Load() - calls; n != 0 {
		t.Errorf("%d Authorize calls for connections refused at the handshake", n)
	}
	rawDial(t, env, current, "kiosk-w")
}

func TestContextCancelStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	env := brokertest.Start(t, brokertest.Options{Context: ctx})
	c := env.MustConnect(t, "kiosk-x")
	cancel()
	brokertest.Eventually(t, 5*time.Second, "client cut by shutdown", func() bool { return !c.IsConnectionOpen() })
	brokertest.Eventually(t, 5*time.Second, "listener closed", func() bool {
		c, err := net.DialTimeout("tcp", env.Broker.Addr(), time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	env.Broker.Close()
}

func TestCloseEndsEverything(t *testing.T) {
	env := brokertest.Start(t, brokertest.Options{})
	env.MustConnect(t, "kiosk-z")
	// A TCP connection that never starts TLS, and one that stops after the handshake.
	raw, err := net.Dial("tcp", env.Broker.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	tc, err := tls.Dial("tcp", env.Broker.Addr(), env.DeviceTLS(t, "kiosk-y"))
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	time.Sleep(50 * time.Millisecond) // let the broker accept both
	start := time.Now()
	env.Broker.Close()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v", d)
	}
	env.Broker.Close() // idempotent
	if err := env.Broker.Publish(wire.Topic("kiosk-z", wire.ChAck), nil, false, 0); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Publish after Close: %v", err)
	}
	if _, err := net.DialTimeout("tcp", env.Broker.Addr(), time.Second); err == nil {
		t.Error("still listening after Close")
	}
}

func TestCollector(t *testing.T) {
	env := brokertest.Start(t, brokertest.Options{})
	env.MustConnect(t, "kiosk-k")
	c, err := tls.Dial("tcp", env.Broker.Addr(), env.DeviceTLS(t, "kiosk-k2"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(connect(5, "kiosk-k2"))
	closedWithin(t, c, 5*time.Second)
	brokertest.Eventually(t, 5*time.Second, "counted", func() bool { return env.Broker.Stats()[broker.ReasonProtocolVersion] == 1 })
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(env.Broker.Collector()); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "/" + l.GetValue()
			}
			got[key] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	if len(got) != len(env.Broker.Stats())+2+len(fleet.DisconnectReasons) || got["kioskfleet_broker_rejections_total/protocol_version"] != 1 ||
		got["kioskfleet_broker_rejections_total/malformed"] != 0 || got["kioskfleet_broker_sessions"] != 1 {
		t.Fatalf("metrics %v", got)
	}
}

// TestSlowHandlerBlocksOnlyItsDevice: a bus handler runs on the publisher's read goroutine, so a
// handler stuck on one device's message does not hold up another device.
func TestSlowHandlerBlocksOnlyItsDevice(t *testing.T) {
	env := brokertest.Start(t, brokertest.Options{})
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // runs before the broker's Close, even if the test fails
	var seen collector
	env.Broker.Subscribe(wire.Filter(wire.ChUp), func(dev, topic string, p []byte) {
		if dev == "kiosk-slow" {
			<-release
		}
		seen.handle(dev, topic, p)
	})
	slow, fast := env.MustConnect(t, "kiosk-slow"), env.MustConnect(t, "kiosk-fast")
	slow.Publish(wire.Topic("kiosk-slow", wire.ChUp), 0, false, "stuck")
	for i := range 20 {
		brokertest.Wait(fast.Publish(wire.Topic("kiosk-fast", wire.ChUp), 1, false, fmt.Sprint(i)))
	}
	brokertest.Eventually(t, 5*time.Second, "fast device delivered while slow handler blocks", func() bool {
		return seen.count(func(m msg) bool { return m.dev == "kiosk-fast" }) == 20
	})
	unblock()
	brokertest.Eventually(t, 5*time.Second, "slow message delivered", func() bool {
		return seen.count(func(m msg) bool { return m.dev == "kiosk-slow" }) == 1
	})
}
