package idcard_test

import (
	"context"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/drivers/idcard"
	"github.com/kioskfleet/kioskfleet/drivers/idcard/idcardsim"
)

// BenchmarkSplit parses a complete 1295-byte text+photo reply (preamble search, LEN, checksum).
func BenchmarkSplit(b *testing.B) {
	frame := idcardsim.New(idcardsim.Resident()).Reply([]byte{0x30, 0x01})
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if _, end, err := idcard.Split(frame); err != nil || end != len(frame) {
			b.Fatal(end, err)
		}
	}
}

// BenchmarkDecodeText decodes and checks a text block, then reads the name and number.
func BenchmarkDecodeText(b *testing.B) {
	block := idcardsim.Resident().TextBlock()
	b.ReportAllocs()
	for b.Loop() {
		id, err := idcard.DecodeText(block)
		if err != nil {
			b.Fatal(err)
		}
		if id.Name() == "" || id.Number() == "" {
			b.Fatal("empty")
		}
	}
}

// BenchmarkReadCardPty reads a card (find, select, read text+photo: three exchanges) from the
// simulator over a real pty and reports the time spent beyond the simulated device time
// (overhead-ms/op; target < 5 ms). device-ms/op is the device time as the simulator measured it:
// its timers overshoot the nominal delay.
func BenchmarkReadCardPty(b *testing.B) {
	for _, delay := range []time.Duration{0, 2 * time.Millisecond} {
		b.Run("device="+delay.String(), func(b *testing.B) {
			sim := idcardsim.New(idcardsim.Resident())
			sim.SetFaults(idcardsim.Faults{Delay: delay})
			r := newRig(b, sim, idcard.Config{})
			ctx := context.Background()
			b.ReportAllocs()
			start := time.Now()
			for b.Loop() {
				id, err := r.reader.ReadCard(ctx, idcard.ReadOptions{})
				if err != nil {
					b.Fatal(err)
				}
				id.Wipe()
			}
			elapsed := time.Since(start)
			b.ReportMetric(float64(elapsed-sim.DeviceTime())/1e6/float64(b.N), "overhead-ms/op")
			b.ReportMetric(float64(sim.DeviceTime())/1e6/float64(b.N), "device-ms/op")
		})
	}
}
