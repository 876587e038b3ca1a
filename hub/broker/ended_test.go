package broker_test

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/broker"
	"github.com/kioskfleet/kioskfleet/hub/broker/brokertest"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// ends records the session ends OnSession is told, by device.
type ends struct {
	mu sync.Mutex
	m  map[string][]broker.SessionChange
}

func (e *ends) on(c broker.SessionChange) {
	if c.Online {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m == nil {
		e.m = map[string][]broker.SessionChange{}
	}
	e.m[c.DeviceID] = append(e.m[c.DeviceID], c)
}

// want waits for id's first session end and checks its reason.
func (e *ends) want(t *testing.T, id string, reason fleet.DisconnectReason, d time.Duration) broker.SessionChange {
	t.Helper()
	var got broker.SessionChange
	brokertest.Eventually(t, d, id+" session end", func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		if len(e.m[id]) == 0 {
			return false
		}
		got = e.m[id][0]
		return true
	})
	if got.Reason != reason || got.Since.IsZero() || got.At.Before(got.Since) {
		t.Errorf("%s ended: reason %q detail %q since %v at %v; want reason %q", id, got.Reason, got.Detail, got.Since, got.At, reason)
	}
	return got
}

// Each way a session ends is told with its reason, as mochi and the broker see it.
func TestSessionEndReasons(t *testing.T) {
	var e ends
	env := brokertest.Start(t, brokertest.Options{OnSession: e.on})

	// A clean stop sends DISCONNECT.
	env.MustConnect(t, "k-clean").Disconnect(100)
	if c := e.want(t, "k-clean", fleet.DisconnectClean, 5*time.Second); c.Detail != "" {
		t.Errorf("clean end with detail %q", c.Detail)
	}

	// A connection reset (RST) without DISCONNECT.
	c := rawDial(t, env, env.DeviceTLS(t, "k-reset"), "k-reset")
	c.NetConn().(*net.TCPConn).SetLinger(0)
	c.NetConn().Close()
	if c := e.want(t, "k-reset", fleet.DisconnectNetwork, 5*time.Second); !strings.Contains(c.Detail, "reset") {
		t.Errorf("reset detail %q", c.Detail)
	}
	// The socket closed (FIN) without DISCONNECT, as a killed process's kernel does.
	c = rawDial(t, env, env.DeviceTLS(t, "k-fin"), "k-fin")
	c.NetConn().Close()
	e.want(t, "k-fin", fleet.DisconnectNetwork, 5*time.Second)

	// Silence past one and a half keep-alives (2 s: 3 s) [MQTT-3.1.2-24].
	c = rawDialWith(t, env, env.DeviceTLS(t, "k-silent"), packet(0x10, append(str("MQTT"), 4, 0x02, 0, 2), str("k-silent")))
	start := time.Now()
	closedWithin(t, c, 10*time.Second)
	if e.want(t, "k-silent", fleet.DisconnectKeepAlive, 5*time.Second); time.Since(start) < 2900*time.Millisecond {
		t.Errorf("keep-alive timeout after %v, want 3 s", time.Since(start))
	}

	// Revoked: the hub cuts the session.
	env.MustConnect(t, "k-revoked")
	env.Authz.Revoke("k-revoked")
	env.Broker.Disconnect("k-revoked")
	e.want(t, "k-revoked", fleet.DisconnectRevoked, 5*time.Second)

	// Replaced: a newer connection of the device takes the session over [MQTT-3.1.4-3].
	env.MustConnect(t, "k-twice")
	env.MustConnect(t, "k-twice")
	e.want(t, "k-twice", fleet.DisconnectReplaced, 5*time.Second)

	// A protocol breach: a PUBLISH the ACL refuses closes the connection.
	bad := env.MustConnect(t, "k-bad")
	bad.Publish(wire.Topic("k-other", wire.ChUp), 1, false, "x")
	e.want(t, "k-bad", fleet.DisconnectProtocol, 5*time.Second)

	// The broker shutting down ends the sessions it holds.
	env.MustConnect(t, "k-shut")
	env.Broker.Close()
	e.want(t, "k-shut", fleet.DisconnectShutdown, 5*time.Second)
}
