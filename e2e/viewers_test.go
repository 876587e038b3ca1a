package e2e

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/agent/fleetsim"
	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// TestFleetsimViewersAcrossRestart: live viewers (fleetsim viewers, as `make bench` runs them
// in the reconnect storm) follow a real hub's change notices while simulated kiosks heartbeat
// over MQTT; the hub is killed (-9) and started again and the kiosks reconnect. Every viewer
// opens its stream again, the lags are of the hub's notices (their times are the hub's own
// record of each change), and every viewer ends up with each kiosk's latest change.
func TestFleetsimViewersAcrossRestart(t *testing.T) {
	const viewers, kiosks = 3, 4
	h := newHub(t)
	began := time.Now()

	var mu sync.Mutex
	latest := make([]time.Time, viewers) // by viewer: the latest notice's time
	presence := map[string][]time.Time{} // by kiosk: the times of its online notices (viewer 0)
	vctx, stopViewers := context.WithCancel(context.Background())
	defer stopViewers()
	subscribed := make(chan struct{})
	type outcome struct {
		res fleetsim.ViewersResult
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := fleetsim.RunViewers(vctx, fleetsim.ViewersConfig{
			HubURL: h.client.BaseURL, HubCA: h.roots(), Token: h.client.Token, Viewers: viewers,
			Subscribed: func() { close(subscribed) },
			OnNotice: func(i int, n api.Notice) {
				mu.Lock()
				defer mu.Unlock()
				if n.At.After(latest[i]) {
					latest[i] = n.At
				}
				if i == 0 && n.Kind == api.NoticePresence && n.Online {
					presence[n.DeviceID] = append(presence[n.DeviceID], n.At)
				}
			},
		})
		done <- outcome{res, err}
	}()
	select {
	case <-subscribed:
	case o := <-done:
		t.Fatalf("viewers ended before subscribing: %v", o.err)
	case <-time.After(30 * time.Second):
		t.Fatal("viewers not subscribed within 30 s")
	}
	if n := h.metric("kf_feed_subscribers"); n < viewers {
		t.Fatalf("hub has %v feed subscribers, want at least %d", n, viewers)
	}

	var killed, settled time.Time
	var o outcome
	cfg := fleetsim.Config{
		HubURL: h.client.BaseURL, HubCA: h.roots(), Token: h.client.Token, StateDir: t.TempDir(),
		Agents: kiosks, Heartbeat: 300 * time.Millisecond, Size: 100,
		During: func(ctx context.Context, f *fleetsim.Fleet) {
			// The notices' times are the hub's own record of each change: viewer 0 (subscribed
			// before the kiosks first connected) has had each kiosk online at the time the hub
			// stores for it.
			waitFor(t, time.Minute, "viewer 0 has each kiosk online at the hub's time", func() bool {
				devs, err := h.client.ListDevices(ctx, api.DeviceQuery{})
				if err != nil || len(devs) != kiosks {
					return false
				}
				mu.Lock()
				defer mu.Unlock()
				for _, d := range devs {
					if !d.Online || !slices.ContainsFunc(presence[d.ID], d.PresenceAt.Equal) {
						return false
					}
				}
				return true
			})
			h.p.kill9()
			killed = time.Now()
			h.start()
			// Settled: the hub has every kiosk online again, from a session after the restart.
			waitFor(t, time.Minute, "kiosks online again on the hub", func() bool {
				devs, err := h.client.ListDevices(ctx, api.DeviceQuery{})
				if err != nil || len(devs) != kiosks {
					return false
				}
				for _, d := range devs {
					if !d.Online || d.PresenceAt.Before(killed) {
						return false
					}
				}
				return true
			})
			settled = time.Now()
			// Each viewer's stream keeps the hub's order: a notice of a change after settled
			// (a heartbeat) comes after the presence notices before it.
			waitFor(t, time.Minute, "every viewer past the settled presence", func() bool {
				mu.Lock()
				defer mu.Unlock()
				for _, at := range latest {
					if !at.After(settled) {
						return false
					}
				}
				return true
			})
			// Stopped while the kiosks are still there: the hub's presence the viewers read at
			// the end is the storm's.
			stopViewers()
			o = <-done
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sim, err := fleetsim.Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if sim.Connected != kiosks {
		t.Fatalf("%d of %d kiosks connected", sim.Connected, kiosks)
	}
	if o.err != nil {
		t.Fatal(o.err)
	}
	res := o.res
	elapsed := time.Since(began)
	t.Logf("%+v", res)

	// Every stream was cut by the kill and opened again; attempts while the hub was away were
	// refused, not errors.
	if res.Subscribed != viewers || res.Broken < viewers || res.Reconnects < viewers || res.Refused == 0 || res.Errors != 0 {
		t.Errorf("subscribed %d, broken %d, reconnects %d, refused %d, errors %d: want %d, >= %d, >= %d, > 0, 0",
			res.Subscribed, res.Broken, res.Reconnects, res.Refused, res.Errors, viewers, viewers, viewers)
	}
	if !res.HubLostAt.After(began) || !res.HubLostAt.Before(killed.Add(10*time.Second)) {
		t.Errorf("hub lost at %s; killed at %s", res.HubLostAt, killed)
	}
	// Lags of real notices: positive, shorter than the test, the storm's a part of them.
	if res.Updates == 0 || res.StormUpdates == 0 || res.StormUpdates > res.Updates {
		t.Errorf("%d notices, %d after the hub was lost", res.Updates, res.StormUpdates)
	}
	for name, ms := range map[string]float64{"p50": res.LagP50Ms, "max": res.LagMaxMs, "storm p50": res.StormLagP50Ms} {
		if ms <= 0 || ms > float64(elapsed.Milliseconds()) {
			t.Errorf("lag %s %.3f ms: want in (0, %d ms]", name, ms, elapsed.Milliseconds())
		}
	}
	if res.LagP50Ms > res.LagP99Ms || res.LagP99Ms > res.LagMaxMs {
		t.Errorf("lag p50 %.1f, p99 %.1f, max %.1f ms: not in order", res.LagP50Ms, res.LagP99Ms, res.LagMaxMs)
	}
	// Up to date: the kiosks whose presence changed after the kill, each viewer with all of them,
	// within the test's span of the last change.
	if res.StormKiosks != kiosks || res.NotUpToDate != 0 {
		t.Errorf("storm kiosks %d, viewers not up to date %d: want %d, 0", res.StormKiosks, res.NotUpToDate, kiosks)
	}
	if res.UpToDateMaxMs < 0 || res.UpToDateMaxMs > float64(time.Since(killed).Milliseconds()) || res.UpToDateP50Ms > res.UpToDateMaxMs {
		t.Errorf("up to date p50 %.1f ms, max %.1f ms after the last change", res.UpToDateP50Ms, res.UpToDateMaxMs)
	}
}
