// Package logtail is the hub's room for kiosks' log tails: a kiosk asked to (the log-tail
// command) streams its log on its log channel (wire.ChLog, QoS 0, best effort), and the hub
// keeps the latest lines of each kiosk in a bounded ring in memory, served by GET
// /api/v1/devices/{id}/log, with a notice on the feed when lines arrive. Nothing is stored: a
// log tail is a look at a kiosk now, not a record. Every batch is decoded strictly, each kiosk's
// lines are rate-bounded, and every line is redacted again (pkg/redact) before anyone sees it.
//
// With several hub replicas each keeps the tails of the kiosks connected to it.
package logtail

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/logging"
	"github.com/kioskfleet/kioskfleet/pkg/redact"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// Config configures the room; zero values are the defaults.
type Config struct {
	Lines   int     // lines kept per kiosk (default 500; a line is at most 1 KiB)
	Devices int     // kiosks whose lines are kept, the least recently streaming dropped first (default 100)
	Rate    float64 // lines per second a kiosk may send on average (default 400)
	Burst   int     // lines it may send at once (default 2 * wire.MaxLogLines)
	// Notify is told when lines of a kiosk arrived or its tail ended (the feed); nil: nobody.
	Notify func(...api.Notice)
	Now    func() time.Time
	Log    *slog.Logger
}

// Bus is the broker's subscription (broker.Broker).
type Bus interface {
	Subscribe(filter string, handler func(deviceID, topic string, payload []byte)) error
}

// Room holds the kiosks' log tails.
type Room struct {
	cfg Config

	mu   sync.Mutex
	devs map[string]*list.Element // of *device
	lru  list.List                // most recently streaming first

	accepted, dropped prometheus.Counter
	rejected          *prometheus.CounterVec
	rejectLog         logging.Throttle // a kiosk can make refusals at will: at most one line a second
}

// device is one kiosk's tail.
type device struct {
	id      string
	lines   []api.LogLine // circular once full
	next    uint64        // N of the next line
	tail    string
	until   time.Time
	dropped int64
	tokens  float64
	filled  time.Time
}

// New returns a room.
func New(cfg Config) *Room {
	if cfg.Lines <= 0 {
		cfg.Lines = 500
	}
	if cfg.Devices <= 0 {
		cfg.Devices = 100
	}
	if cfg.Rate <= 0 {
		cfg.Rate = 400
	}
	if cfg.Burst <= 0 {
		cfg.Burst = 2 * wire.MaxLogLines
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Room{cfg: cfg, devs: map[string]*list.Element{},
		accepted: prometheus.NewCounter(prometheus.CounterOpts{Name: "kf_logtail_lines_total",
			Help: "Log tail lines of kiosks the hub kept."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "kf_logtail_dropped_lines_total",
			Help: "Log tail lines the hub dropped: a kiosk over its rate."}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kf_logtail_rejected_total",
			Help: "Log tail batches refused, by reason (malformed, unknown_version, too_large, bad_topic)."}, []string{"reason"}),
	}
}

// Register registers the room's metrics.
func (r *Room) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{r.accepted, r.dropped, r.rejected} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("logtail: metrics: %w", err)
		}
	}
	return nil
}

// Subscribe has the room receive every kiosk's log channel.
func (r *Room) Subscribe(bus Bus) error {
	if err := bus.Subscribe(wire.Filter(wire.ChLog), r.Receive); err != nil {
		return fmt.Errorf("logtail: subscribe: %w", err)
	}
	return nil
}

// Receive takes one log batch a kiosk published (a Bus handler). A refused batch is counted and
// logged without its content.
func (r *Room) Receive(dev, topic string, payload []byte) {
	if err := r.receive(dev, topic, payload); err != nil {
		reason := "malformed"
		switch {
		case errors.Is(err, wire.ErrUnknownVersion):
			reason = "unknown_version"
		case errors.Is(err, wire.ErrTooLarge):
			reason = "too_large"
		case errors.Is(err, wire.ErrBadTopic):
			reason = "bad_topic"
		}
		r.rejected.WithLabelValues(reason).Inc()
		r.rejectLog.Log(context.Background(), r.cfg.Log, slog.LevelWarn, "log batch rejected", "device", dev, "reason", reason, "err", redact.String(err.Error()))
	}
}

func (r *Room) receive(dev, topic string, payload []byte) error {
	id, ch, err := wire.ParseTopic(topic)
	if err != nil {
		return err
	}
	if ch != wire.ChLog || (dev != "" && id != dev) { // the broker's ACL enforces it for devices
		return fmt.Errorf("%w: %s published to %s", wire.ErrBadTopic, dev, topic)
	}
	b, err := wire.DecodeLogBatch(payload)
	if err != nil {
		return err
	}
	now := r.cfg.Now()
	r.mu.Lock()
	d := r.device(id)
	d.tail = b.Tail
	if b.End {
		d.until = now
	} else {
		d.until = now.Add(time.Duration(b.LeftMs) * time.Millisecond)
	}
	d.dropped += int64(b.Dropped)
	// Token bucket: Rate lines a second, Burst at once; the rest is dropped, counted.
	d.tokens = min(d.tokens+now.Sub(d.filled).Seconds()*r.cfg.Rate, float64(r.cfg.Burst))
	d.filled = now
	kept := 0
	for _, l := range b.Lines {
		if d.tokens < 1 {
			d.dropped++
			r.dropped.Inc()
			continue
		}
		d.tokens--
		d.add(api.LogLine{At: time.UnixMilli(l.TS).UTC(), Received: now, Level: l.Level, Text: redact.String(l.Text)}, r.cfg.Lines)
		kept++
	}
	r.mu.Unlock()
	r.accepted.Add(float64(kept))
	if r.cfg.Notify != nil {
		r.cfg.Notify(api.Notice{Kind: api.NoticeLog, DeviceID: id, At: now})
	}
	return nil
}

// device returns id's tail, made (and the least recent dropped past Devices) if need be, and
// marks it the most recent. r.mu is held.
func (r *Room) device(id string) *device {
	if e, ok := r.devs[id]; ok {
		r.lru.MoveToFront(e)
		return e.Value.(*device)
	}
	d := &device{id: id, next: 1, filled: r.cfg.Now(), tokens: float64(r.cfg.Burst)}
	r.devs[id] = r.lru.PushFront(d)
	for r.lru.Len() > r.cfg.Devices {
		old := r.lru.Back()
		r.lru.Remove(old)
		delete(r.devs, old.Value.(*device).id)
	}
	return d
}

func (d *device) add(l api.LogLine, capacity int) {
	l.N = d.next
	if len(d.lines) < capacity {
		d.lines = append(d.lines, l)
	} else {
		d.lines[(d.next-1)%uint64(capacity)] = l
	}
	d.next++
}

// Lines returns the lines of id's tails the room holds with N > after, oldest first, and the
// state of its latest tail.
func (r *Room) Lines(id string, after uint64) api.DeviceLog {
	out := api.DeviceLog{DeviceID: id, Lines: []api.LogLine{}}
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.devs[id]
	if !ok {
		return out
	}
	d := e.Value.(*device)
	out.Next, out.Tail, out.Until, out.Dropped = d.next-1, d.tail, d.until, d.dropped
	out.Active = r.cfg.Now().Before(d.until)
	if after >= d.next {
		after = 0 // a cursor from before the hub restarted (or forgot the kiosk): from the start
	}
	for num := max(d.next-uint64(len(d.lines)), after+1); num < d.next; num++ {
		out.Lines = append(out.Lines, d.lines[(num-1)%uint64(r.cfg.Lines)])
	}
	return out
}
