package sqlite_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/internal/rollup"
	"github.com/kioskfleet/kioskfleet/hub/store/sqlite"
)

// heatDB returns a store whose rollups hold n synthetic events over 30 days: 100,000 citizens,
// 50 services (Zipf: a few in great demand), 4 channels, 12 regions, service-hall hours. It is
// generated once into the temporary folder and kept there for later runs (delete
// $TMPDIR/kf-heat-N.db to start afresh).
func heatDB(b *testing.B, n int) *sqlite.Store {
	b.Helper()
	path := filepath.Join(os.TempDir(), fmt.Sprintf("kf-heat-%d.db", n))
	done := path + ".done"
	if _, err := os.Stat(done); err != nil {
		os.Remove(path)
		os.Remove(path + "-wal")
		b.Logf("generating %d events' rollups into %s (once)", n, path)
		s := open(b, path)
		rng := rand.New(rand.NewPCG(1, 2))
		zipf := rand.NewZipf(rng, 1.3, 2, 49)
		channels := []string{store.ChannelKiosk, store.ChannelWeb, store.ChannelMobile, store.ChannelMiniProgram}
		perDay := n / 30
		for day := range 30 {
			evs := make([]store.Event, 0, perDay)
			for range perDay {
				at := heatT0.Add(time.Duration(day)*24*time.Hour + time.Duration(rng.IntN(10*3600))*time.Second)
				typ := store.FunnelStages[min(rng.IntN(6), 3)]
				evs = append(evs, store.Event{Type: typ, Channel: channels[rng.IntN(4)], Pseudonym: "p" + strconv.Itoa(rng.IntN(100_000)),
					Service: "svc-" + strconv.Itoa(int(zipf.Uint64())), Region: fmt.Sprintf("4403%02d", rng.IntN(12)), DeviceTS: at})
			}
			d := rollup.Of(evs)
			d.Uses = nil
			if err := s.MergeRollups(context.Background(), d); err != nil {
				b.Fatal(err)
			}
		}
		s.Close()
		if err := os.WriteFile(done, nil, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	s := open(b, path)
	b.Cleanup(func() { s.Close() })
	return s
}

// heatT0 is local midnight (China Standard Time) of the first day of the generated data.
var heatT0 = time.Date(2026, 10, 1, 0, 0, 0, 0, time.FixedZone("CST", 8*3600))

// BenchmarkHeatQuery measures heat queries over the rollups of KF_HEAT_EVENTS events (default
// 10 million) and reports each query's p99. Target: p99 <= 200 ms.
func BenchmarkHeatQuery(b *testing.B) {
	n := 10_000_000
	if s := os.Getenv("KF_HEAT_EVENTS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	s := heatDB(b, n)
	day := 24 * time.Hour
	for _, c := range []struct {
		name string
		q    store.HeatQuery
	}{
		{"day/by=service,channel,region", store.HeatQuery{From: heatT0.Add(10 * day), To: heatT0.Add(11 * day), By: []string{store.ByService, store.ByChannel, store.ByRegion}}},
		{"week/by=service", store.HeatQuery{From: heatT0.Add(7 * day), To: heatT0.Add(14 * day), By: []string{store.ByService}}},
		{"day/service/by=hour", store.HeatQuery{From: heatT0.Add(10 * day), To: heatT0.Add(11 * day), Service: "svc-0", By: []string{store.ByHour}}},
		{"day/by=region,hour", store.HeatQuery{From: heatT0.Add(10 * day), To: heatT0.Add(11 * day), By: []string{store.ByRegion, store.ByHour}}},
		{"month/by=service", store.HeatQuery{From: heatT0, To: heatT0.Add(30 * day), By: []string{store.ByService}}},
	} {
		b.Run(c.name, func(b *testing.B) {
			c.q.MinCitizens = 10
			var lat []time.Duration
			cells := 0
			for b.Loop() {
				start := time.Now()
				got, err := s.Heat(b.Context(), c.q)
				if err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
				cells = len(got)
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(cells), "cells")
		})
	}
}
