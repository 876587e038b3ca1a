package fleetsim

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
)

// ViewersConfig describes live console viewers of a hub's change notices (GET api.FeedPath,
// server-sent events), as the console's live pages follow them: each viewer holds a stream of its
// own, on a TLS connection of its own, and opens it again when it ends or breaks (the hub was
// killed and restarts), after a short bounded backoff while the hub is away.
type ViewersConfig struct {
	HubURL  string
	HubCA   *x509.CertPool // trusted for the hub's HTTPS (nil: the system's roots)
	Token   string         // a staff or admin bearer token
	Viewers int
	// Wait after a failed attempt to open a stream, doubled at each failure up to MaxBackoff
	// (defaults 100 ms and 1 s), with jitter.
	MinBackoff, MaxBackoff time.Duration
	// Subscribed, when set, is called once every viewer's stream has been opened once (the hub
	// has subscribed them all).
	Subscribed func()
	// OnNotice, when set, is told of each notice viewer i (0..Viewers-1) receives, on that
	// viewer's goroutine: it must return quickly.
	OnNotice func(i int, n api.Notice)
	Log      *slog.Logger
}

// Validate reports every problem of the configuration at once.
func (c ViewersConfig) Validate() error {
	var errs []error
	if c.HubURL == "" {
		errs = append(errs, errors.New("hub: required"))
	}
	if c.Token == "" {
		errs = append(errs, errors.New("token: required (a staff or admin bearer token)"))
	}
	if c.Viewers < 1 {
		errs = append(errs, fmt.Errorf("viewers: %d: want at least 1", c.Viewers))
	}
	if c.MinBackoff < 0 || c.MaxBackoff < 0 || (c.MaxBackoff > 0 && c.MinBackoff > c.MaxBackoff) {
		errs = append(errs, fmt.Errorf("backoff: %s..%s: want 0 <= min <= max", c.MinBackoff, c.MaxBackoff))
	}
	return errors.Join(errs...)
}

// ViewersResult is what the viewers measured. The lag of a notice is its arrival at a viewer
// minus the hub's time of the change it announces (api.Notice.At, hub clock: run on the hub's
// machine). "The storm" is what follows the first broken stream (the hub went away), or the whole
// run if none broke.
type ViewersResult struct {
	Viewers    int     `json:"viewers"`
	Subscribed int     `json:"subscribed"` // viewers whose stream the hub opened at least once
	Seconds    float64 `json:"seconds"`
	Updates    uint64  `json:"updates"` // notices received, all viewers
	Resyncs    uint64  `json:"resyncs"` // of them, resyncs: the viewer had lost notices (too slow)
	LagP50Ms   float64 `json:"lagP50Ms"`
	LagP99Ms   float64 `json:"lagP99Ms"`
	LagMaxMs   float64 `json:"lagMaxMs"`
	// From the first broken stream on.
	HubLostAt     time.Time `json:"hubLostAt,omitzero"`
	StormUpdates  uint64    `json:"stormUpdates"`
	StormLagP50Ms float64   `json:"stormLagP50Ms"`
	StormLagP99Ms float64   `json:"stormLagP99Ms"`
	StormLagMaxMs float64   `json:"stormLagMaxMs"`
	// Streams: opened again after one ended (Reconnects), cut without the hub ending them (Broken:
	// it died), attempts that reached no hub (Refused: it was away), and errors: answers other
	// than 200 and streams that were not of notices.
	Reconnects uint64 `json:"reconnects"`
	Broken     uint64 `json:"broken"`
	Refused    uint64 `json:"refused"`
	Errors     uint64 `json:"errors"`
	// Until up to date: the kiosks whose presence changed in the storm (the hub's record of their
	// presence, read at the end: stop the viewers before the kiosks go away), and for each viewer
	// the time from the storm's last presence change (hub clock) until it had the latest change
	// of every one of them: its notice, or reading everything again after it (a stream opened, a
	// resync). NotUpToDate viewers had not had all of them by the end.
	StormKiosks   int     `json:"stormKiosks"`
	UpToDateP50Ms float64 `json:"upToDateP50Ms"`
	UpToDateMaxMs float64 `json:"upToDateMaxMs"`
	NotUpToDate   int     `json:"notUpToDate"`
}

// RunViewers runs cfg.Viewers viewers until ctx ends, then reads every kiosk's presence from the
// hub and returns what they measured.
func RunViewers(ctx context.Context, cfg ViewersConfig) (ViewersResult, error) {
	if err := cfg.Validate(); err != nil {
		return ViewersResult{}, err
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = max(time.Second, cfg.MinBackoff)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	start := time.Now()
	ids := &kioskIndex{m: map[string]int{}}
	vs := make([]*viewer, cfg.Viewers)
	var opened atomic.Int64
	subscribed := func() {
		if opened.Add(1) == int64(cfg.Viewers) && cfg.Subscribed != nil {
			cfg.Subscribed()
		}
	}
	var wg sync.WaitGroup
	for i := range vs {
		tr := api.Transport(cfg.HubCA)
		defer tr.CloseIdleConnections()
		vs[i] = &viewer{ids: ids, c: &api.Client{BaseURL: cfg.HubURL, Token: cfg.Token, HTTP: &http.Client{Transport: tr}}}
		if cfg.OnNotice != nil {
			vs[i].onNotice = func(n api.Notice) { cfg.OnNotice(i, n) }
		}
		wg.Go(func() { vs[i].run(ctx, cfg, subscribed) })
	}
	wg.Wait()
	secs := time.Since(start).Seconds()

	tr := api.Transport(cfg.HubCA)
	defer tr.CloseIdleConnections()
	c := &api.Client{BaseURL: cfg.HubURL, Token: cfg.Token, HTTP: &http.Client{Transport: tr, Timeout: time.Minute}}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	devs, err := c.ListDevices(rctx, api.DeviceQuery{})
	if err != nil {
		return ViewersResult{}, fmt.Errorf("viewers: the hub's presence of every kiosk, at the end: %w", err)
	}
	res := summarize(vs, ids, devs, start)
	res.Seconds = secs
	return res, nil
}

// viewer is one live viewer; its fields are its goroutine's until RunViewers reads them.
type viewer struct {
	c        *api.Client
	ids      *kioskIndex
	onNotice func(api.Notice) // nil: none

	opens, broken, refused, errors, updates, resyncs uint64

	lags      []time.Duration // of every timed notice received, in order
	stormFrom int             // lags[stormFrom:] arrived after its first broken stream
	brokeAt   int64           // Unix ns of its first broken stream (0: none)
	rereads   []int64         // Unix ns of each stream opened and resync received, in order: the console reads everything again then
	kiosks    []seen          // by kioskIndex: the presence notice of the latest change of each kiosk
}

// seen is a presence notice as a viewer received it.
type seen struct {
	at   int64 // the change, Unix ns (hub clock)
	recv int64 // its arrival, Unix ns; 0: none
}

// run opens the stream and reads it, again and again, until ctx ends; subscribed is called at its
// first open.
func (v *viewer) run(ctx context.Context, cfg ViewersConfig, subscribed func()) {
	backoff := cfg.MinBackoff
	for ctx.Err() == nil {
		body, err := v.c.OpenFeed(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if _, ok := errors.AsType[*api.Error](err); ok {
				v.errors++
				cfg.Log.Warn("viewer: the hub refused the stream", "err", err)
			} else {
				v.refused++
				cfg.Log.Debug("viewer: no hub", "err", err)
			}
			t := time.NewTimer(backoff/2 + rand.N(backoff/2+1))
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(2*backoff, cfg.MaxBackoff)
			continue
		}
		backoff = cfg.MinBackoff
		v.opens++
		v.rereads = append(v.rereads, time.Now().UnixNano())
		if v.opens == 1 {
			subscribed()
		}
		err = api.ReadFeed(body, v.receive)
		body.Close()
		switch {
		case ctx.Err() != nil:
			return
		case err == nil: // the hub ended the stream (its hold time)
		case errors.Is(err, api.ErrBadFeed):
			v.errors++
			cfg.Log.Warn("viewer: not a stream of notices", "err", err)
		default:
			v.broken++
			if v.brokeAt == 0 {
				v.brokeAt, v.stormFrom = time.Now().UnixNano(), len(v.lags)
			}
			cfg.Log.Debug("viewer: stream broken", "err", err)
		}
	}
}

// receive records a notice: its lag, and for a presence notice the kiosk's state it announces.
func (v *viewer) receive(n api.Notice) {
	now := time.Now()
	if v.onNotice != nil {
		v.onNotice(n)
	}
	v.updates++
	if !n.At.IsZero() {
		v.lags = append(v.lags, now.Sub(n.At))
	}
	switch n.Kind {
	case api.NoticeResync:
		v.resyncs++
		v.rereads = append(v.rereads, now.UnixNano())
	case api.NoticePresence:
		if n.DeviceID == "" {
			return
		}
		i := v.ids.index(n.DeviceID)
		if i >= len(v.kiosks) {
			v.kiosks = slices.Grow(v.kiosks, i+1-len(v.kiosks))[:i+1]
		}
		if at := n.At.UnixNano(); v.kiosks[i].recv == 0 || at >= v.kiosks[i].at {
			v.kiosks[i] = seen{at: at, recv: now.UnixNano()}
		}
	}
}

// upToDate returns when v had the latest change of every kiosk in storm as the hub records it
// (Unix ns), or false if it had not by the end: the first of its notice (or one of a later
// change), and reading everything again after it (its stream opened or a resync: the hub has
// subscribed the viewer by then, so a change not yet committed comes as a notice).
func (v *viewer) upToDate(storm []fleet.Device) (int64, bool) {
	var last int64
	for _, d := range storm {
		p := d.PresenceAt.UnixNano()
		at := int64(-1)
		if i, ok := v.ids.lookup(d.ID); ok && i < len(v.kiosks) && v.kiosks[i].recv != 0 && v.kiosks[i].at >= p {
			at = v.kiosks[i].recv
		}
		if j, _ := slices.BinarySearch(v.rereads, p); j < len(v.rereads) && (at < 0 || v.rereads[j] < at) {
			at = v.rereads[j]
		}
		if at < 0 {
			return 0, false
		}
		last = max(last, at)
	}
	return last, true
}

// summarize puts the viewers' records together; devs is the hub's record of every kiosk at the
// end, start when the viewers started.
func summarize(vs []*viewer, ids *kioskIndex, devs []fleet.Device, start time.Time) ViewersResult {
	res := ViewersResult{Viewers: len(vs)}
	var lags, storm []time.Duration
	var lost int64
	for _, v := range vs {
		if v.opens > 0 {
			res.Subscribed++
			res.Reconnects += v.opens - 1
		}
		res.Broken += v.broken
		res.Refused += v.refused
		res.Errors += v.errors
		res.Updates += v.updates
		res.Resyncs += v.resyncs
		lags = append(lags, v.lags...)
		if v.brokeAt != 0 && (lost == 0 || v.brokeAt < lost) {
			lost = v.brokeAt
		}
	}
	from := start
	if lost != 0 {
		res.HubLostAt = time.Unix(0, lost)
		from = res.HubLostAt
	}
	for _, v := range vs {
		if lost == 0 {
			storm = append(storm, v.lags...)
		} else if v.brokeAt != 0 {
			storm = append(storm, v.lags[v.stormFrom:]...)
		}
	}
	res.StormUpdates = uint64(len(storm))
	res.LagP50Ms, res.LagP99Ms, res.LagMaxMs = pct(lags, 0.5), pct(lags, 0.99), pct(lags, 1)
	res.StormLagP50Ms, res.StormLagP99Ms, res.StormLagMaxMs = pct(storm, 0.5), pct(storm, 0.99), pct(storm, 1)

	var changed []fleet.Device
	var end time.Time
	for _, d := range devs {
		if !d.PresenceAt.Before(from) {
			changed = append(changed, d)
			if d.PresenceAt.After(end) {
				end = d.PresenceAt
			}
		}
	}
	res.StormKiosks = len(changed)
	if len(changed) == 0 {
		return res
	}
	var upToDate []time.Duration
	for _, v := range vs {
		if at, ok := v.upToDate(changed); ok {
			upToDate = append(upToDate, time.Unix(0, at).Sub(end))
		} else {
			res.NotUpToDate++
		}
	}
	res.UpToDateP50Ms, res.UpToDateMaxMs = pct(upToDate, 0.5), pct(upToDate, 1)
	return res
}

// kioskIndex numbers the kiosks the viewers hear of, so that each viewer keeps its view of them
// in a slice rather than a map of its own.
type kioskIndex struct {
	mu sync.RWMutex
	m  map[string]int
}

func (x *kioskIndex) lookup(id string) (int, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	i, ok := x.m[id]
	return i, ok
}

func (x *kioskIndex) index(id string) int {
	if i, ok := x.lookup(id); ok {
		return i
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	i, ok := x.m[id]
	if !ok {
		i = len(x.m)
		x.m[id] = i
	}
	return i
}
