package gcheadroom

import (
	"context"
	"log/slog"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	for _, tc := range []struct {
		base       int
		inUse, max uint64
		want       int
	}{
		{100, 10 << 20, 64 << 20, 100},        // small heap: GOGC as set
		{100, 640 << 20, 64 << 20, 10},        // 640 MiB in use: 10% is 64 MiB
		{100, 128 << 20, 64 << 20, 50},        //
		{50, 100 << 20, 64 << 20, 50},         // never above the base
		{100, 64 << 30, 64 << 20, MinPercent}, // never below the floor
		{-1, 1 << 30, 64 << 20, -1},           // GOGC=off stays off
		{100, 0, 64 << 20, 100},
		{100, 1 << 30, 0, 100},
	} {
		if got := Percent(tc.base, tc.inUse, tc.max); got != tc.want {
			t.Errorf("Percent(%d, %d MiB, %d MiB) = %d, want %d", tc.base, tc.inUse>>20, tc.max>>20, got, tc.want)
		}
	}
}

func TestTarget(t *testing.T) {
	if got := Target(64<<20, 1<<20, 2*time.Second); got != 64<<20 {
		t.Errorf("slow allocation: %d, want the headroom", got)
	}
	if got := Target(64<<20, 100<<20, 2*time.Second); got != 200<<20 {
		t.Errorf("100 MiB/s for 2 s: %d MiB, want 200", got>>20)
	}
}

func gogc() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}

// TestRun holds 96 MiB live and asks for 8 MiB headroom: after a collection GOGC drops to about
// 8%, and it is back at its start value once Run has returned.
func TestRun(t *testing.T) {
	base := gogc()
	live := make([][]byte, 96)
	for i := range live {
		live[i] = make([]byte, 1<<20)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, Config{Headroom: 8 << 20, MinGap: time.Millisecond, Interval: 5 * time.Millisecond}, slog.New(slog.DiscardHandler))
	}()
	deadline := time.Now().Add(10 * time.Second)
	for gogc() > 10 {
		if time.Now().After(deadline) {
			t.Fatalf("GOGC still %d with 96 MiB live and 8 MiB headroom asked", gogc())
		}
		runtime.GC() // each full collection of the 96 MiB takes a few ms: Run's 5 ms ticks go by
		runtime.Gosched()
	}
	if p := gogc(); p < MinPercent {
		t.Errorf("GOGC %d below the floor %d", p, MinPercent)
	}
	runtime.KeepAlive(live)
	cancel()
	<-done
	if p := gogc(); p != base {
		t.Errorf("GOGC %d after Run returned, want %d restored", p, base)
	}
}
