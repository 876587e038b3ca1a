package httpapi_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/feed"
	"github.com/kioskfleet/kioskfleet/hub/httpapi"
	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/sqlite"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/polltest"
)

// BenchmarkFeedViewersStorm: 100 live console viewers hold GET /api/v1/feed (server-sent events
// over loopback HTTP) while the hub's presence writer reports a 19,000-kiosk reconnect storm to
// the feed, as ingest does: batches of up to 2,000 presence changes (offline, then online
// again). Each op is one storm. It reports the p99 lag from a change's presence write to its
// notice reaching a viewer (over the notices received), the p99 time from the storm's last write
// until a viewer has seen all of it (its notices, or a resync: a viewer that falls behind loses
// notices and is told to read everything again), the notices lost and resyncs per viewer and
// storm, and the heap per viewer held by the hub's side of the stream (client and server share
// this process: it is an upper bound). The storm itself (19,000 TLS reconnects and their commits) is not in it: only the fan-out
// to viewers. Target (issue 14): p99 <= 2 s; memory per viewer reported.
func BenchmarkFeedViewersStorm(b *testing.B) {
	const viewers, kiosks, batch = 100, 19000, 2000
	st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "hub.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	f := feed.New(0, nil)
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Store: st, Auth: httpapi.NewBootstrapToken(adminTok), Feed: f, FeedHold: time.Hour, Now: time.Now}))
	b.Cleanup(srv.Close)
	b.Cleanup(f.Close)

	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse
	}
	before := heap()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		mu       sync.Mutex
		lags     []time.Duration // from a change's write to its notice, over the notices received
		upToDate []time.Duration // from the storm's last write to each viewer having seen all of it
		round    atomic.Int64
		stormEnd atomic.Int64 // Unix ns of the current storm's last write
		caughtUp atomic.Int64 // viewers that saw this round's marker
		resync   atomic.Int64
		wg       sync.WaitGroup
	)
	for range viewers {
		c := &api.Client{BaseURL: srv.URL, Token: adminTok}
		wg.Go(func() {
			var mine []time.Duration
			seen := int64(0)
			_ = c.Feed(ctx, func(n api.Notice) {
				switch r := round.Load(); {
				case n.Kind == api.NoticeResync:
					resync.Add(1)
				case n.DeviceID == fmt.Sprintf("marker-%d", r):
					// The feed keeps each viewer's order: all of the storm came before.
					if seen < r {
						seen = r
						mu.Lock()
						upToDate = append(upToDate, time.Since(time.Unix(0, stormEnd.Load())))
						lags = append(lags, mine...)
						mu.Unlock()
						mine = mine[:0]
						caughtUp.Add(1)
					}
				default:
					mine = append(mine, time.Since(n.At))
				}
			})
		})
	}
	polltest.Until(b, time.Minute, "every viewer subscribed", func() bool { return f.Subscribers() >= viewers })
	perViewer := float64(heap()-min(before, heap())) / viewers
	for b.Loop() {
		r := round.Add(1)
		caughtUp.Store(0)
		for _, online := range []bool{false, true} {
			for from := 0; from < kiosks; from += batch {
				us := make([]store.PresenceUpdate, 0, batch)
				now := time.Now()
				for i := from; i < min(from+batch, kiosks); i++ {
					us = append(us, store.PresenceUpdate{DeviceID: fmt.Sprintf("k-%06d", i), Online: online, At: now})
				}
				f.PresenceWritten(us)
			}
		}
		stormEnd.Store(time.Now().UnixNano())
		// A marker after the storm, again until every viewer saw it (a full viewer drops it).
		polltest.Until(b, time.Minute, "every viewer caught up", func() bool {
			if caughtUp.Load() >= viewers {
				return true
			}
			f.Publish(api.Notice{Kind: api.NoticePresence, DeviceID: fmt.Sprintf("marker-%d", r), At: time.Now()})
			return false
		})
	}
	b.StopTimer()
	cancel()
	wg.Wait()
	p99 := func(ds []time.Duration) float64 {
		if len(ds) == 0 {
			return 0
		}
		slices.Sort(ds)
		return float64(ds[len(ds)*99/100].Microseconds()) / 1000
	}
	b.ReportMetric(p99(lags), "p99-lag-ms")
	b.ReportMetric(p99(upToDate), "p99-uptodate-ms")
	b.ReportMetric(float64(f.Lost())/float64(b.N*viewers), "lost/viewer/storm")
	b.ReportMetric(float64(resync.Load())/float64(b.N*viewers), "resyncs/viewer/storm")
	b.ReportMetric(perViewer/1024, "heap-KiB/viewer")
}
