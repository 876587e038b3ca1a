// Package gcheadroom bounds the garbage collector's headroom in bytes, not only in percent.
//
// With GOGC=100 the heap may grow to twice what the last collection found in use (live heap,
// goroutine stacks and globals, Go 1.18 pacer) before the next collection starts. On a hub
// holding tens of thousands of idle kiosk connections that is hundreds of megabytes resident for
// garbage. Run lowers GOGC so that the headroom stays near a fixed number of bytes once the
// in-use memory is large, and leaves GOGC as it was while it is small (at ingest with a few
// hundred connections nothing changes). When the program allocates fast (a reconnect storm:
// thousands of TLS handshakes a second) a fixed headroom would make the collector run back to
// back and starve the work; so the headroom is never less than what the program allocates in
// Config.MinGap, which bounds the collector to about one cycle per MinGap. When such a burst is
// over, Run returns the memory it took to the operating system at once.
package gcheadroom

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// MinPercent is the lowest GOGC Run sets: below it the collector would run nearly back to back.
const MinPercent = 5

// burst is how many times the configured headroom the allocation-driven target must reach for
// Run to return memory to the OS once the allocation rate is back down.
const burst = 4

// metric names (runtime/metrics, Go 1.21+).
const (
	mAllocs  = "/gc/heap/allocs:bytes"
	mLive    = "/gc/heap/live:bytes"
	mStacks  = "/gc/scan/stack:bytes"
	mGlobals = "/gc/scan/globals:bytes"
)

// Percent returns the GOGC that gives a headroom of about max bytes over inUse bytes (live heap,
// stacks and globals), never above base nor below MinPercent. base < 0 (GOGC=off) is returned
// as is.
func Percent(base int, inUse, max uint64) int {
	if base < 0 || inUse == 0 || max == 0 {
		return base
	}
	p := max * 100 / inUse
	switch {
	case p >= uint64(base):
		return base
	case p < MinPercent:
		return MinPercent
	}
	return int(p)
}

// Config says how much headroom Run aims for.
type Config struct {
	Headroom uint64        // bytes; 0: Run returns at once and GOGC alone decides
	MinGap   time.Duration // default 2 s: the headroom covers at least this long of allocation
	Interval time.Duration // how often Run looks; default 1 s
}

// Target is the headroom in bytes for an allocation rate (bytes per second): max(headroom,
// rate × minGap).
func Target(headroom uint64, rate float64, minGap time.Duration) uint64 {
	if r := uint64(rate * minGap.Seconds()); r > headroom {
		return r
	}
	return headroom
}

// Run adjusts GOGC every Interval until ctx is done; then it restores the GOGC it started with.
// It must be the only writer of GOGC in the process.
func Run(ctx context.Context, cfg Config, log *slog.Logger) {
	if cfg.Headroom == 0 {
		return
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.MinGap <= 0 {
		cfg.MinGap = 2 * time.Second
	}
	base := debug.SetGCPercent(100) // read the setting (GOGC or 100) ...
	debug.SetGCPercent(base)        // ... and put it back
	if base < 0 {
		log.Info("gc headroom not bounded: GOGC=off")
		return
	}
	defer debug.SetGCPercent(base)
	samples := []metrics.Sample{{Name: mAllocs}, {Name: mLive}, {Name: mStacks}, {Name: mGlobals}}
	metrics.Read(samples)
	if samples[0].Value.Kind() != metrics.KindUint64 {
		return // an older runtime without these metrics: leave GOGC alone
	}
	cur, prevAllocs, prevAt, rate := base, samples[0].Value.Uint64(), time.Now(), 0.0
	inBurst := false
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		metrics.Read(samples)
		now, allocs := time.Now(), samples[0].Value.Uint64()
		if dt := now.Sub(prevAt).Seconds(); dt > 0 {
			r := float64(allocs-prevAllocs) / dt
			rate = max(r, (rate+r)/2) // rise at once, fall gently
		}
		prevAllocs, prevAt = allocs, now
		var inUse uint64
		for _, s := range samples[1:] {
			if s.Value.Kind() == metrics.KindUint64 {
				inUse += s.Value.Uint64()
			}
		}
		target := Target(cfg.Headroom, rate, cfg.MinGap)
		if inBurst && target <= cfg.Headroom {
			// A burst (a reconnect storm) is over: give back at once what it took, instead of
			// leaving it resident until the background scavenger gets there.
			inBurst = false
			debug.FreeOSMemory()
			log.Debug("allocation burst over; memory returned to the OS")
		}
		inBurst = inBurst || target >= burst*cfg.Headroom
		if p := Percent(base, inUse, target); p != cur {
			debug.SetGCPercent(p)
			log.Debug("gc percent adjusted", "gogc", p, "in_use_mib", inUse>>20, "alloc_mib_s", int(rate)>>20)
			cur = p
		}
	}
}
