package logging

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// Throttle passes at most one record per Interval (default 1 s) and counts the ones it drops,
// adding "dropped=N" to the next it passes: for what an attacker can make happen at will (a
// refused connection), so that a flood of them does not become a flood of log lines. The zero
// value is ready to use; it is safe for concurrent use.
type Throttle struct {
	Interval time.Duration
	next     atomic.Int64 // unix nanoseconds before which records are dropped
	dropped  atomic.Int64
}

// Log logs msg with attrs at level through l, unless a record passed less than Interval ago.
func (t *Throttle) Log(ctx context.Context, l *slog.Logger, level slog.Level, msg string, attrs ...any) {
	now := time.Now().UnixNano()
	next := t.next.Load()
	iv := t.Interval
	if iv <= 0 {
		iv = time.Second
	}
	if now < next || !t.next.CompareAndSwap(next, now+int64(iv)) {
		t.dropped.Add(1)
		return
	}
	if n := t.dropped.Swap(0); n > 0 {
		attrs = append(attrs, "dropped", n)
	}
	l.Log(ctx, level, msg, attrs...)
}
