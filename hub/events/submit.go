package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// MaxBatch is the most events one Submit takes.
const MaxBatch = 500

var (
	// ErrClosed is returned for events offered after Run returned.
	ErrClosed = errors.New("events: closed")
	// ErrBatch is returned for a batch of more than MaxBatch events.
	ErrBatch = fmt.Errorf("events: at most %d events per batch", MaxBatch)
)

// OverloadError refuses a batch that the hub cannot take now: its queue is full, the committer
// is behind (more waits than it commits in MaxWait), or the client sends faster than its rate.
// Nothing of the batch was stored; it may be sent again after RetryAfter.
type OverloadError struct {
	Reason     string // queue_full, behind or rate_limited
	RetryAfter time.Duration
}

func (e *OverloadError) Error() string {
	return fmt.Sprintf("events: overloaded (%s), retry after %s", e.Reason, e.RetryAfter)
}

// pending is one Submit's events waiting for the committer.
type pending struct {
	evs  []store.Event
	news []bool
	err  error
	done chan struct{}
	at   time.Time // when Submit began
}

// Submit validates a batch of events that o sent, stores the valid ones with group commit and
// returns once they are durable: how many were new, how many duplicates, and every refused event
// with its field errors. A batch the hub cannot take now is refused whole with an
// *OverloadError, before anything is stored.
func (ev *Events) Submit(ctx context.Context, o Origin, raws []json.RawMessage) (api.EventsResult, error) {
	res := api.EventsResult{}
	if len(raws) > MaxBatch {
		return res, ErrBatch
	}
	if wait := ev.limits.take(o.ClientID, len(raws), ev.cfg.Now()); wait > 0 {
		ev.m.overload.WithLabelValues("rate_limited").Inc()
		return res, &OverloadError{Reason: "rate_limited", RetryAfter: wait}
	}
	recv := ev.cfg.Now()
	p := &pending{done: make(chan struct{}), at: time.Now()}
	for i, raw := range raws {
		e, f := ev.Decode(o, raw, recv)
		if f != nil {
			ev.m.rejected.Inc()
			res.Rejected = append(res.Rejected, api.EventRejected{Index: i, ID: idOf(raw), Fields: f})
			continue
		}
		p.evs = append(p.evs, e)
	}
	if len(p.evs) == 0 {
		return res, nil
	}
	if err := ev.enqueue(p); err != nil {
		ev.limits.refund(o.ClientID, len(raws))
		return res, err
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		return res, ctx.Err() // the events are committed all the same; nobody waits for the answer
	}
	if p.err != nil {
		if errors.As(p.err, new(*OverloadError)) {
			ev.limits.refund(o.ClientID, len(raws))
		}
		return res, p.err
	}
	for _, isNew := range p.news {
		if isNew {
			res.Accepted++
		} else {
			res.Duplicates++
		}
	}
	return res, nil
}

// idOf returns a refused event's ID to quote back, if it has a plausible one.
func idOf(raw json.RawMessage) string {
	var e struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(raw, &e) != nil || !idRE.MatchString(e.ID) {
		return ""
	}
	return clip(e.ID)
}

// Admit refuses a batch before it is read (hub/httpapi's gate) when the queue is at its bound
// already (see enqueue), so that what a spike sends beyond the hub's capacity is answered 429
// without costing its reading and validation, and the batches that are taken get the CPU.
func (ev *Events) Admit() error {
	ev.qmu.Lock()
	defer ev.qmu.Unlock()
	return ev.overloaded(1)
}

// enqueue hands p to the committer unless that would hold more than Queue events, or more than
// the committer commits in MaxWait (and a full group).
func (ev *Events) enqueue(p *pending) error {
	ev.qmu.Lock()
	defer ev.qmu.Unlock()
	if ev.closed {
		return ErrClosed
	}
	if err := ev.overloaded(len(p.evs)); err != nil {
		return err
	}
	ev.queued += len(p.evs)
	ev.q = append(ev.q, p)
	if len(ev.q) == 1 {
		select {
		case ev.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// overloaded returns the *OverloadError that refuses n more events, nil if the queue takes them.
// ev.qmu is held.
func (ev *Events) overloaded(n int) error {
	if ev.queued+n > ev.cfg.Queue {
		ev.m.overload.WithLabelValues("queue_full").Inc()
		return &OverloadError{Reason: "queue_full", RetryAfter: time.Second}
	}
	// What waits beyond what the committer commits in MaxWait would wait longer than that:
	// refused, to be sent again later.
	if ev.queued+n > ev.bound() {
		ev.m.overload.WithLabelValues("behind").Inc()
		return &OverloadError{Reason: "behind", RetryAfter: time.Second}
	}
	return nil
}

// bound is how many events may wait for the committer: what it commits in MaxWait, at least a
// batch; a full group while its rate is not known yet. ev.qmu is held.
func (ev *Events) bound() int {
	if ev.rate == 0 {
		return ev.cfg.MaxEvents
	}
	return max(min(MaxBatch, ev.cfg.MaxEvents), int(ev.rate*ev.cfg.MaxWait.Seconds()))
}

// take removes up to MaxEvents events' worth of pending submissions from the queue (at least
// one). Unless it drains the queue at the end, it first refuses what has waited MaxWait while
// a group or the bound waits (overload: the committer's rate is lower than the queue's bound took
// it to be): such a submission would be answered late, and is answered 429 at once instead,
// nothing of it stored, so that what the hub accepts is answered within about MaxWait and a
// commit.
func (ev *Events) take(draining bool) []*pending {
	ev.qmu.Lock()
	defer ev.qmu.Unlock()
	late := time.Now().Add(-ev.cfg.MaxWait)
	for !draining && len(ev.q) > 0 && ev.queued >= min(ev.cfg.MaxEvents, ev.bound()) && ev.q[0].at.Before(late) {
		p := ev.q[0]
		ev.q = ev.q[1:]
		ev.queued -= len(p.evs)
		ev.m.overload.WithLabelValues("behind").Inc()
		p.err = &OverloadError{Reason: "behind", RetryAfter: time.Second}
		close(p.done)
	}
	n, i := 0, 0
	for i < len(ev.q) && (i == 0 || n+len(ev.q[i].evs) <= ev.cfg.MaxEvents) {
		n += len(ev.q[i].evs)
		i++
	}
	group := ev.q[:i:i]
	for _, p := range group {
		ev.m.queueWait.Observe(time.Since(p.at).Seconds())
	}
	ev.q = ev.q[i:]
	ev.queued -= n
	return group
}

// Queued returns how many events wait for the committer.
func (ev *Events) Queued() int { return ev.queuedEvents() }

func (ev *Events) queuedEvents() int {
	ev.qmu.Lock()
	defer ev.qmu.Unlock()
	return ev.queued
}

// commitLoop commits queued submissions in groups: it waits for a first one, gathers for Window
// (or until MaxEvents wait), commits them in one transaction and wakes their submitters. When ctx
// ends it refuses new submissions and commits what is queued.
func (ev *Events) commitLoop(ctx context.Context) {
	for {
		select {
		case <-ev.wake:
		case <-ctx.Done():
			ev.qmu.Lock()
			ev.closed = true
			ev.qmu.Unlock()
			for ev.queuedEvents() > 0 || ev.hasQueued() {
				ev.commit(context.WithoutCancel(ctx), ev.take(true), time.Time{})
			}
			return
		}
		if ev.queuedEvents() < ev.cfg.MaxEvents {
			t := time.NewTimer(ev.cfg.Window)
			select {
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
		}
		// Back to back while submissions wait: each commit's rate counts the time since the one
		// before ended (what it took to wake their submitters and take the group too).
		var prev time.Time
		for ev.hasQueued() {
			prev = ev.commit(context.WithoutCancel(ctx), ev.take(false), prev)
		}
	}
}

func (ev *Events) hasQueued() bool {
	ev.qmu.Lock()
	defer ev.qmu.Unlock()
	return len(ev.q) > 0
}

// commit stores a group in one transaction; when that fails, each submission alone, so that one
// the store refuses does not fail the others. prev is when the commit before ended if the
// committer went on at once, else zero; commit returns when it ended.
func (ev *Events) commit(ctx context.Context, group []*pending, prev time.Time) time.Time {
	if len(group) == 0 {
		return time.Time{}
	}
	var all []store.Event
	for _, p := range group {
		all = append(all, p.evs...)
	}
	start := time.Now()
	news, err := ev.st.CommitEvents(ctx, all)
	if err == nil {
		end := time.Now()
		ev.m.commitTime.Observe(end.Sub(start).Seconds())
		if prev.IsZero() {
			prev = start
		}
		ev.observeRate(len(all), end.Sub(prev))
		for _, p := range group {
			p.news, news = news[:len(p.evs)], news[len(p.evs):]
			ev.finish(p, nil)
		}
		return end
	}
	ev.log.Warn("event commit failed", "events", len(all), "submissions", len(group), "err", err)
	if len(group) == 1 {
		ev.finish(group[0], err)
		return time.Time{}
	}
	for _, p := range group {
		ev.commit(ctx, []*pending{p}, time.Time{})
	}
	return time.Time{}
}

func (ev *Events) finish(p *pending, err error) {
	if err != nil {
		ev.m.commitErrors.Inc()
		p.err = fmt.Errorf("events: commit: %w", err)
	} else {
		for _, n := range p.news {
			if n {
				ev.m.accepted.Inc()
			} else {
				ev.m.duplicates.Inc()
			}
		}
	}
	close(p.done)
}

// refund gives back tokens of a batch that was refused after all.
func (l *limiter) refund(client string, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.buckets[client]; b != nil {
		b.tokens = math.Min(l.burst, b.tokens+float64(n))
	}
}

// limiter is a token bucket per client: Rate events a second, up to Burst at once.
type limiter struct {
	rate, burst float64
	mu          sync.Mutex
	buckets     map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

// take takes n tokens of client's bucket and returns 0, or how long until it could.
func (l *limiter) take(client string, n int, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[client]
	if b == nil {
		if len(l.buckets) > 10_000 { // clients are registered: this bounds a misconfiguration only
			clear(l.buckets)
		}
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[client] = b
	}
	b.tokens = math.Min(l.burst, b.tokens+now.Sub(b.at).Seconds()*l.rate)
	b.at = now
	if b.tokens >= float64(n) {
		b.tokens -= float64(n)
		return 0
	}
	wait := time.Duration((float64(n) - b.tokens) / l.rate * float64(time.Second))
	return max(wait, time.Second).Truncate(time.Second)
}

// observeRate folds a commit of n events that took d (since the commit before, when the
// committer went on at once) into the committer's rate. Only groups of at least a tenth of
// MaxEvents count: a small group's time is the disk's sync, not what the committer can do.
func (ev *Events) observeRate(n int, d time.Duration) {
	if n < ev.cfg.MaxEvents/10 || d <= 0 {
		return
	}
	r := float64(n) / d.Seconds()
	ev.qmu.Lock()
	defer ev.qmu.Unlock()
	if ev.rate == 0 {
		ev.rate = r
	} else {
		ev.rate = 0.8*ev.rate + 0.2*r
	}
}
