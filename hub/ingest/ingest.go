// Package ingest is the hub's side of the sync protocol: it takes uplink batches, hellos and
// presence from the message bus, commits batches idempotently with group commit, publishes
// cumulative acks only after the commit, and sends devices the commands and desired state they have
// not yet confirmed whenever they connect.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// Bus is the message bus the hub consumes from: the embedded broker's inline client, or a client
// of an external broker when the hub is scaled out.
type Bus interface {
	Publish(topic string, payload []byte, retain bool, qos byte) error
	// Subscribe calls handler for every message matching filter; deviceID is the publisher.
	Subscribe(filter string, handler func(deviceID, topic string, payload []byte)) error
}

// Store is the storage ingest commits the uplink to and reads the downlink from.
type Store interface {
	store.Records
	store.Presence
	store.Commands
	store.State
}

// RecordHook gives the records of a kind their effect for a room other than ingest (hub/events
// for wire.KindEvent), so that ingest's own effects stay its own: it is called for every such
// record before its batch is queued for commit, may set the record's Effect and rewrite its Body
// (to keep what it refuses out of the stored record), and the store applies the effect in the
// transaction that first stores the record, exactly once. An error is counted and logged as a
// rejected body; the record is stored all the same.
type RecordHook interface {
	RecordEffect(ctx context.Context, deviceID string, r *store.IncomingRecord) error
}

// ConnectedChecker is an optional capability of a Bus: whether a device has a live session.
type ConnectedChecker interface {
	Connected(deviceID string) bool
}

// Hook is told about batches after they are committed and acked: a capability that derives
// something from committed records (hub/journal) hooks in here instead of adding a case to the
// effect switch. Committed runs on the acker's goroutine, so it must be quick (note the
// devices, do the work elsewhere); the batches may hold duplicates of records committed before,
// so a hook reads what it needs from the store.
type Hook interface {
	Committed(batches []store.Batch)
}

// PresenceHook is a Hook also told about the presence changes written to the store.
type PresenceHook interface {
	PresenceWritten(updates []store.PresenceUpdate)
}

// ErrClosed is returned for work offered after Close.
var ErrClosed = errors.New("ingest: closed")

// Config tunes group commit.
type Config struct {
	// Window is how long the committer gathers batches before a commit (default 2 ms).
	Window time.Duration
	// MaxRecords ends a gathering early once this many records wait (default 5,000).
	MaxRecords int
	// Queue is how many batches may wait for the committer in each lane (default 4096).
	Queue int
	// QueueRecords is how many records of ordinary batches may wait for the committer before
	// their publishers are slowed (default 4 × MaxRecords): a fleet draining its backlogs then
	// waits in its TCP connections, not in the hub's heap.
	QueueRecords int
	// SweepEvery is how often expired commands are swept (default 1 s).
	SweepEvery time.Duration
	// Now is the hub clock (default time.Now).
	Now func() time.Time
	// Hooks give the records of their kind (the key) their effect.
	Hooks map[string]RecordHook
	// Replica names this hub among the replicas sharing its database: presence changes it
	// records name it as the holder of the device's session (store.PresenceUpdate.Replica).
	Replica string
}

func (c *Config) defaults() {
	if c.Window <= 0 {
		c.Window = 2 * time.Millisecond
	}
	if c.MaxRecords <= 0 {
		c.MaxRecords = 5000
	}
	if c.Queue <= 0 {
		c.Queue = 4096
	}
	if c.QueueRecords <= 0 {
		c.QueueRecords = 4 * c.MaxRecords
	}
	if c.SweepEvery <= 0 {
		c.SweepEvery = time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Ingest runs the hub side of the protocol. Create with New, start with Run.
type Ingest struct {
	cfg Config
	st  Store
	bus Bus
	log *slog.Logger
	m   *metrics

	in   chan queued         // batches for the committer, in arrival order
	fast chan queued         // small batches of devices with nothing else waiting: taken first
	room *semaphore.Weighted // records of in (QueueRecords)
	stop chan struct{}       // closed when the committer stops taking batches
	// stopped is done when stop is closed (cancelStop): it ends a wait for room.
	stopped    context.Context
	cancelStop context.CancelFunc
	acks       chan committed // committed groups, for the acker to ack in commit order

	qmu      sync.Mutex
	queued   map[string]int // batches in (or waiting for room in) the ordinary queue, by device
	presence chan store.PresenceUpdate
	marks    chan delivery // published commands, for the marker

	subscribed bool // Subscribe done
	hooks      []Hook
}

// AddHook adds a hook told about every committed group. Call it before Run.
func (g *Ingest) AddHook(h Hook) { g.hooks = append(g.hooks, h) }

// New creates an Ingest. log and reg may be nil.
func New(cfg Config, st Store, bus Bus, log *slog.Logger, reg prometheus.Registerer) (*Ingest, error) {
	cfg.defaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := newMetrics()
	if reg != nil {
		if err := m.register(reg); err != nil {
			return nil, fmt.Errorf("ingest: metrics: %w", err)
		}
	}
	stopped, cancelStop := context.WithCancel(context.Background())
	return &Ingest{cfg: cfg, st: st, bus: bus, log: log, m: m, in: make(chan queued, cfg.Queue), fast: make(chan queued, cfg.Queue),
		room: semaphore.NewWeighted(int64(cfg.QueueRecords)), stop: make(chan struct{}), stopped: stopped, cancelStop: cancelStop,
		acks: make(chan committed, 16), queued: map[string]int{}, presence: make(chan store.PresenceUpdate, 1<<16),
		marks: make(chan delivery, 4096)}, nil
}

// Subscribe subscribes ingest to the device channels, its handlers' store work bound to ctx. Run
// does it unless it was done. A hub does it before its broker accepts devices, so that no
// device's hello finds nobody to answer it (the device would wait for its ack in vain). Call it
// before Run, not concurrently with it.
func (g *Ingest) Subscribe(ctx context.Context) error {
	if g.subscribed {
		return nil
	}
	subs := []struct {
		ch wire.Channel
		fn func(string, string, []byte)
	}{
		{wire.ChUp, func(dev, topic string, p []byte) { g.onUp(ctx, dev, topic, p) }},
		{wire.ChHello, func(dev, topic string, p []byte) { g.onHello(ctx, dev, topic, p) }},
		{wire.ChPresence, func(dev, topic string, p []byte) { g.onPresence(ctx, dev, topic, p) }},
	}
	for _, s := range subs {
		if err := g.bus.Subscribe(wire.Filter(s.ch), s.fn); err != nil {
			return fmt.Errorf("ingest: subscribe %s: %w", s.ch, err)
		}
	}
	g.subscribed = true
	return nil
}

// Run subscribes to the device channels (unless Subscribe did) and runs the committer and the
// expiry sweeper until ctx is done. Batches already received are committed and acked before it
// returns.
func (g *Ingest) Run(ctx context.Context) error {
	if err := g.Subscribe(ctx); err != nil {
		return err
	}
	var wg sync.WaitGroup
	wg.Go(func() { g.sweep(ctx) })
	wg.Go(func() { g.presenceLoop(ctx) })
	wg.Go(func() { g.markLoop(ctx) })
	wg.Go(g.ackLoop)
	g.commitLoop(ctx)
	close(g.acks)
	wg.Wait()
	return nil
}

// presenceLoop writes presence changes in batches, in arrival order: when a whole fleet reconnects
// at once (after a hub restart, a network outage), tens of thousands of changes cost a few
// commits, and no connection waits for a commit of its own. At shutdown it writes what is
// queued, so a clean shutdown loses no presence change.
func (g *Ingest) presenceLoop(ctx context.Context) { drain(ctx, g.presence, 2000, g.writePresence) }

// drain calls write with what comes on in, in arrival order: one item, and with it whatever
// queued meanwhile (up to most), so that a busy writer writes more at a time. When ctx ends it
// writes what is queued (with ctx's values, not its end) and returns.
func drain[T any](ctx context.Context, in <-chan T, most int, write func(context.Context, []T)) {
	for {
		var batch []T
		select {
		case v := <-in:
			batch = append(batch, v)
		case <-ctx.Done():
			for {
				select {
				case v := <-in:
					batch = append(batch, v)
					continue
				default:
				}
				break
			}
			if len(batch) > 0 {
				write(context.WithoutCancel(ctx), batch)
			}
			return
		}
	gather:
		for len(batch) < most {
			select {
			case v := <-in:
				batch = append(batch, v)
			default:
				break gather
			}
		}
		write(ctx, batch)
	}
}

// takePresence adds the queued presence changes to batch, up to a bound, without waiting.
func (g *Ingest) takePresence(batch []store.PresenceUpdate) []store.PresenceUpdate {
	const most = 2000
	for len(batch) < most {
		select {
		case u := <-g.presence:
			batch = append(batch, u)
		default:
			return batch
		}
	}
	return batch
}

func (g *Ingest) writePresence(ctx context.Context, batch []store.PresenceUpdate) {
	if err := g.st.SetPresences(ctx, batch); err != nil {
		if ctx.Err() == nil {
			g.log.Warn("presence update failed", "changes", len(batch), "err", err)
		}
		return
	}
	now := g.cfg.Now()
	for _, u := range batch {
		g.m.presenceTime.Observe(now.Sub(u.At).Seconds())
	}
	for _, h := range g.hooks {
		if ph, ok := h.(PresenceHook); ok {
			ph.PresenceWritten(batch)
		}
	}
}

// SetBus sets the bus when it could not be given to New (the broker needs the ingest's callbacks
// before it exists). Call it before Run.
func (g *Ingest) SetBus(b Bus) { g.bus = b }

// Stats is a snapshot of ingest counters.
type Stats struct {
	Records, Batches, Commits, Rejected uint64
}

// Stats returns counters since start.
func (g *Ingest) Stats() Stats { return g.m.snapshot() }

// reject counts and logs a refused payload. The reason never includes payload bytes (they may carry
// personal data).
func (g *Ingest) reject(dev string, ch wire.Channel, err error) {
	reason := "malformed"
	switch {
	case errors.Is(err, wire.ErrUnknownVersion):
		reason = "unknown_version"
	case errors.Is(err, wire.ErrTooLarge):
		reason = "too_large"
	case errors.Is(err, wire.ErrBadTopic):
		reason = "bad_topic"
	}
	g.m.rejected(string(ch), reason)
	g.log.Warn("payload rejected", "device", dev, "channel", string(ch), "reason", reason, "err", err)
}

// topicDevice returns the topic's device after checking that it is the publisher (the broker's
// ACL already enforces it for devices; this guards the bus seam when an external broker is used).
func topicDevice(dev, topic string, want wire.Channel) (string, error) {
	id, ch, err := wire.ParseTopic(topic)
	if err != nil {
		return "", err
	}
	if ch != want || (dev != "" && id != dev) {
		return "", fmt.Errorf("%w: %s published to %s", wire.ErrBadTopic, dev, topic)
	}
	return id, nil
}

func (g *Ingest) onUp(ctx context.Context, dev, topic string, payload []byte) {
	id, err := topicDevice(dev, topic, wire.ChUp)
	if err != nil {
		g.reject(dev, wire.ChUp, err)
		return
	}
	b, err := wire.DecodeBatch(payload)
	if err != nil {
		g.reject(id, wire.ChUp, err)
		return
	}
	batch := store.Batch{DeviceID: id, Epoch: b.Epoch, RecvTS: g.cfg.Now(), Records: make([]store.IncomingRecord, len(b.Records))}
	for i, r := range b.Records {
		batch.Records[i] = store.IncomingRecord{Record: r}
		if h := g.cfg.Hooks[r.Kind]; h != nil {
			if err := h.RecordEffect(ctx, id, &batch.Records[i]); err != nil {
				g.reject(id, wire.ChUp, fmt.Errorf("record %d: %w", r.Seq, err))
			}
			continue
		}
		batch.Records[i].Effect = g.effect(id, r)
	}
	// Blocks the publisher's read loop while the committer is behind: backpressure. After shutdown
	// the batch is dropped unacked, and the agent resends it.
	g.enqueue(queued{Batch: batch, at: time.Now()})
}

// FastRecords is the largest batch that may take the fast lane: a heartbeat, an alert, a command
// result, a citizen's transaction. Kiosks draining a backlog send full batches, which wait in
// arrival order; without the fast lane a fleet coming back from an outage would hold up every
// other kiosk's heartbeats for as long as its backlog takes to commit.
const FastRecords = 16

// queued is a batch waiting for the committer.
type queued struct {
	store.Batch
	at   time.Time // received (monotonic clock, for the latency metrics)
	fast bool      // in the fast lane
}

// enqueue hands a batch to the committer: in the fast lane when it is small and its device has
// no batch in the ordinary queue (so a device's batches never overtake each other), else in the
// ordinary queue, once there is room for its records. It returns when the batch is queued or
// ingest stopped. A kiosk whose heartbeats come faster than the hub commits (a busy hub) keeps
// them in the fast lane: demoted behind the fleet's backlogs, they would wait seconds.
func (g *Ingest) enqueue(q queued) {
	g.qmu.Lock()
	n := g.queued[q.DeviceID]
	q.fast = n == 0 && len(q.Records) <= FastRecords
	if !q.fast {
		g.queued[q.DeviceID] = n + 1
	}
	g.qmu.Unlock()
	lane := g.fast
	if !q.fast {
		lane = g.in
		if g.room.Acquire(g.stopped, g.weight(q)) != nil {
			g.taken(q, false)
			return
		}
	}
	select {
	case lane <- q:
	case <-g.stop:
		g.taken(q, true)
	}
}

// weight is what an ordinary batch counts against QueueRecords.
func (g *Ingest) weight(q queued) int64 { return int64(min(len(q.Records), g.cfg.QueueRecords)) }

// taken records that a batch left the queues (or never entered its lane, held false).
func (g *Ingest) taken(q queued, held bool) {
	if q.fast {
		return
	}
	if held {
		g.room.Release(g.weight(q))
	}
	g.qmu.Lock()
	defer g.qmu.Unlock()
	if n := g.queued[q.DeviceID] - 1; n > 0 {
		g.queued[q.DeviceID] = n
	} else {
		delete(g.queued, q.DeviceID)
	}
}

// next takes a batch, from the fast lane first. With block false it returns ok false when none
// waits; with block true it waits for one, the window or done (then ok is false). A batch already
// queued is always taken before the window is looked at: a select picks among ready cases at
// random, and a committer that was descheduled past its window must still take what queued.
func (g *Ingest) next(block bool, window <-chan time.Time, done <-chan struct{}) (q queued, ok bool) {
	select {
	case q = <-g.fast:
		g.taken(q, true)
		return q, true
	default:
	}
	select {
	case q = <-g.in:
		g.taken(q, true)
		return q, true
	default:
	}
	if !block {
		return q, false
	}
	select {
	case q = <-g.fast:
	case q = <-g.in:
	case <-window:
		return q, false
	case <-done:
		return q, false
	}
	g.taken(q, true)
	return q, true
}

// effect decodes what a record changes. A record whose body does not decode is still stored (it is
// the device's data and the agent must be able to move on), but without effect, and counted.
func (g *Ingest) effect(dev string, r wire.Record) store.Effect {
	var e store.Effect
	switch r.Kind {
	case wire.KindCmdResult:
		res, err := wire.DecodeCommandResult(r.Body)
		if err != nil {
			g.reject(dev, wire.ChUp, fmt.Errorf("record %d: %w", r.Seq, err))
			return e
		}
		e.Command = &res
	case wire.KindReported:
		rep, err := wire.DecodeReported(r.Body)
		if err != nil {
			g.reject(dev, wire.ChUp, fmt.Errorf("record %d: %w", r.Seq, err))
			return e
		}
		e.Reported = &rep
	case wire.KindHeartbeat:
		if _, err := wire.DecodeHeartbeat(r.Body); err != nil {
			g.reject(dev, wire.ChUp, fmt.Errorf("record %d: %w", r.Seq, err))
			return e
		}
		e.Health = r.Body
	case wire.KindPeripherals:
		if _, err := wire.DecodePeripherals(r.Body); err != nil {
			g.reject(dev, wire.ChUp, fmt.Errorf("record %d: %w", r.Seq, err))
			return e
		}
		e.Peripherals = r.Body
	}
	return e
}

func (g *Ingest) commitLoop(ctx context.Context) {
	done := ctx.Done()
	for {
		first, ok := g.next(true, nil, done)
		if !ok {
			close(g.stop)
			g.cancelStop()
			// Commit what is already queued, in groups, so that nothing received is left
			// unacked needlessly.
			for {
				group := g.gather(nil, nil)
				if len(group) == 0 {
					return
				}
				g.commit(context.WithoutCancel(ctx), group)
			}
		}
		timer := time.NewTimer(g.cfg.Window)
		group := g.gather(timer.C, done, first)
		timer.Stop()
		g.commit(context.WithoutCancel(ctx), group)
	}
}

// FastGroupRecords is how many records of larger batches a group takes when it carries small
// ones: a heartbeat waits for the commit under way and then its own, so both stay short while
// a fleet drains its backlogs.
const FastGroupRecords = 1000

// gather adds queued batches to group until MaxRecords (or FastGroupRecords) is reached or window
// fires or done is closed, and then what is queued already; with a nil window it takes only what
// is queued.
func (g *Ingest) gather(window <-chan time.Time, done <-chan struct{}, first ...queued) []queued {
	var group []queued
	n, bulk, fast := 0, 0, false
	add := func(q queued) {
		group = append(group, q)
		n += len(q.Records)
		if fast = fast || q.fast; !q.fast {
			bulk += len(q.Records)
		}
	}
	for _, q := range first {
		add(q)
	}
	for block := window != nil; n < g.cfg.MaxRecords && !(fast && bulk >= FastGroupRecords); {
		q, ok := g.next(block, window, done)
		if !ok && block {
			block = false // the window is over: take what is queued, not more
			continue
		}
		if !ok {
			return group
		}
		add(q)
	}
	return group
}

// commit stores a group in one transaction and only then has the acker ack every touched
// (device, epoch). When the group fails, each batch is retried alone, so that one device's batch
// the store refuses does not hold up the acks of every device that shared its group.
func (g *Ingest) commit(ctx context.Context, group []queued) {
	if err := g.commitGroup(ctx, group); err != nil {
		g.m.commitErrors.Inc()
		if len(group) == 1 {
			// Nothing is acked: the agent resends after its ack timeout.
			g.log.Error("commit failed; batch not acked", "device", group[0].DeviceID, "err", err)
			return
		}
		g.log.Warn("group commit failed; committing its batches one by one", "batches", len(group), "err", err)
		for _, q := range group {
			if err := g.commitGroup(ctx, []queued{q}); err != nil {
				g.m.commitErrors.Inc()
				g.log.Error("commit failed; batch not acked", "device", q.DeviceID, "err", err)
			}
		}
	}
}

// committed is a committed group for the acker: its watermarks, its batches (for the hooks) and
// their receipts.
type committed struct {
	marks    []store.Watermark
	batches  []store.Batch
	receipts []receipt
}

type receipt struct {
	at   time.Time
	fast bool
}

func (g *Ingest) commitGroup(ctx context.Context, group []queued) error {
	start := time.Now()
	batches := make([]store.Batch, len(group))
	n := 0
	for i, q := range group {
		batches[i] = q.Batch
		n += len(q.Records)
		g.m.queueWait(q.fast, start.Sub(q.at))
	}
	marks, err := g.st.CommitBatches(ctx, batches)
	if err != nil {
		return err
	}
	g.m.committed(len(group), n, time.Since(start))
	c := committed{marks: marks, batches: batches, receipts: make([]receipt, len(group))}
	for i, q := range group {
		c.receipts[i] = receipt{q.at, q.fast}
	}
	g.acks <- c
	return nil
}

// ackLoop publishes the acks of committed groups, in commit order, off the committer's path: the
// next group commits meanwhile. It returns when acks is closed and drained.
func (g *Ingest) ackLoop() {
	for c := range g.acks {
		for _, w := range c.marks {
			g.ack(w)
		}
		now := time.Now()
		for _, r := range c.receipts {
			g.m.acked(r.fast, now.Sub(r.at))
		}
		for _, h := range g.hooks {
			h.Committed(c.batches)
		}
	}
}

// ack publishes a cumulative ack at QoS 0: the agent's session is clean, so QoS 1 would only
// add a PUBACK per ack (a TLS record for the agent to write and the hub to read, and the
// broker's in-flight bookkeeping), one of the four packets a batch cost. An ack lost with its
// connection is made good by the next: the agent resends from its first unacked record, and
// the hub acks the duplicates (and answers every hello with the watermark).
func (g *Ingest) ack(w store.Watermark) {
	msg := wire.Encode(wire.AckMsg{V: wire.Version, Epoch: w.Epoch, UpTo: w.UpTo})
	if err := g.bus.Publish(wire.Topic(w.DeviceID, wire.ChAck), msg, false, 0); err != nil {
		g.log.Warn("ack publish failed", "device", w.DeviceID, "err", err)
	}
}

func (g *Ingest) onHello(ctx context.Context, dev, topic string, payload []byte) {
	id, err := topicDevice(dev, topic, wire.ChHello)
	if err != nil {
		g.reject(dev, wire.ChHello, err)
		return
	}
	h, err := wire.DecodeHello(payload)
	if err != nil {
		g.reject(id, wire.ChHello, err)
		return
	}
	now := g.cfg.Now()
	g.queuePresence(store.PresenceUpdate{DeviceID: id, Online: true, AgentVersion: h.AgentVersion, At: now, Replica: g.cfg.Replica})
	// Tell the agent where the hub stands, so it can drop what is already safe and resume.
	up, err := g.st.Watermark(ctx, id, h.Epoch)
	if err != nil {
		g.log.Error("watermark lookup failed", "device", id, "err", err)
	} else {
		g.ack(store.Watermark{DeviceID: id, Epoch: h.Epoch, UpTo: up})
	}
	// The hello came from the device, so it is connected: no need to ask the bus.
	g.sendPending(ctx, id, time.Time{})
	g.sendDesired(ctx, id, h.StateVersion)
}

// connected reports whether deviceID may have a live session (always true when the bus cannot
// tell).
func (g *Ingest) connected(deviceID string) bool {
	cc, ok := g.bus.(ConnectedChecker)
	return !ok || cc.Connected(deviceID)
}

// SendPending publishes every command the device has not yet accepted and that has not expired,
// oldest first, and has them marked delivered. Duplicates are harmless: the agent executes each
// command ID at most once. When the bus says the device is not connected, nothing is sent (and
// nothing marked delivered): the device gets its commands at its next hello. The caller (the
// API, on a lone hub) has just written a command: that is the notice SendNoticed measures from.
func (g *Ingest) SendPending(ctx context.Context, deviceID string) {
	g.SendNoticed(ctx, deviceID, time.Now())
}

// SendNoticed is SendPending after a notice, received at noticed, that the device has new
// commands (zero: no notice, a sweep): the time from the notice to each stage of the sending
// is measured (kf_downlink_seconds).
func (g *Ingest) SendNoticed(ctx context.Context, deviceID string, noticed time.Time) {
	if g.connected(deviceID) {
		g.sendPending(ctx, deviceID, noticed)
	}
}

func (g *Ingest) sendPending(ctx context.Context, deviceID string, noticed time.Time) {
	g.m.downlink(stageTaken, noticed)
	now := g.cfg.Now()
	cmds, err := g.st.PendingCommands(ctx, deviceID, now)
	if err != nil {
		g.log.Error("pending commands lookup failed", "device", deviceID, "err", err)
		return
	}
	g.m.downlink(stageFetched, noticed)
	var sent []string
	for _, c := range cmds {
		msg := wire.Encode(wire.Command{
			V: wire.Version, ID: c.ID, Name: c.Name, Args: c.Args,
			CreatedAt: c.CreatedAt.UnixMilli(), ExpiresAt: c.ExpiresAt.UnixMilli(),
			ExpiresIn: max(0, c.ExpiresAt.Sub(now).Milliseconds()),
		})
		if err := g.bus.Publish(wire.Topic(deviceID, wire.ChCmd), msg, false, 1); err != nil {
			g.log.Warn("command publish failed", "device", deviceID, "command", c.ID, "err", err)
			continue
		}
		sent = append(sent, c.ID)
	}
	if len(sent) == 0 {
		return
	}
	g.m.downlink(stagePublished, noticed)
	g.markLater(ctx, delivery{ids: sent, at: now, noticed: noticed})
}

// delivery is commands published to a device, to be marked delivered.
type delivery struct {
	ids     []string
	at      time.Time // published (hub clock)
	noticed time.Time // the notice they were sent on (zero: none)
}

// markLater hands published commands to the marker, which marks them delivered together with
// those of other devices, in one transaction, off the path of the next device's commands. When
// the marker is behind (or stopped), they are marked here and now.
//
// Publishing first and marking later is safe: the mark is not a promise to anyone, only what
// the hub shows and what a resend skips. A command published and not (yet) marked (the mark
// waits, fails, or the hub dies first) is still queued in the store, so it is published again
// at the device's next hello, a sweep or the next notice for the device, and the agent, which
// executes each command ID at most once, takes the copy as a duplicate. The other order
// (marking first) could mark a command that never left the hub.
func (g *Ingest) markLater(ctx context.Context, d delivery) {
	select {
	case g.marks <- d:
	default:
		g.markDelivered(ctx, []delivery{d})
	}
}

// markLoop marks what markLater handed it, all that waits in one call, until ctx ends.
func (g *Ingest) markLoop(ctx context.Context) { drain(ctx, g.marks, 5000, g.markDelivered) }

func (g *Ingest) markDelivered(ctx context.Context, ds []delivery) {
	var ids []string
	var at time.Time
	for _, d := range ds {
		ids = append(ids, d.ids...)
		if d.at.After(at) {
			at = d.at // every one was published by then
		}
	}
	if err := g.st.MarkDelivered(ctx, ids, at); err != nil {
		if ctx.Err() == nil {
			g.log.Warn("mark delivered failed; the commands are sent again", "commands", len(ids), "err", err)
		}
		return
	}
	for _, d := range ds {
		g.m.downlink(stageMarked, d.noticed)
	}
}

// sendDesired sends the device its desired state if it is newer than haveVersion.
func (g *Ingest) sendDesired(ctx context.Context, deviceID string, haveVersion int64) {
	d, err := g.st.GetDesired(ctx, deviceID)
	if errors.Is(err, store.ErrNotFound) {
		return
	}
	if err != nil {
		g.log.Error("desired lookup failed", "device", deviceID, "err", err)
		return
	}
	if d.Version <= haveVersion {
		return
	}
	msg := wire.Encode(wire.Desired{V: wire.Version, Version: d.Version, Doc: d.Doc})
	if err := g.bus.Publish(wire.Topic(deviceID, wire.ChDesired), msg, false, 1); err != nil {
		g.log.Warn("desired publish failed", "device", deviceID, "err", err)
	}
}

// PushDesired sends the device its current desired state now (after an operator changed it). A
// device that is offline gets it at its next hello.
func (g *Ingest) PushDesired(ctx context.Context, deviceID string) {
	if g.connected(deviceID) {
		g.sendDesired(ctx, deviceID, 0)
	}
}

func (g *Ingest) onPresence(ctx context.Context, dev, topic string, payload []byte) {
	id, err := topicDevice(dev, topic, wire.ChPresence)
	if err != nil {
		g.reject(dev, wire.ChPresence, err)
		return
	}
	p, err := wire.DecodePresence(payload)
	if err != nil {
		g.reject(id, wire.ChPresence, err)
		return
	}
	g.SetPresence(ctx, id, p.Online, p.AgentVersion)
}

// SetPresence records a presence change seen by the hub (hub clock). An offline report for a device
// that has a live session again (a Will or a disconnect that raced a reconnect) is ignored.
func (g *Ingest) SetPresence(ctx context.Context, id string, online bool, agentVersion string) {
	if !online {
		if cc, ok := g.bus.(ConnectedChecker); ok && cc.Connected(id) {
			return
		}
	}
	g.queuePresence(store.PresenceUpdate{DeviceID: id, Online: online, AgentVersion: agentVersion, At: g.cfg.Now(), Replica: g.cfg.Replica})
}

// EndSession records that a device's session with this hub ended at (hub clock), with how it
// began and ended (its presence history), and the device offline unless another replica holds it
// now. The broker tells a device's end before its next session's start, so no online change of a
// newer session can be queued before it.
func (g *Ingest) EndSession(id string, at time.Time, end store.SessionEnd) {
	g.queuePresence(store.PresenceUpdate{DeviceID: id, At: at, Replica: g.cfg.Replica, End: &end})
}

// queuePresence hands a change to the presence writer; when it is far behind, the caller waits.
// After Run, changes wait in the queue for FlushPresence while it has room.
func (g *Ingest) queuePresence(u store.PresenceUpdate) {
	select {
	case g.presence <- u:
		return
	default:
	}
	select {
	case g.presence <- u:
	case <-g.stop: // shut down and the queue full: the next start releases the replica's presence
	}
}

// FlushPresence writes the presence changes queued after Run returned: the hub closes its broker
// after ingest has drained (the acks it owes go out through the broker), and the sessions the
// broker then ends are recorded here, with their reasons, before the replica releases the rest.
// Call it only after Run has returned.
func (g *Ingest) FlushPresence(ctx context.Context) {
	for ctx.Err() == nil {
		batch := g.takePresence(nil)
		if len(batch) == 0 {
			return
		}
		g.writePresence(ctx, batch)
	}
}

func (g *Ingest) sweep(ctx context.Context) {
	t := time.NewTicker(g.cfg.SweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			exp, err := g.st.ExpireCommands(ctx, g.cfg.Now())
			if err != nil {
				if ctx.Err() == nil {
					g.log.Warn("command expiry sweep failed", "err", err)
				}
				continue
			}
			for _, c := range exp {
				g.log.Info("command expired", "device", c.DeviceID, "command", c.ID, "name", c.Name)
			}
		}
	}
}
