package daemon

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/kioskfleet/kioskfleet/agent/logring"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// Log tail bounds on the agent's side (the hub keeps its own): the ring of recent lines, the
// lines a tail starts with, and the rate it sends at.
const (
	logRingLines   = 2000
	tailBacklog    = 50                     // recent lines sent first, for context
	tailEvery      = 500 * time.Millisecond // at most one batch per interval...
	tailRateLines  = wire.MaxLogLines       // ...of at most this many lines; the rest is dropped (counted)
	tailBatchBytes = wire.MaxLogBatchBytes - 4<<10
)

// logPublisher sends a log batch to the hub (link.Link.PublishLog).
type logPublisher interface {
	PublishLog(payload []byte) error
}

// logTail is the tail the hub asked for, if any: it streams the ring's lines until its deadline.
type logTail struct {
	ring *logring.Ring
	pub  logPublisher
	log  *slog.Logger

	mu    sync.Mutex
	id    string    // the command that started the running (or last) tail
	until time.Time // its deadline (past: none runs)
	kick  chan struct{}
}

func newLogTail(ring *logring.Ring, log *slog.Logger) *logTail {
	return &logTail{ring: ring, log: log, kick: make(chan struct{}, 1)}
}

// start (re)starts the tail for d, or stops it when d is 0. It returns the deadline.
func (t *logTail) start(id string, d time.Duration) time.Time {
	t.mu.Lock()
	t.id, t.until = id, time.Now().Add(d)
	until := t.until
	t.mu.Unlock()
	select {
	case t.kick <- struct{}{}:
	default:
	}
	return until
}

func (t *logTail) state() (string, time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.id, t.until
}

// run streams each tail asked for until ctx ends.
func (t *logTail) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.kick:
		}
		if _, until := t.state(); time.Now().Before(until) {
			t.stream(ctx)
			if id, _ := t.state(); ctx.Err() == nil {
				t.log.Info("log tail ended", "command", id) // after its last batch: not streamed
			}
		}
	}
}

// stream sends the ring's lines, from a short backlog on, every tailEvery, until the deadline
// (which a new start moves); then it sends the end. Lines the link cannot send stay in the ring
// until it can (or are overwritten: counted as dropped). A batch goes out when there are lines,
// when the tail starts or moves, and at the end; the end is sent once, best effort (the hub
// also ends a tail at its deadline).
func (t *logTail) stream(ctx context.Context) {
	after := t.ring.Next() - 1
	after -= min(after, tailBacklog)
	dropped := 0
	var sentID string
	var sentUntil time.Time
	tick := time.NewTicker(tailEvery)
	defer tick.Stop()
	for {
		id, until := t.state()
		left := time.Until(until)
		end := left <= 0
		lines, gone := t.ring.Since(after, tailRateLines)
		dropped += int(gone)
		if end || len(lines) > 0 || dropped > 0 || id != sentID || !until.Equal(sentUntil) {
			b := wire.LogBatch{V: wire.Version, Tail: id, LeftMs: max(left.Milliseconds(), 0), Dropped: dropped, End: end}
			last, size := after, 256 // the batch's own fields take less
			for _, l := range lines {
				if size += len(wire.Encode(l.LogLine)) + 1; size > tailBatchBytes {
					break // many lines near their 1 KiB bound: the rest next time
				}
				b.Lines = append(b.Lines, l.LogLine)
				last = l.N
			}
			if err := t.pub.PublishLog(wire.Encode(b)); err == nil {
				after, dropped, sentID, sentUntil = last, 0, id, until
				// Past the rate, the lines that came in meanwhile beyond one batch are skipped.
				if newest := t.ring.Next() - 1; newest > after+2*tailRateLines {
					dropped += int(newest - after - tailRateLines)
					after = newest - tailRateLines
				}
			}
			// else best effort: the lines stay in the ring for the next interval. Failures
			// are not logged: that would feed the tail its own failures.
		}
		if end {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.kick: // restarted or stopped: the loop reads the new deadline
		case <-tick.C:
		}
	}
}

// cmdLogTail starts, restarts or stops the log tail (api.CmdLogTail). It answers at once with the
// deadline; the lines go on the log channel.
func (a *Agent) cmdLogTail(ctx context.Context, args json.RawMessage) (json.RawMessage, error) {
	d, err := api.ParseLogTail(args)
	if err != nil {
		return nil, err
	}
	id := commandID(ctx)
	until := a.tail.start(id, d)
	if d == 0 {
		a.log.Info("log tail stopped", "command", id)
		return json.Marshal(map[string]any{"stopped": true})
	}
	a.log.Info("log tail started", "command", id, "for", d.String())
	return json.Marshal(map[string]any{"until": until.UTC(), "for": d.String()})
}

// cmdIDKey carries the ID of the command a handler runs in its context.
type cmdIDKey struct{}

// commandID returns the ID of the command whose handler ctx was given to.
func commandID(ctx context.Context) string {
	id, _ := ctx.Value(cmdIDKey{}).(string)
	return id
}
