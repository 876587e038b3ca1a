// Package security counts the refusals at the hub's doors and writes them to the store's security
// events (store.SecurityEvents), beside the journal verifier's (hub/journal): password logins
// refused and accounts locked (hub/identity), MQTT connections and packets the broker refused for
// cause (ACL, TLS, CONNECT; hub/broker), sessions cut and devices revoked, staff denied by the API.
//
// Anyone can make refusals by the thousand a second (issue 16's floods): each is counted in
// memory, merged per kind, kiosk, staff member, source address and minute, and written every
// FlushEvery in one transaction, so that a flood costs one row per key and minute, never a write
// per refusal. The keys of a minute are bounded (MaxKeys): past it, a new key's count goes to its
// kind's overflow row (source "*", no kiosk, no staff member). The rows are kept for Retention,
// and at most Keep of them.
package security

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

// Kinds of the refusals the hub counts (the identity provider names its own: identity.Login*).
const (
	ACLDenied      = "mqtt.acl-denied"      // a publish, subscribe or Will outside the device's own topics
	ConnectRefused = "mqtt.connect-refused" // CONNECT refused: client ID not the certificate's device, device not authorized
	TLSRefused     = "tls.refused"          // TLS handshake failed: no, expired or foreign certificate
	CertRefused    = "tls.cert-refused"     // the certificate of a revoked device, or one replaced
	SessionCut     = "mqtt.session-cut"     // a live session cut: its device revoked or its certificate replaced
	DeviceRevoked  = "device.revoked"       // a staff member revoked a kiosk
	APIForbidden   = "api.forbidden"        // a staff member's action refused: outside their role or region scope
	// Overflow is the source of the row a kind's counts go to past MaxKeys in a minute.
	Overflow = "*"
)

// Store is what the recorder needs of the hub's store.
type Store interface {
	AddSecurityEvents(ctx context.Context, events []store.SecurityEvent) error
	PruneSecurityEvents(ctx context.Context, before time.Time, keep int) (int64, error)
}

// Config configures a Recorder. Zero values take the defaults shown.
type Config struct {
	Store      Store
	FlushEvery time.Duration // 10s
	MaxKeys    int           // 1000 keys (kind, kiosk, staff, source) a minute
	Retention  time.Duration // 90 days
	Keep       int           // 1,000,000 rows
	Now        func() time.Time
	Log        *slog.Logger
}

type key struct {
	kind, device, staff, source string
	minute                      int64
}

// Recorder counts refusals and writes them. Note is safe for concurrent use and never blocks on
// the store; Run writes.
type Recorder struct {
	cfg Config

	mu      sync.Mutex
	minute  int64                        // the minute seen counts
	seen    map[key]struct{}             // this minute's keys, bounded by MaxKeys
	pending map[key]*store.SecurityEvent // counted, not yet written

	noted, folded, lost prometheus.Counter
}

// New returns a recorder; run it with Run.
func New(cfg Config) *Recorder {
	if cfg.FlushEvery <= 0 {
		cfg.FlushEvery = 10 * time.Second
	}
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = 1000
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 90 * 24 * time.Hour
	}
	if cfg.Keep <= 0 {
		cfg.Keep = 1_000_000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Recorder{cfg: cfg, seen: map[key]struct{}{}, pending: map[key]*store.SecurityEvent{},
		noted: prometheus.NewCounter(prometheus.CounterOpts{Name: "kf_security_events_noted_total",
			Help: "Security events noted (refusals at the hub's doors), before they are merged per minute."}),
		folded: prometheus.NewCounter(prometheus.CounterOpts{Name: "kf_security_events_folded_total",
			Help: "Security events counted in their kind's overflow row: too many distinct sources in a minute."}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{Name: "kf_security_events_lost_total",
			Help: "Security events not written: the store failed and the backlog was full."}),
	}
}

// Register registers the recorder's metrics.
func (r *Recorder) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{r.noted, r.folded, r.lost} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

const maxField = 200 // bytes of a detail, an ID, a name kept

// Note counts one refusal of kind: of a kiosk (or ""), concerning a staff member (or ""), from a
// client address (host or host:port; the port is dropped), with a detail in plain words and
// without personal data.
func (r *Recorder) Note(kind, device, staff, source, detail string) {
	now := r.cfg.Now()
	k := key{kind: kind, device: clip(device), staff: clip(staff), source: host(source), minute: store.SecurityMinute(now)}
	r.noted.Inc()
	r.mu.Lock()
	defer r.mu.Unlock()
	if k.minute != r.minute {
		r.minute = k.minute
		clear(r.seen)
	}
	if _, ok := r.seen[k]; !ok {
		if len(r.seen) >= r.cfg.MaxKeys {
			k.device, k.staff, k.source = "", "", Overflow
			r.folded.Inc()
		}
		r.seen[k] = struct{}{} // overflow rows, one per kind, are past the bound
	}
	r.add(k, store.SecurityEvent{Kind: kind, DeviceID: k.device, Staff: k.staff, Source: k.source, Detail: clip(detail),
		Count: 1, At: now, Last: now})
}

// add merges e into the pending count of k; r.mu is held.
func (r *Recorder) add(k key, e store.SecurityEvent) {
	p := r.pending[k]
	if p == nil {
		if len(r.pending) >= 4*r.cfg.MaxKeys { // the store has been failing for minutes
			r.lost.Add(float64(e.Count))
			return
		}
		r.pending[k] = &e
		return
	}
	p.Count += e.Count
	if e.At.Before(p.At) {
		p.At = e.At
	}
	if e.Last.After(p.Last) {
		p.Last, p.Detail = e.Last, e.Detail
	}
}

// Flush writes what is counted, in one transaction. What the store refuses is counted again, to
// be written with the next flush.
func (r *Recorder) Flush(ctx context.Context) error {
	r.mu.Lock()
	pending := r.pending
	r.pending = map[key]*store.SecurityEvent{}
	r.mu.Unlock()
	if len(pending) == 0 {
		return nil
	}
	evs := make([]store.SecurityEvent, 0, len(pending))
	for _, e := range pending {
		evs = append(evs, *e)
	}
	err := r.cfg.Store.AddSecurityEvents(ctx, evs)
	if err != nil {
		r.mu.Lock()
		for k, e := range pending {
			r.add(k, *e)
		}
		r.mu.Unlock()
	}
	return err
}

// Prune deletes the rows past Retention and beyond Keep.
func (r *Recorder) Prune(ctx context.Context) error {
	n, err := r.cfg.Store.PruneSecurityEvents(ctx, r.cfg.Now().Add(-r.cfg.Retention), r.cfg.Keep)
	if n > 0 {
		r.cfg.Log.Info("security events pruned", "rows", n)
	}
	return err
}

// Run flushes every FlushEvery and prunes every hour until ctx ends, then flushes once more.
func (r *Recorder) Run(ctx context.Context) error {
	flush := time.NewTicker(r.cfg.FlushEvery)
	defer flush.Stop()
	prune := time.NewTicker(time.Hour)
	defer prune.Stop()
	if err := r.Prune(ctx); err != nil && ctx.Err() == nil {
		r.cfg.Log.Warn("prune security events", "err", err)
	}
	for {
		select {
		case <-ctx.Done():
			last, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := r.Flush(last); err != nil {
				r.cfg.Log.Warn("security events not written at shutdown", "err", err)
			}
			return nil
		case <-flush.C:
			if err := r.Flush(ctx); err != nil && ctx.Err() == nil {
				r.cfg.Log.Warn("write security events (kept for the next try)", "err", err)
			}
		case <-prune.C:
			if err := r.Prune(ctx); err != nil && ctx.Err() == nil {
				r.cfg.Log.Warn("prune security events", "err", err)
			}
		}
	}
}

// host returns the address of a host:port, or s as it is (clipped).
func host(s string) string {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().String()
	}
	return clip(s)
}

// clip cuts s to maxField bytes on a rune boundary.
func clip(s string) string {
	if len(s) <= maxField {
		return s
	}
	s = s[:maxField]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
