package e2e

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
	"github.com/kioskfleet/kioskfleet/pkg/proxytest"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

var bg = context.Background()

func online(h *hub, id string) bool {
	d, err := h.client.Device(bg, id)
	return err == nil && d.Device.Online
}

// A hub and three agents as separate processes: records flow, commands round-trip, desired state
// converges, and presence flips to offline when an agent is killed.
func TestEndToEnd(t *testing.T) {
	h := newHub(t)
	h.site("hall-1")
	type kiosk struct {
		dir, id string
		p       *proc
	}
	var ks []kiosk
	for i := range 3 {
		dir, id := h.enroll("hall-1")
		ks = append(ks, kiosk{dir, id, startAgent(t, "agent"+string(rune('a'+i)), dir)})
	}
	for _, k := range ks {
		waitFor(t, 20*time.Second, k.id+" online", func() bool { return online(h, k.id) })
		waitFor(t, 20*time.Second, k.id+" heartbeat stored", func() bool { return len(h.records(k.id, wire.KindHeartbeat)) > 0 })
	}
	devs, err := h.client.ListDevices(bg, api.DeviceQuery{Status: "online"})
	if err != nil || len(devs) != 3 {
		t.Fatalf("online devices: %d %v", len(devs), err)
	}

	// Commands round-trip, each to its own kiosk.
	for _, k := range ks {
		c, err := h.client.SendCommand(bg, k.id, api.CreateCommand{Name: "ping", Args: json.RawMessage(`{"n":1}`), TTL: "1m"})
		if err != nil {
			t.Fatal(err)
		}
		c, err = h.client.Command(bg, c.ID, 20*time.Second)
		if err != nil || c.State != wire.CmdSucceeded {
			t.Fatalf("ping on %s: %+v %v", k.id, c, err)
		}
		var out struct{ Pong bool }
		if json.Unmarshal(c.Output, &out) != nil || !out.Pong {
			t.Fatalf("ping output %s", c.Output)
		}
	}
	// An unknown command fails with a reason.
	c, err := h.client.SendCommand(bg, ks[0].id, api.CreateCommand{Name: "no-such-command"})
	if err != nil {
		t.Fatal(err)
	}
	if c, err = h.client.Command(bg, c.ID, 20*time.Second); err != nil || c.State != wire.CmdFailed || c.Error == "" {
		t.Fatalf("unknown command: %+v %v", c, err)
	}

	// Desired state converges; an invalid one is refused and shows as drift with the reason.
	if _, err := h.client.SetDesired(bg, ks[1].id, json.RawMessage(`{"heartbeatInterval":"2s"}`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "desired state converged", func() bool {
		s, err := h.client.State(bg, ks[1].id)
		return err == nil && !s.Drift && s.Reported != nil && s.Reported.Version == 1
	})
	if _, err := h.client.SetDesired(bg, ks[1].id, json.RawMessage(`{"heartbeatInterval":"soon"}`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "refused desired state reported", func() bool {
		s, err := h.client.State(bg, ks[1].id)
		return err == nil && s.Drift && s.Reported != nil && s.Reported.Error != ""
	})

	// Presence flips when an agent dies without saying goodbye.
	ks[2].p.kill9()
	waitFor(t, 10*time.Second, "killed agent offline", func() bool { return !online(h, ks[2].id) })
	d, _ := h.client.Device(bg, ks[2].id)
	if d.Device.PresenceAt.IsZero() || d.Device.LastSeen.IsZero() {
		t.Errorf("presence without timestamps: %+v", d.Device)
	}
	for _, k := range ks[:2] {
		if !online(h, k.id) {
			t.Errorf("%s went offline with its neighbour", k.id)
		}
	}
}

// An agent cut off from the hub keeps producing; on reconnect every record arrives once, in order;
// commands queued meanwhile run once and expired ones never run.
func TestOffline(t *testing.T) {
	h := newHub(t)
	h.site("hall-1")
	dir, id := h.enroll("hall-1")
	px := proxytest.New(t, h.mqttAddr)
	a := startAgent(t, "agent", dir, "--mqtt", px.Addr, "--synthetic-rate", "200")
	waitFor(t, 20*time.Second, "online", func() bool { return online(h, id) })
	waitFor(t, 20*time.Second, "first records", func() bool { return len(h.records(id, "synthetic")) > 50 })

	px.Cut()
	waitFor(t, 20*time.Second, "offline", func() bool { return !online(h, id) })
	// Batches the hub received before the cut may still be committing: wait until the count holds.
	before := -1
	waitFor(t, 10*time.Second, "record count stable", func() bool {
		n := len(h.records(id, "synthetic"))
		stable := n == before
		before = n
		if !stable {
			time.Sleep(300 * time.Millisecond)
		}
		return stable
	})
	runs, _ := h.client.SendCommand(bg, id, api.CreateCommand{Name: "journal", Args: json.RawMessage(`{"visit":"offline-test"}`), TTL: "1h"})
	expires, _ := h.client.SendCommand(bg, id, api.CreateCommand{Name: "journal", Args: json.RawMessage(`{"visit":"must-not-run"}`), TTL: "1s"})
	time.Sleep(3 * time.Second) // stay offline while records pile up and the short command expires
	if n := len(h.records(id, "synthetic")); n != before {
		t.Fatalf("records arrived while cut off: %d -> %d", before, n)
	}
	px.Restore()

	waitFor(t, 30*time.Second, "command run after reconnect", func() bool {
		c, err := h.client.Command(bg, runs.ID, 0)
		return err == nil && c.State == wire.CmdSucceeded
	})
	c, _ := h.client.Command(bg, expires.ID, 0)
	if c.State != wire.CmdExpired {
		t.Errorf("short command state %s, want expired", c.State)
	}
	a.stop()
	next := outboxNext(t, dir)
	var all []fleet.Record
	a = startAgent(t, "agent2", dir, "--mqtt", px.Addr) // drain what the stop left unacked
	waitFor(t, 30*time.Second, "drained", func() bool { all = h.records(id, ""); return uint64(len(all)) >= next-1 })
	a.stop()
	checkSeqs(t, h.records(id, "")[:next-1], next-1)
	journal := 0
	for _, r := range h.records(id, "journal") {
		var b map[string]string
		_ = json.Unmarshal(r.Body, &b)
		switch b["visit"] {
		case "offline-test":
			journal++
		case "must-not-run":
			t.Errorf("expired command ran")
		}
	}
	if journal != 1 {
		t.Errorf("queued command ran %d times, want 1", journal)
	}
}
