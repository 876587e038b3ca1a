package e2e

import (
	"testing"
	"time"
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
