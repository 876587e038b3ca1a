// Package feed fans out notices that kiosks changed (presence, committed records) to the hub's
// live viewers: the fleet console's live pages, through GET /api/v1/feed. A notice says which
// kiosk changed and how, not the change: a viewer reads what it shows through the API, in its
// own region scope. Publishing never blocks the hub's ingest: a viewer that does not keep up
// loses notices and is told so (Sub.Lost), to read everything again.
package feed

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// ErrClosed is returned by Subscribe once the feed is closed (the hub is stopping).
var ErrClosed = errors.New("events: feed closed")

// Feed is the fan-out. The zero value is not usable: call New.
type Feed struct {
	buf int
	now func() time.Time

	mu     sync.Mutex
	subs   map[*Sub]struct{}
	closed bool
	lost   atomic.Int64 // notices dropped for slow subscribers, in all
}

// New returns a feed whose subscribers each hold up to buf notices not yet read.
func New(buf int, now func() time.Time) *Feed {
	if buf <= 0 {
		buf = 256
	}
	if now == nil {
		now = time.Now
	}
	return &Feed{buf: buf, now: now, subs: map[*Sub]struct{}{}}
}

// Sub is one subscriber. Read C until it is closed (the feed closed); Close when done.
type Sub struct {
	C    <-chan api.Notice
	c    chan api.Notice
	lost atomic.Bool
	f    *Feed
}

// Subscribe adds a subscriber that holds up to the feed's buf notices not yet read.
func (f *Feed) Subscribe() (*Sub, error) { return f.SubscribeBuffer(f.buf) }

// SubscribeBuffer adds a subscriber that holds up to buf notices not yet read (the feed's buf
// when buf <= 0): one that must not lose the notices of a whole group commit (a notice per kiosk
// in it, hundreds or thousands at once) while it reads them one by one.
func (f *Feed) SubscribeBuffer(buf int) (*Sub, error) {
	if buf <= 0 {
		buf = f.buf
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, ErrClosed
	}
	c := make(chan api.Notice, buf)
	s := &Sub{C: c, c: c, f: f}
	f.subs[s] = struct{}{}
	return s, nil
}

// Close removes the subscriber. Its channel is left to the garbage collector.
func (s *Sub) Close() {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	delete(s.f.subs, s)
}

// Lost reports whether notices were dropped since the last call, because the subscriber did
// not read them in time.
func (s *Sub) Lost() bool { return s.lost.Swap(false) }

// Publish hands each notice to every subscriber, without waiting: a full subscriber loses it.
func (f *Feed) Publish(evs ...api.Notice) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for s := range f.subs {
		for _, ev := range evs {
			select {
			case s.c <- ev:
			default:
				s.lost.Store(true)
				f.lost.Add(1)
			}
		}
	}
}

// Lost returns how many notices were dropped for slow subscribers.
func (f *Feed) Lost() int64 { return f.lost.Load() }

// Subscribers returns how many subscribers there are.
func (f *Feed) Subscribers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}

// Close closes every subscriber's channel and refuses new subscribers: streams end, so that the
// hub's HTTP server can shut down.
func (f *Feed) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	f.closed = true
	for s := range f.subs {
		close(s.c)
		delete(f.subs, s)
	}
}

// Committed publishes one records notice per kiosk of a committed group (ingest.Hook).
func (f *Feed) Committed(batches []store.Batch) {
	now := f.now()
	seen := map[string]bool{}
	var evs []api.Notice
	for _, b := range batches {
		if !seen[b.DeviceID] {
			seen[b.DeviceID] = true
			evs = append(evs, api.Notice{Kind: api.NoticeRecords, DeviceID: b.DeviceID, At: now})
		}
	}
	f.Publish(evs...)
}

// PresenceWritten publishes a presence notice per update written (ingest.PresenceHook).
func (f *Feed) PresenceWritten(us []store.PresenceUpdate) {
	evs := make([]api.Notice, len(us))
	for i, u := range us {
		evs[i] = api.Notice{Kind: api.NoticePresence, DeviceID: u.DeviceID, Online: u.Online, At: u.At}
	}
	f.Publish(evs...)
}

// Register registers the feed's metrics: kf_feed_subscribers, kf_feed_lost_total.
func (f *Feed) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "kf_feed_subscribers",
			Help: "Live viewers following the hub's change notices (console pages, the alert engine)."},
			func() float64 { return float64(f.Subscribers()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "kf_feed_lost_total",
			Help: "Change notices dropped for subscribers that did not keep up (each then reads everything again)."},
			func() float64 { return float64(f.Lost()) }),
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
