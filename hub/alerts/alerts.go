// Package alerts raises and resolves the hub's alerts from what kiosks report, by rules: a kiosk
// offline longer than OfflineAfter; a peripheral at fault (paper out, cover open, unplugged) or
// degraded (paper low). Each condition is one alert (the store deduplicates) that a person
// acknowledges and resolves, or that the hub resolves when the condition clears. It reacts to the
// hub's change notices (hub/feed) within moments (at most CheckDelay), and sweeps the fleet every SweepEvery for
// what no notice announces (time passing offline). Each alert opened, acknowledged and resolved
// goes to the Notifier, unless a silence (a maintenance window, store.Silences) covered its rule
// and its kiosk, or a region its kiosk is under, when it changed.
//
// Delivery is at least once, and survives a crash: the store writes a notice of each change in
// the change's transaction (store.AlertNotices), and the engine delivers the notices it claims,
// oldest first and in order per alert, deleting each once the notifier took it. A notice whose
// delivery failed is tried again after RetryAfter; one held by a hub that died is taken back when
// that hub starts again (or, by another replica, when its claim runs out, NoticeLease). A notice
// may so be delivered twice (a hub killed after the notifier took it and before it was deleted):
// the webhook names each with an Idempotency-Key for its receiver to count it once.
package alerts

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskfleet/kioskfleet/hub/feed"
	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// Rules.
const (
	RuleOffline            = "offline"
	RulePeripheralFault    = "peripheral-fault"
	RulePeripheralDegraded = "peripheral-degraded"
)

// Store is what the engine needs of the hub's store.
type Store interface {
	store.Alerts
	ListSilences(ctx context.Context, at time.Time) ([]store.Silence, error)
	GetDevice(ctx context.Context, id string) (store.Device, error)
	ListDevices(ctx context.Context, f store.DeviceFilter) ([]store.Device, error)
}

// Notifier is told about each alert opened, acknowledged or resolved (a webhook, a message
// gateway). Notify may block; the engine calls it from its own goroutine, in order. An error
// means it was not delivered: it is tried again later.
type Notifier interface {
	Notify(ctx context.Context, a api.Alert) error
}

// Config configures the engine.
type Config struct {
	Store  Store
	Feed   *feed.Feed // notices to react to, and where alert notices go
	Notify Notifier   // nil: none
	// OfflineAfter is how long a kiosk is offline before it is an alert (default 5 minutes).
	OfflineAfter time.Duration
	// SweepEvery is how often the whole fleet is checked (default 30 s, or OfflineAfter if
	// shorter: a kiosk offline that long is an alert within twice OfflineAfter).
	SweepEvery time.Duration
	// Claimer names this engine's claims on notices (store.AlertNotices): the replica's name,
	// the same across its restarts (default "hub").
	Claimer string
	// RetryAfter is how long a notice whose delivery failed waits before it is tried again, and
	// how often notices are looked for without a change to announce them: those another replica
	// held when it died (default 1 minute).
	RetryAfter time.Duration
	Now        func() time.Time
	Log        *slog.Logger
}

// NoticeLease is how long a claim on notices holds them from other replicas: longer than a
// batch's delivery takes (the webhook's eight attempts of one notification take about three
// minutes).
const NoticeLease = 15 * time.Minute

// NoNotifierKeep is how long a hub without a notifier leaves notices before it drops them.
const NoNotifierKeep = time.Hour

// NoticeBatch is how many notices are claimed at once: a region back after an outage resolves
// thousands of alerts in one check, and each claim and each deletion is a write of the store.
const NoticeBatch = 64

// Engine applies the rules. Create with New, run with Run.
type Engine struct {
	cfg  Config
	wake chan struct{} // a change owes a notice: deliver

	opened, resolved *prometheus.CounterVec // by rule
	notifyFailed     prometheus.Counter
	silencedN        prometheus.Counter
	owed             prometheus.Gauge
}

// New returns an engine.
func New(cfg Config) *Engine {
	if cfg.OfflineAfter <= 0 {
		cfg.OfflineAfter = 5 * time.Minute
	}
	if cfg.SweepEvery <= 0 {
		cfg.SweepEvery = min(30*time.Second, cfg.OfflineAfter)
	}
	if cfg.Claimer == "" {
		cfg.Claimer = "hub"
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Engine{cfg: cfg, wake: make(chan struct{}, 1),
		opened: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kf_alerts_opened_total",
			Help: "Alerts opened by the hub's rules, by rule."}, []string{"rule"}),
		resolved: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kf_alerts_resolved_total",
			Help: "Alerts resolved because their condition cleared, by rule."}, []string{"rule"}),
		notifyFailed: prometheus.NewCounter(prometheus.CounterOpts{Name: "kf_alert_notifications_failed_total",
			Help: "Alert notification deliveries that failed (each is tried again after RetryAfter)."}),
		silencedN: prometheus.NewCounter(prometheus.CounterOpts{Name: "kf_alert_notifications_silenced_total",
			Help: "Alert notifications not sent: a silence (maintenance window) covered the alert."}),
		owed: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kf_alert_notifications_owed",
			Help: "Alert notifications not yet delivered (the store's outbox, all replicas'): grows while the receiver is down."}),
	}
}

// Register registers the engine's metrics.
func (e *Engine) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{e.opened, e.resolved, e.notifyFailed, e.silencedN, e.owed} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// CheckDelay bounds how often kiosks are checked on notices. A kiosk syncing records has a notice
// with every group commit its records are in (a dozen a second when the hub is busy), and each
// check reads its device row and open alerts: at 1,000 kiosks x 10 records/s that was ~10,000
// checks a second, and the engine, falling behind, lost notices and swept the whole fleet again
// and again. The first notice after a quiet spell is checked at once; those that come within
// CheckDelay of it gather, and each kiosk among them is checked once when it ends.
const CheckDelay = time.Second

// NoticeBuffer is how many notices the engine's subscription holds unread. A group commit
// publishes a notice per kiosk in it at once: at 1,000 kiosks x 10 records/s, several hundred
// each time, and with the feed's default of 256 the engine lost notices at nearly every commit.
const NoticeBuffer = 8192

// Run applies the rules until ctx ends or the feed closes.
func (e *Engine) Run(ctx context.Context) error {
	sub, err := e.cfg.Feed.SubscribeBuffer(NoticeBuffer)
	if err != nil {
		return err
	}
	defer sub.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.deliverLoop(ctx)
	}()
	defer func() { <-done }()
	defer cancel()
	dirty := map[string]struct{}{} // kiosks noticed since the last checks
	var checks <-chan time.Time    // when they are checked; nil: quiet, check at once
	resync := false                // notices were lost since the last checks: sweep then
	sweep := func() {
		clear(dirty) // the sweep checks them all
		checks, resync = nil, false
		e.Sweep(ctx)
	}
	sweep()
	tick := time.NewTicker(e.cfg.SweepEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			sweep()
		case <-checks:
			checks = nil
			if resync {
				sweep()
				checks = time.After(CheckDelay)
				continue
			}
			if len(dirty) > 0 {
				e.checkMany(ctx, slices.Collect(maps.Keys(dirty)))
				clear(dirty)
				checks = time.After(CheckDelay)
			}
		case ev, ok := <-sub.C:
			switch {
			case !ok:
				return nil
			case sub.Lost() || ev.Kind == api.NoticeResync:
				// Every kiosk may have changed: sweep, at once after a quiet spell, else once
				// at the end of CheckDelay. A sweep reads the whole fleet; on each loss it ran
				// back to back while a busy hub's commits kept overflowing the subscription
				// (issue 18: 11-16% of the hub's CPU at 10,000 records/s, beside the committer).
				if checks == nil {
					sweep()
					checks = time.After(CheckDelay)
				} else {
					resync = true
				}
			case ev.Kind == api.NoticePresence || ev.Kind == api.NoticeRecords:
				if checks == nil {
					e.Check(ctx, ev.DeviceID)
					checks = time.After(CheckDelay)
				} else {
					dirty[ev.DeviceID] = struct{}{}
				}
			}
		}
	}
}

// Sweep checks every kiosk in service.
func (e *Engine) Sweep(ctx context.Context) { e.checkAll(ctx, store.DeviceFilter{}) }

// checkMany checks the kiosks ids: those in service with two reads of the store however many
// they are (a busy hub's notices name most of its fleet every CheckDelay; one Check each, a
// device row and its open alerts, cost the hub 1,000 pairs of queries a second at 1,000
// kiosks, issue 18), the others (retired) one by one.
func (e *Engine) checkMany(ctx context.Context, ids []string) {
	if len(ids) == 1 {
		e.Check(ctx, ids[0])
		return
	}
	checked := e.checkAll(ctx, store.DeviceFilter{IDs: ids})
	if checked == nil {
		return // the store failed (logged): the next notice or sweep tries again
	}
	for _, id := range slices.DeleteFunc(ids, checked) {
		e.Check(ctx, id)
	}
}

// checkAll checks the kiosks in service that f selects, with two reads of the store: their rows
// and the fleet's open alerts. It returns whether it checked a kiosk, or nil if the store
// failed.
func (e *Engine) checkAll(ctx context.Context, f store.DeviceFilter) (checked func(id string) bool) {
	devs, err := e.cfg.Store.ListDevices(ctx, f)
	if err != nil {
		e.cfg.Log.Warn("alert sweep: list devices", "err", err)
		return nil
	}
	// The open alerts of f's kiosks only: at 10,000 records/s the notices name ~1,000 kiosks
	// every CheckDelay, and the whole fleet's open alerts (19,000 offline ones while another
	// region was down) were read and decoded each time.
	open, err := e.cfg.Store.ListAlerts(ctx, store.AlertFilter{DeviceIDs: f.IDs, Unresolved: true, Limit: 1 << 30})
	if err != nil {
		e.cfg.Log.Warn("alert sweep: list alerts", "err", err)
		return nil
	}
	byDevice := map[string][]store.Alert{}
	for _, a := range open {
		byDevice[a.DeviceID] = append(byDevice[a.DeviceID], a)
	}
	e.apply(ctx, devs, byDevice)
	seen := make(map[string]bool, len(devs))
	for _, d := range devs {
		seen[d.ID] = true
	}
	return func(id string) bool { return seen[id] }
}

// Check checks one kiosk.
func (e *Engine) Check(ctx context.Context, id string) {
	d, err := e.cfg.Store.GetDevice(ctx, id)
	if err != nil {
		e.cfg.Log.Warn("alert check", "device", id, "err", err)
		return
	}
	open, err := e.cfg.Store.ListAlerts(ctx, store.AlertFilter{DeviceID: id, Unresolved: true})
	if err != nil {
		e.cfg.Log.Warn("alert check", "device", id, "err", err)
		return
	}
	e.apply(ctx, []store.Device{d}, map[string][]store.Alert{id: open})
}

// condition is an alert's key and what was seen.
type condition struct{ rule, subject, detail string }

// conditions returns what is wrong with d at now, and whether its peripherals were judged (not
// when it is offline: what they last said is stale, and their alerts stay as they are).
func (e *Engine) conditions(d store.Device, now time.Time) ([]condition, bool) {
	if d.Revoked || !d.RetiredAt.IsZero() {
		return nil, true // out of service: whatever was open is over
	}
	var cs []condition
	if !d.Online {
		since := d.PresenceAt
		if since.IsZero() {
			since = d.EnrolledAt
		}
		if now.Sub(since) >= e.cfg.OfflineAfter {
			cs = append(cs, condition{RuleOffline, "", "offline since " + since.UTC().Format(time.RFC3339)})
		}
		return cs, false
	}
	if len(d.Peripherals) == 0 {
		return cs, true
	}
	body, err := api.DecodePeripherals(d.Peripherals)
	if err != nil {
		return cs, false // unreadable: judge nothing
	}
	for _, p := range body.Devices {
		detail := strings.Join(p.Reasons, ",")
		switch {
		case p.Status == wire.PeripheralFault || !p.Connected:
			if detail == "" && !p.Connected {
				detail = "disconnected"
			}
			cs = append(cs, condition{RulePeripheralFault, p.ID, detail})
		case p.Status == wire.PeripheralDegraded:
			cs = append(cs, condition{RulePeripheralDegraded, p.ID, detail})
		}
	}
	return cs, true
}

// apply raises the conditions of the kiosks devs and resolves their unresolved alerts (open, by
// kiosk) whose condition cleared. It decides for every kiosk first, then writes all raises in
// one call of the store and all resolutions in another, then counts, logs and tells what
// changed. A region back after an outage resolves thousands of offline alerts in one sweep: in
// a transaction each (on SQLite's single writer, which the ingest's group commit and the presence
// writer need too), with the silences listed again for each, that was 39% of the hub's CPU while
// 19,000 kiosks reconnected.
func (e *Engine) apply(ctx context.Context, devs []store.Device, open map[string][]store.Alert) {
	now := e.cfg.Now()
	var raise []store.Alert
	var resolve []int64
	for _, d := range devs {
		cs, peripheralsJudged := e.conditions(d, now)
		for _, c := range cs {
			// Held and still unresolved: nothing to write. Re-raising every held condition at
			// every sweep was one statement over all of them (19,000 offline kiosks of another
			// fleet) holding SQLite's writer while the ingest's group commits waited.
			if slices.ContainsFunc(open[d.ID], func(a store.Alert) bool { return a.Rule == c.rule && a.Subject == c.subject }) {
				continue
			}
			raise = append(raise, store.Alert{DeviceID: d.ID, Rule: c.rule, Subject: c.subject, Detail: c.detail, OpenedAt: now})
		}
		for _, a := range open[d.ID] {
			held := slices.ContainsFunc(cs, func(c condition) bool { return c.rule == a.Rule && c.subject == a.Subject })
			if held || (a.Rule != RuleOffline && !peripheralsJudged) {
				continue
			}
			resolve = append(resolve, a.ID)
		}
	}
	opened, err := e.cfg.Store.RaiseAlerts(ctx, raise)
	if err != nil {
		e.cfg.Log.Warn("raise alerts", "alerts", len(raise), "err", err)
	}
	// Those a person resolved meanwhile are not among the resolved.
	resolved, err := e.cfg.Store.ResolveAlerts(ctx, resolve, "", now)
	if err != nil {
		e.cfg.Log.Warn("resolve alerts", "alerts", len(resolve), "err", err)
	}
	for i, a := range opened {
		e.opened.WithLabelValues(a.Rule).Inc()
		if i < LogEach {
			e.cfg.Log.Info("alert opened", "id", a.ID, "device", a.DeviceID, "rule", a.Rule, "subject", a.Subject, "detail", a.Detail)
		}
		e.tell(a)
	}
	for i, a := range resolved {
		e.resolved.WithLabelValues(a.Rule).Inc()
		if i < LogEach {
			e.cfg.Log.Info("alert resolved: condition cleared", "id", a.ID, "device", a.DeviceID, "rule", a.Rule)
		}
		e.tell(a)
	}
	if len(opened) > LogEach || len(resolved) > LogEach {
		e.cfg.Log.Info("alerts changed in one check: the first of each logged one by one", "opened", len(opened),
			"resolved", len(resolved), "by_rule", byRule(opened, resolved))
	}
}

// LogEach is how many alerts opened, and how many resolved, one check logs one by one: a region
// back after an outage resolves thousands at once, and the rest are summed up in one line (the
// alerts themselves are in the store, and their notices in its outbox).
const LogEach = 20

// byRule counts alerts opened and resolved by rule, as "rule: opened/resolved" (sorted).
func byRule(opened, resolved []store.Alert) string {
	n := map[string][2]int{}
	for _, a := range opened {
		c := n[a.Rule]
		c[0]++
		n[a.Rule] = c
	}
	for _, a := range resolved {
		c := n[a.Rule]
		c[1]++
		n[a.Rule] = c
	}
	var out []string
	for _, r := range slices.Sorted(maps.Keys(n)) {
		out = append(out, fmt.Sprintf("%s: %d/%d", r, n[r][0], n[r][1]))
	}
	return strings.Join(out, ", ")
}

// silencer returns whether a silence, of a kiosk or of a region it is under, quieted a rule's
// alerts of the kiosk at a time (a change is judged by the silences of its moment, not of its
// delivery's). It lists the silences of each time once.
func (e *Engine) silencer(ctx context.Context) func(d store.Device, rule string, at time.Time) bool {
	active := map[int64][]store.Silence{}
	return func(d store.Device, rule string, at time.Time) bool {
		ss, ok := active[at.UnixNano()]
		if !ok {
			var err error
			if ss, err = e.cfg.Store.ListSilences(ctx, at); err != nil {
				e.cfg.Log.Warn("alert silences", "err", err)
				ss = nil // notify rather than miss an alert
			}
			active[at.UnixNano()] = ss
		}
		return slices.ContainsFunc(ss, func(s store.Silence) bool { return s.Matches(d.ID, d.Region, rule, at) })
	}
}

// tell tells live viewers about an alert that opened or moved, and the deliverer that a notice
// of it is owed (the store wrote it with the change).
func (e *Engine) tell(a store.Alert) {
	e.cfg.Feed.Publish(api.Notice{Kind: api.NoticeAlert, DeviceID: a.DeviceID, At: e.cfg.Now()})
	select {
	case e.wake <- struct{}{}:
	default: // the deliverer is already to look
	}
}

// Changed is for the API: an alert a person acknowledged or resolved.
func (e *Engine) Changed(_ store.Device, a store.Alert) { e.tell(a) }

// deliverLoop delivers the notices owed, when a change announces one and every RetryAfter, until
// ctx ends. It takes back the notices this engine's claimer held when it last stopped (a crash),
// and gives up those it holds when it stops.
func (e *Engine) deliverLoop(ctx context.Context) {
	if err := e.cfg.Store.ReleaseAlertNotices(ctx, e.cfg.Claimer); err != nil && ctx.Err() == nil {
		e.cfg.Log.Warn("alert notices: release", "err", err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := e.cfg.Store.ReleaseAlertNotices(ctx, e.cfg.Claimer); err != nil {
			e.cfg.Log.Warn("alert notices: release", "err", err)
		}
	}()
	retry := time.NewTicker(e.cfg.RetryAfter)
	defer retry.Stop()
	for {
		for e.deliver(ctx) {
		}
		if n, err := e.cfg.Store.CountAlertNotices(ctx); err == nil {
			e.owed.Set(float64(n))
		}
		select {
		case <-ctx.Done():
			return
		case <-e.wake:
		case <-retry.C:
		}
	}
}

// deliver claims a batch of notices and delivers them in order. When a delivery fails, it and
// the rest of the batch wait RetryAfter (a receiver that is down is not called for each of a
// thousand notices). It returns whether to claim again at once: a full batch went through.
func (e *Engine) deliver(ctx context.Context) bool {
	now := e.cfg.Now()
	if e.cfg.Notify == nil {
		// Nobody to tell here: the notices are left an hour to a replica that has a notifier
		// (replicas are configured alike, but not all at once), then dropped, so that a notifier
		// set later is not sent the history.
		if _, err := e.cfg.Store.DropAlertNotices(ctx, now.Add(-NoNotifierKeep), now); err != nil && ctx.Err() == nil {
			e.cfg.Log.Warn("alert notices: drop", "err", err)
		}
		return false
	}
	ns, err := e.cfg.Store.ClaimAlertNotices(ctx, e.cfg.Claimer, now, now.Add(NoticeLease), NoticeBatch)
	if err != nil || len(ns) == 0 {
		if err != nil && ctx.Err() == nil {
			e.cfg.Log.Warn("alert notices: claim", "err", err)
		}
		return false
	}
	// What is done is marked so even when ctx ends meanwhile: else it is delivered again.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	var done []int64
	defer func() {
		if err := e.cfg.Store.DoneAlertNotices(wctx, done); err != nil {
			e.cfg.Log.Warn("alert notices: done", "notices", len(done), "err", err)
		}
	}()
	devs := e.devices(ctx, ns)
	silenced := e.silencer(ctx)
	for i, n := range ns {
		d := devs[n.Alert.DeviceID]
		if silenced(d, n.Alert.Rule, n.At) {
			e.silencedN.Inc()
			done = append(done, n.ID)
			continue
		}
		if err := e.cfg.Notify.Notify(ctx, View(n.Alert, d.Region)); err != nil {
			if ctx.Err() != nil {
				return false // stopping: the claim is given up, the notice is owed still
			}
			e.notifyFailed.Inc()
			e.cfg.Log.Error("alert notification failed; tried again later", "id", n.Alert.ID, "state", n.State,
				"in", e.cfg.RetryAfter, "waiting", len(ns)-i, "err", err)
			rest := make([]int64, 0, len(ns)-i)
			for _, m := range ns[i:] {
				rest = append(rest, m.ID)
			}
			if err := e.cfg.Store.DeferAlertNotices(wctx, rest, e.cfg.Now().Add(e.cfg.RetryAfter)); err != nil {
				e.cfg.Log.Warn("alert notices: defer", "err", err)
			}
			return false
		}
		done = append(done, n.ID)
	}
	return len(ns) == NoticeBatch
}

// devices returns the kiosks of ns's alerts by ID (for their regions), retired ones too; one
// that cannot be read is a kiosk of no region.
func (e *Engine) devices(ctx context.Context, ns []store.AlertNotice) map[string]store.Device {
	ids := make([]string, 0, len(ns))
	for _, n := range ns {
		if !slices.Contains(ids, n.Alert.DeviceID) {
			ids = append(ids, n.Alert.DeviceID)
		}
	}
	out := make(map[string]store.Device, len(ids))
	devs, err := e.cfg.Store.ListDevices(ctx, store.DeviceFilter{IDs: ids})
	if err != nil {
		e.cfg.Log.Warn("alert notices: list devices", "err", err)
	}
	for _, d := range devs {
		out[d.ID] = d
	}
	for _, id := range ids {
		if _, ok := out[id]; !ok {
			d, err := e.cfg.Store.GetDevice(ctx, id) // retired
			if err != nil {
				d = store.Device{ID: id}
			}
			out[id] = d
		}
	}
	return out
}

// View is an alert as the API shows it.
func View(a store.Alert, region string) api.Alert {
	return api.Alert{ID: a.ID, DeviceID: a.DeviceID, Region: region, Rule: a.Rule, Subject: a.Subject, Detail: a.Detail,
		State: string(a.State), OpenedAt: a.OpenedAt, AckBy: a.AckBy, AckAt: a.AckAt, ResolvedBy: a.ResolvedBy, ResolvedAt: a.ResolvedAt}
}
