package ingest_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/ingest"
	"github.com/kioskfleet/kioskfleet/hub/store/storetest"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// BenchmarkIngest measures the ingest path — decode, group commit to SQLite (synchronous=FULL),
// ack, last-seen — for 1,000 enrolled devices sending 100-record batches of 200-byte bodies
// through a fake bus from 32 publishers (the broker runs one read goroutine per device; a device's
// batches stay in order). One op is one batch; records/s is the figure to watch.
func BenchmarkIngest(b *testing.B) { benchIngest(b, 100) }

// BenchmarkIngestSmallBatches is BenchmarkIngest with one record per batch, as 1,000 kiosks
// trickling 10 records/s each send them when every record leaves alone: what the ingest path
// costs per batch (cpu-us/batch) rather than per record.
func BenchmarkIngestSmallBatches(b *testing.B) { benchIngest(b, 1) }

func benchIngest(b *testing.B, perBatch int) {
	const (
		devices    = 1000
		bodySize   = 200
		publishers = 32
	)
	ids := make([]string, devices)
	for i := range ids {
		ids[i] = fmt.Sprintf("k-%04d", i)
	}
	e := newEnv(b, ingest.Config{}, ids...)
	body := []byte(`{"p":"` + strings.Repeat("x", bodySize-8) + `"}`)
	payloads := make([][]byte, b.N)
	for i := range payloads {
		round := uint64(i / devices)
		bt := wire.Batch{V: wire.Version, Epoch: "e1", Records: make([]wire.Record, perBatch)}
		for j := range bt.Records {
			bt.Records[j] = wire.Record{Seq: round*uint64(perBatch) + uint64(j) + 1, Kind: "telemetry.x", Class: wire.Telemetry,
				TS: 1795723800000, Body: body}
		}
		payloads[i] = wire.Encode(bt)
	}
	topics := make([]string, devices)
	for i, id := range ids {
		topics[i] = wire.Topic(id, wire.ChUp)
	}
	b.SetBytes(int64(perBatch * bodySize))
	b.ResetTimer()
	start, cpu0 := time.Now(), storetest.CPUTime()
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for i := range payloads {
				if d := i % devices; d%publishers == p {
					e.bus.Inject(ids[d], topics[d], payloads[i])
				}
			}
		})
	}
	wg.Wait()
	for e.g.Stats().Batches < uint64(b.N) {
		time.Sleep(200 * time.Microsecond)
	}
	elapsed, cpu := time.Since(start), storetest.CPUTime()-cpu0
	b.StopTimer()
	s := e.g.Stats()
	b.ReportMetric(float64(s.Records)/elapsed.Seconds(), "records/s")
	b.ReportMetric(float64(s.Batches)/float64(s.Commits), "batches/commit")
	b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(s.Batches), "cpu-us/batch")
	if s.Records != uint64(b.N*perBatch) || s.Rejected != 0 {
		b.Fatalf("stats %+v after %d batches", s, b.N)
	}
}
