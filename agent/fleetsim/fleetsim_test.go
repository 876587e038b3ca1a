package fleetsim_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/agent/fleetsim"
	"github.com/kioskfleet/kioskfleet/hub/server"
	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// startHub runs a whole hub in this process on loopback and stops it when the test ends.
func startHub(t *testing.T) server.Info {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan server.Info, 1)
	done := make(chan error, 1)
	go func() {
		done <- server.Run(ctx, server.Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0"},
			func(i server.Info) { ready <- i })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("hub: %v", err)
		}
	})
	select {
	case i := <-ready:
		return i
	case err := <-done:
		t.Fatalf("hub did not start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("hub did not start within 30 s")
	}
	return server.Info{}
}

// TestChurnAndOffline runs a small fleet whose connections are cut at random and a third of
// which go offline for a while, and checks on the hub that every record arrived exactly once,
// in order.
func TestChurnAndOffline(t *testing.T) {
	hub := startHub(t)
	cfg := fleetsim.Config{
		HubURL: hub.HTTPURL, Token: hub.BootstrapToken, StateDir: t.TempDir(),
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
	c := &api.Client{BaseURL: hub.HTTPURL, Token: hub.BootstrapToken}
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

func TestConfigValidate(t *testing.T) {
	cfg := fleetsim.Config{Agents: 0, Rate: -1, Size: 1 << 20, Churn: -2, OfflineFraction: 1.5}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{"agents", "rate", "size", "churn", "offline fraction", "offline for", "duration"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %q:\n%v", want, err)
		}
	}
	ok := fleetsim.Config{Agents: 1, Duration: time.Second, OfflineFraction: 0.5, OfflineFor: time.Second}
	if err := ok.Validate(); err != nil {
		t.Errorf("good config refused: %v", err)
	}
}
