package sqlite_test

import (
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/storetest"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
)

// BenchmarkSetPresences writes batches of 2,000 presence changes (as the hub's presence writer
// does in a reconnect storm: every kiosk online again, one in four ending a session) over a fleet
// of 5,000 kiosks, on an idle process and on one whose cores are saturated by many runnable
// goroutines (as the hub's are by TLS handshakes in a storm). Saturated, each call into SQLite
// costs the writer a trip through the scheduler's queue: the figure shows what a statement per
// change would cost there.
func BenchmarkSetPresences(b *testing.B) {
	const devices, batch = 5000, 2000
	s := open(b, filepath.Join(b.TempDir(), "bench.db"))
	b.Cleanup(func() { s.Close() })
	for i := range devices {
		storetest.Enroll(b, s, "sz", fmt.Sprintf("k%05d", i))
	}
	at := time.Now()
	next := 0
	changes := func() []store.PresenceUpdate {
		us := make([]store.PresenceUpdate, batch)
		for i := range us {
			at = at.Add(time.Millisecond)
			id := fmt.Sprintf("k%05d", next%devices)
			us[i] = store.PresenceUpdate{DeviceID: id, Online: next%4 != 0, AgentVersion: "1.0.0", At: at, Replica: "a"}
			if next%4 == 0 {
				us[i].End = &store.SessionEnd{StartedAt: at.Add(-time.Minute), Reason: fleet.DisconnectNetwork}
			}
			next++
		}
		return us
	}
	for _, busy := range []int{0, 64 * runtime.GOMAXPROCS(0)} {
		b.Run(fmt.Sprintf("busy=%d", busy), func(b *testing.B) {
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for range busy {
				wg.Go(func() {
					var buf [4096]byte
					for {
						select {
						case <-stop:
							return
						default:
							sha256.Sum256(buf[:])
							runtime.Gosched()
						}
					}
				})
			}
			defer func() { close(stop); wg.Wait() }()
			for b.Loop() {
				if err := s.SetPresences(b.Context(), changes()); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/batch")
		})
	}
}
