package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/httpapi"
	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/sqlite"
	"github.com/kioskfleet/kioskfleet/hub/store/storetest"
	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// BenchmarkOverview19000 serves GET /api/v1/overview, the region hierarchy's counts, for a
// fleet of 19,000 kiosks (what one hub holds on two cores) from the SQLite store, over loopback
// HTTP, to a client that decodes it: 2 provinces, 20 cities, 100 counties, 1,000 sites; a
// seventh of the kiosks offline, a fifth of the online ones with a printer out of paper, each
// with a heartbeat and a peripherals body as agents send them. Target: <= 300 ms an overview
// (scripts/bench.sh, scenario overview).
func BenchmarkOverview19000(b *testing.B) {
	const kiosks, sites = 19000, 1000
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(memDir(b), "hub.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	for i := range sites {
		county := fmt.Sprintf("%02d%02d%02d", 44+i/500, 1+i/50%10, 1+i/10%5)
		if err := st.CreateSite(ctx, store.Site{ID: fmt.Sprintf("site-%04d", i), Name: fmt.Sprintf("Hall %d", i), Region: county}); err != nil {
			b.Fatal(err)
		}
	}
	health := json.RawMessage(`{"uptimeS":86400,"cpuPercent":12.5,"memUsedBytes":812000000,"memTotalBytes":4000000000,"diskFreeBytes":21000000000,"diskTotalBytes":64000000000,"outboxDepth":0}`)
	periph := func(st string) json.RawMessage {
		return json.RawMessage(`{"devices":[{"id":"idcard0","class":"id-reader","connected":true,"status":"ok","since":1},` +
			`{"id":"receipt0","class":"receipt-printer","connected":true,` + st + `,"consumables":[{"name":"paper","level":"ok"}],"since":1},` +
			`{"id":"a4","class":"document-printer","connected":true,"status":"ok","since":1},{"id":"qr0","class":"qr-scanner","connected":true,"status":"ok","since":1}]}`)
	}
	fine, out := periph(`"status":"ok"`), periph(`"status":"fault","reasons":["paper-out"]`)
	var presence []store.PresenceUpdate
	var group []store.Batch
	want := api.Tally{Kiosks: kiosks}
	for i := range kiosks {
		id := fmt.Sprintf("k-%06d", i)
		storetest.Enroll(b, st, fmt.Sprintf("site-%04d", i%sites), id)
		batch := storetest.NewBatch(id, "e1", 1, 2, 100)
		batch.Records[0].Effect.Health = health
		batch.Records[1].Effect.Peripherals = fine
		switch {
		case i%7 == 0:
			want.Offline++
		case i%5 == 0:
			batch.Records[1].Effect.Peripherals = out
			want.Degraded++
			fallthrough
		default:
			presence = append(presence, store.PresenceUpdate{DeviceID: id, Online: true, AgentVersion: "1.0.0", At: time.Now(), Replica: "hub-1"})
		}
		if group = append(group, batch); len(group) == 500 || i == kiosks-1 {
			if _, err := st.CommitBatches(ctx, group); err != nil {
				b.Fatal(err)
			}
			group = nil
		}
	}
	want.Online = kiosks - want.Offline - want.Degraded
	if err := st.SetPresences(ctx, presence); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Store: st, Auth: httpapi.NewBootstrapToken(adminTok), Now: time.Now}))
	b.Cleanup(srv.Close)
	client := &api.Client{BaseURL: srv.URL, Token: adminTok}
	cpu0 := cpuTime()
	b.ResetTimer()
	for b.Loop() {
		ov, err := client.Overview(ctx, "")
		if err != nil {
			b.Fatal(err)
		}
		if ov.Total != want || len(ov.Regions) != 2+20+100 || len(ov.Sites) != sites {
			b.Fatalf("overview: total %+v (want %+v), %d regions, %d sites", ov.Total, want, len(ov.Regions), len(ov.Sites))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/overview")
	// CPU of this process (server and client) an overview: on a loaded machine, the figure that
	// moves least with the load.
	b.ReportMetric(float64((cpuTime()-cpu0).Milliseconds())/float64(b.N), "cpu-ms/overview")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// memDir is a folder in memory (/dev/shm) when the machine has one, else on disk: seeding a big
// fleet commits tens of thousands of transactions, each an fsync on disk. What is measured
// afterwards reads from the page cache either way.
func memDir(b *testing.B) string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "kf-bench-")
		if err == nil {
			b.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return b.TempDir()
}
