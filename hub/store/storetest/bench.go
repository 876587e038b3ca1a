package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

// BenchCommitBatches measures a backend's group-commit hot path, the same way for every backend:
// each op commits one transaction of N devices x 100 records of 200 bytes; in the "heartbeat"
// variant every 10th record also carries a health effect. It reports records/s and the CPU time
// of this process per record (all of it for an embedded backend; for a server, only the client's
// share): wall-clock figures move with whatever else the machine runs, CPU per record much less.
// open returns a new, empty store that is closed when its benchmark ends.
func BenchCommitBatches(b *testing.B, open func(b *testing.B) store.Store) {
	for _, c := range []struct {
		devices, perBatch int
		effects           bool
	}{{20, 100, false}, {50, 100, false}, {1, 100, false}, {20, 100, true}, {1000, 1, false}} {
		name := fmt.Sprintf("devices=%d/records=%d", c.devices, c.perBatch)
		if c.effects {
			name += "/heartbeat"
		}
		b.Run(name, func(b *testing.B) {
			s := open(b)
			for d := range c.devices {
				Enroll(b, s, "sz", fmt.Sprintf("k%03d", d))
			}
			health := json.RawMessage(`{"uptimeS":100,"cpuPercent":12.5}`)
			next := uint64(1)
			cpu0 := CPUTime()
			b.ResetTimer()
			for b.Loop() {
				group := make([]store.Batch, c.devices)
				for d := range group {
					group[d] = NewBatch(fmt.Sprintf("k%03d", d), "e", next, c.perBatch, 200)
					for i := range group[d].Records {
						if c.effects && i%10 == 9 {
							group[d].Records[i].Effect.Health = health
						}
					}
				}
				m, err := s.CommitBatches(context.Background(), group)
				if err != nil {
					b.Fatal(err)
				}
				next += uint64(c.perBatch)
				if m[0].UpTo != next-1 {
					b.Fatalf("watermark %d, want %d", m[0].UpTo, next-1)
				}
			}
			n := float64(b.N * c.devices * c.perBatch)
			b.ReportMetric(n/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64((CPUTime()-cpu0).Nanoseconds())/1e3/n, "cpu-us/record")
		})
	}
}

// CPUTime is the CPU time (user and system) this process has used: what a benchmark reports per
// operation when the machine runs other work too (wall-clock rates move with it, CPU time much less).
func CPUTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
