package proxytest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// Kind is a kind of network fault.
type Kind int

// The faults a Proxy can apply.
const (
	Latency   Kind = iota // fixed delay plus jitter on every chunk
	Bandwidth             // bytes/s cap per direction
	Reset                 // every connection aborted with RST at once
	Blackhole             // nothing passes; connections closed at the end
	numKinds
)

func (k Kind) String() string {
	return [...]string{"latency", "bandwidth", "reset", "blackhole"}[k]
}

// Fault is one fault of a schedule: applied, held for Hold, then restored, followed by Gap of a
// clean network.
type Fault struct {
	Kind        Kind
	Latency     time.Duration // Latency
	Jitter      time.Duration // Latency
	BytesPerSec int           // Bandwidth
	Hold        time.Duration
	Gap         time.Duration
}

func (f Fault) String() string {
	s := f.Kind.String()
	switch f.Kind {
	case Latency:
		s += fmt.Sprintf(" %s±%s", f.Latency, f.Jitter)
	case Bandwidth:
		s += fmt.Sprintf(" %dB/s", f.BytesPerSec)
	}
	return fmt.Sprintf("%s for %s, then %s clean", s, f.Hold, f.Gap)
}

// Schedule returns n faults drawn from seed: the same seed gives the same schedule, so a failing
// run can be replayed. Faults hold for 100 ms..1.5 s with 50..500 ms of clean network between.
func Schedule(seed uint64, n int) []Fault {
	r := rand.New(rand.NewPCG(seed, 0x6b66))
	dur := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(r.Int64N(int64(hi-lo))) }
	fs := make([]Fault, n)
	for i := range fs {
		f := Fault{Kind: Kind(r.IntN(int(numKinds))), Hold: dur(100*time.Millisecond, 1500*time.Millisecond),
			Gap: dur(50*time.Millisecond, 500*time.Millisecond)}
		switch f.Kind {
		case Latency:
			f.Latency, f.Jitter = dur(5*time.Millisecond, 300*time.Millisecond), dur(time.Millisecond, 200*time.Millisecond)
		case Bandwidth:
			f.BytesPerSec = 1<<10 + r.IntN(63<<10) // 1..64 KiB/s
		case Reset:
			f.Hold = 0
		}
		fs[i] = f
	}
	return fs
}

// Apply starts fault f; Restore ends it.
func (p *Proxy) Apply(f Fault) {
	switch f.Kind {
	case Latency:
		p.SetLatency(f.Latency, f.Jitter)
	case Bandwidth:
		p.SetBandwidth(f.BytesPerSec)
	case Reset:
		p.Reset()
	case Blackhole:
		p.Blackhole()
	}
}

// Play applies faults one after another (Apply, Hold, Restore, Gap), calling each(i, f) as fault
// i starts if each is not nil. It returns early, with the network restored, when ctx ends.
func (p *Proxy) Play(ctx context.Context, faults []Fault, each func(i int, f Fault)) error {
	defer p.Restore()
	for i, f := range faults {
		if each != nil {
			each(i, f)
		}
		p.Apply(f)
		if err := sleep(ctx, f.Hold); err != nil {
			return err
		}
		p.Restore()
		if err := sleep(ctx, f.Gap); err != nil {
			return err
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
