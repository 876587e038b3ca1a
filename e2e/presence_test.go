package e2e

import (
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
	"github.com/kioskfleet/kioskfleet/pkg/proxytest"
)

// A hub killed with its kiosks gone never saw them leave: after its restart they must show
// offline, not "online" forever; a kiosk that comes back shows online again.
func TestPresenceAfterHubCrash(t *testing.T) {
	h := newHub(t)
	h.site("hall-1")
	dirA, a := h.enroll("hall-1")
	dirB, b := h.enroll("hall-1")
	pa := startAgent(t, "agentA", dirA)
	pb := startAgent(t, "agentB", dirB)
	waitFor(t, 20*time.Second, "both online", func() bool { return online(h, a) && online(h, b) })
	h.p.kill9()
	pa.kill9() // A is gone for good; B comes back
	h.start()
	waitFor(t, 20*time.Second, "B back online", func() bool { return online(h, b) })
	if online(h, a) {
		t.Fatal("a kiosk that never came back still shows online after the hub restarted")
	}
	pb.stop()
	waitFor(t, 10*time.Second, "B offline after a clean stop", func() bool { return !online(h, b) })
}

// lastEnd waits until the hub's presence history of kiosk id holds n ended sessions and returns
// the newest.
func lastEnd(t *testing.T, h *hub, id string, n int, within time.Duration) fleet.Session {
	t.Helper()
	var got api.Presence
	waitFor(t, within, id+"'s session end in its presence history", func() bool {
		var err error
		got, err = h.client.Presence(bg, id, 0)
		return err == nil && len(got.Sessions) >= n
	})
	return got.Sessions[0]
}

func wantEnd(t *testing.T, what string, s fleet.Session, reason fleet.DisconnectReason) {
	t.Helper()
	if s.Reason != reason || s.StartedAt.IsZero() || s.EndedAt.Before(s.StartedAt) || s.DurationMs != s.EndedAt.Sub(s.StartedAt).Milliseconds() {
		t.Errorf("%s: session %+v, want reason %s", what, s, reason)
	}
}

// The hub records why each kiosk session ended, with real agents: a clean stop says DISCONNECT
// (clean); a kill -9 ends the session at once as a network reset, not by keep-alive: the killed
// process's kernel closes its socket (FIN, or RST with unread data) and the hub's read ends with
// EOF or a reset; a network cut that leaves the connection open (a proxy that stops forwarding)
// is seen only when nothing arrived for 1.5 keep-alives (15 s: 22.5 s); a revocation is revoked;
// a hub's clean stop is shutdown, and a hub killed is hub_lost once it starts again.
func TestDisconnectReasons(t *testing.T) {
	h := newHub(t)
	h.site("hall-1")
	dirCut, cut := h.enroll("hall-1")
	dirClean, clean := h.enroll("hall-1")
	dirKill, kill := h.enroll("hall-1")
	dirRev, rev := h.enroll("hall-1")
	px := proxytest.New(t, h.mqttAddr)
	pCut := startAgent(t, "agent-cut", dirCut, "--mqtt", px.Addr)
	pClean := startAgent(t, "agent-clean", dirClean)
	pKill := startAgent(t, "agent-kill", dirKill)
	pRev := startAgent(t, "agent-revoked", dirRev)
	waitFor(t, 20*time.Second, "four kiosks online", func() bool {
		return online(h, cut) && online(h, clean) && online(h, kill) && online(h, rev)
	})

	// The cut first: it takes the longest to be seen.
	px.Blackhole()
	cutAt := time.Now()

	pClean.stop()
	wantEnd(t, "clean stop", lastEnd(t, h, clean, 1, 10*time.Second), fleet.DisconnectClean)

	killAt := time.Now()
	pKill.kill9()
	s := lastEnd(t, h, kill, 1, 10*time.Second)
	wantEnd(t, "kill -9", s, fleet.DisconnectNetwork)
	if took := time.Since(killAt); took > 10*time.Second {
		t.Errorf("kill -9 seen after %v: not the socket's close", took)
	}

	if _, err := h.client.Revoke(bg, rev); err != nil {
		t.Fatal(err)
	}
	wantEnd(t, "revocation", lastEnd(t, h, rev, 1, 10*time.Second), fleet.DisconnectRevoked)
	pRev.stop()

	s = lastEnd(t, h, cut, 1, 40*time.Second)
	wantEnd(t, "network cut", s, fleet.DisconnectKeepAlive)
	// The hub's deadline is 1.5 keep-alives after the last packet it read, which came at most
	// one keep-alive (the agent's ping interval when idle) before the cut.
	if took := s.EndedAt.Sub(cutAt); took > 30*time.Second {
		t.Errorf("network cut seen %v after it began, want at most 22.5 s (1.5 × the 15 s keep-alive)", took)
	}
	px.Restore()
	waitFor(t, 30*time.Second, "the cut kiosk back online", func() bool { return online(h, cut) })

	// The hub stopping cleanly ends the session it holds as shutdown; killed, as hub_lost.
	h.p.stop()
	h.start()
	wantEnd(t, "hub stopped", lastEnd(t, h, cut, 2, 10*time.Second), fleet.DisconnectShutdown)
	waitFor(t, 30*time.Second, "the kiosk back after the hub's restart", func() bool { return online(h, cut) })
	h.p.kill9()
	pCut.stop()
	h.start()
	s = lastEnd(t, h, cut, 3, 10*time.Second)
	wantEnd(t, "hub killed", s, fleet.DisconnectHubLost)

	// fleetctl shows the history.
	r := fleetctlAs(t, h, h.client.Token, "", "devices", "presence", kill)
	r.want(t, 0, "network_reset", "")
}
