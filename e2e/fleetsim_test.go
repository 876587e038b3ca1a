package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/agent/fleetsim"
	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// TestFleetsimChurnAndOffline runs a small simulated fleet (agent/fleetsim: the real agent sync
// code) against a real hub process, cuts its connections at random and takes a third of it
// offline for a while, and checks on the hub that every record arrived exactly once, in order.
func TestFleetsimChurnAndOffline(t *testing.T) {
	h := newHub(t)
	cfg := fleetsim.Config{
		HubURL: h.client.BaseURL, HubCA: h.roots(), Token: h.client.Token, StateDir: t.TempDir(),
		Agents: 12, Rate: 25, Size: 100, Heartbeat: 500 * time.Millisecond, Duration: 4 * time.Second,
		Churn: 2, OfflineFraction: 0.25, OfflineFor: 1500 * time.Millisecond,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := fleetsim.Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	if res.Connected != cfg.Agents || res.Unacked != 0 || res.Acked != res.Appended {
		t.Fatalf("connected %d of %d, appended %d, acked %d, unacked %d", res.Connected, cfg.Agents, res.Appended, res.Acked, res.Unacked)
	}
	if res.Cuts < 3 {
		t.Errorf("%d connections cut, want about 8", res.Cuts)
	}
	if res.OfflineKiosks != 3 {
		t.Errorf("%d kiosks offline, want 3", res.OfflineKiosks)
	}
	if res.Sessions < uint64(cfg.Agents)+res.Cuts/2 {
		t.Errorf("%d sessions after %d cuts: kiosks did not reconnect", res.Sessions, res.Cuts)
	}
	// Offline for 1.5 s at 25 records/s: at least ~35 records buffered by one kiosk.
	if res.MaxBuffered < 30 {
		t.Errorf("most buffered by one kiosk %d, want >= 30 (offline kiosks buffer)", res.MaxBuffered)
	}

	// On the hub: each kiosk's sequence numbers 1..n, each once, in order; n summed is what the
	// fleet appended.
	ids, err := fleetsim.Identities(ctx, cfg, cfg.Agents)
	if err != nil {
		t.Fatal(err)
	}
	c := h.client
	var stored uint64
	for _, id := range ids {
		var after int64
		want := uint64(1)
		for {
			page, err := c.Records(ctx, id.DeviceID, api.RecordQuery{After: after, Limit: 500})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range page.Records {
				if r.Seq != want {
					t.Fatalf("%s: seq %d stored where %d was due (lost, doubled or out of order)", id.DeviceID, r.Seq, want)
				}
				want++
			}
			if len(page.Records) == 0 || page.Next == 0 {
				break
			}
			after = page.Next
		}
		stored += want - 1
	}
	if stored != res.Appended {
		t.Errorf("hub stored %d records, the fleet appended %d", stored, res.Appended)
	}
}
