package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// CommitBatches commits batches in one transaction of two round trips (begin with lock and load,
// then the writes with the commit, a pipelined transaction; one more when parked records move,
// one when kiosks' events are stored, two for COPY in a large group), whatever their number:
//
//  1. It creates the epoch rows it has not seen, locks the rows of every (device, epoch) of the
//     group in (device, epoch) order, and then reads their watermarks and parked seqs. The lock
//     makes replicas committing batches of one device (a kiosk that moved) take turns, and the
//     order keeps them from deadlocking; the read comes after the lock, so it sees what the
//     previous holder committed.
//  2. In memory, as the SQLite store does row by row: a record at or below the watermark is a
//     duplicate; the record right above it goes to records and advances the watermark, pulling
//     in every parked record that is now contiguous, in seq order; a record beyond a gap is
//     parked (a duplicate of a parked one is skipped). Effects are gathered for the records
//     stored for the first time, each folded as if applied one by one.
//  3. It writes it all in one round trip: the new records in one insert (COPY, before it, when
//     they are many: copyRecords), in order, so that ids follow seqs (parked records that now move are first taken out of pending_records to take
//     their place); the records parked now, the watermarks, the devices' last-seen, health and
//     peripherals in one update of their rows (locked in ID order), reported states and
//     command results; and the commit.
//
// Nothing is visible to others before the commit, and the commit returns once it is durable
// (synchronous_commit, see the package comment).
func (s *Store) CommitBatches(ctx context.Context, batches []store.Batch) ([]store.Watermark, error) {
	if err := store.CheckBatches(batches); err != nil {
		return nil, err
	}
	if len(batches) == 0 {
		return []store.Watermark{}, nil
	}
	var c *commit
	err := s.txPipelined(ctx, func(p *pipeline) error {
		c = s.newCommit(batches)
		if err := c.lockAndLoad(ctx, p); err != nil {
			return err
		}
		c.apply()
		return c.write(ctx, p)
	})
	if err != nil {
		return nil, err
	}
	s.lastSeenMu.Lock()
	if len(s.lastSeenW) > maxLastSeen {
		clear(s.lastSeenW)
	}
	maps.Copy(s.lastSeenW, c.seenWrite)
	s.lastSeenMu.Unlock()
	marks := make([]store.Watermark, len(c.order))
	for i, cur := range c.order {
		marks[i] = store.Watermark{DeviceID: cur.device, Epoch: cur.epoch, UpTo: cur.upto}
	}
	return marks, nil
}

// maxLastSeen bounds the last-seen write times kept (forgetting them costs one write per device).
const maxLastSeen = 200_000

type epochKey struct{ device, epoch string }

// cursor is one (device, epoch) of a commit.
type cursor struct {
	epochKey
	id     int64  // epochs.id
	upto   uint64 // contiguous watermark
	stored uint64 // upto as stored
	// parked holds the seqs beyond the watermark: parked in the database (nil) or by this commit.
	parked map[uint64]*row
}

// row is a record to store in records or pending_records. One moved from pending_records is
// known by its key (moved) until its columns are read back.
type row struct {
	epochID     int64
	seq         uint64
	moved       bool
	kind, class string
	devTS, recv int64
	body        []byte
}

func newRow(epochID int64, r *store.IncomingRecord, recv int64) row {
	return row{epochID: epochID, seq: r.Seq, kind: r.Kind, class: string(r.Class), devTS: r.TS, recv: recv, body: r.Body}
}

// devEffects is what a commit changes in one device's row.
type devEffects struct {
	seen           int64 // greatest receive time (written at most once a second per device)
	health, periph *effect
}

// effect is a heartbeat or peripherals body and the record that carried it.
type effect struct {
	body    []byte
	at      int64
	epochID int64
	seq     uint64
}

func (e *effect) newer(epochID int64, seq uint64) bool {
	return e == nil || cmp.Or(cmp.Compare(epochID, e.epochID), cmp.Compare(seq, e.seq)) > 0
}

type reported struct {
	wire.Reported
	recv int64
}

type cmdResult struct {
	device string
	res    *wire.CommandResult
	recv   int64
}

// commit is one CommitBatches transaction's state; a retried transaction starts a new one.
type commit struct {
	batches   []store.Batch
	cursors   map[epochKey]*cursor
	order     []*cursor // by first appearance
	records   []row     // to insert into records, in order
	moves     int       // how many of them come from pending_records
	devices   map[string]*devEffects
	reported  map[string]*reported
	results   []cmdResult
	cmdIDs    []string          // commands named by any result record of the group
	seenAt    map[string]int64  // when this process last wrote each device's last-seen
	seenWrite map[string]int64  // last-seen writes of this commit
	cmdState  map[string]cmdRow // locked commands' state, as folded
	events    []store.Event     // kiosks' events of records stored for the first time
}

type cmdRow struct {
	device  string
	state   wire.CommandState
	changed bool
	output  []byte
	err     string
	at      int64
}

func (s *Store) newCommit(batches []store.Batch) *commit {
	c := &commit{batches: batches, cursors: map[epochKey]*cursor{}, devices: map[string]*devEffects{},
		reported: map[string]*reported{}, seenAt: map[string]int64{}, seenWrite: map[string]int64{}}
	ids := map[string]bool{}
	for _, b := range batches {
		k := epochKey{b.DeviceID, b.Epoch}
		if c.cursors[k] == nil {
			cur := &cursor{epochKey: k, parked: map[uint64]*row{}}
			c.cursors[k] = cur
			c.order = append(c.order, cur)
		}
		d := c.devices[b.DeviceID]
		if d == nil {
			d = &devEffects{}
			c.devices[b.DeviceID] = d
		}
		d.seen = max(d.seen, ts(b.RecvTS))
		for _, r := range b.Records {
			if r.Effect.Command != nil && !ids[r.Effect.Command.ID] {
				ids[r.Effect.Command.ID] = true
				c.cmdIDs = append(c.cmdIDs, r.Effect.Command.ID)
			}
		}
	}
	slices.Sort(c.cmdIDs)
	s.lastSeenMu.Lock()
	for id := range c.devices {
		c.seenAt[id] = s.lastSeenW[id]
	}
	s.lastSeenMu.Unlock()
	return c
}

const (
	createEpochs = `INSERT INTO epochs (device_id, epoch)
		SELECT k.device_id, k.epoch FROM unnest($1::text[], $2::text[]) AS k(device_id, epoch)
		WHERE NOT EXISTS (SELECT 1 FROM epochs e WHERE e.device_id = k.device_id AND e.epoch = k.epoch)
		ORDER BY k.device_id COLLATE "C", k.epoch COLLATE "C"
		ON CONFLICT DO NOTHING`
	// The rows are locked after they are sorted (PostgreSQL's SELECT: locking clause).
	lockEpochs = `SELECT e.id FROM epochs e
		JOIN unnest($1::text[], $2::text[]) AS k(device_id, epoch) ON e.device_id = k.device_id AND e.epoch = k.epoch
		ORDER BY e.device_id, e.epoch FOR NO KEY UPDATE OF e`
	loadEpochs = `SELECT e.id, e.device_id, e.epoch, e.upto,
			ARRAY(SELECT p.seq FROM pending_records p WHERE p.epoch_id = e.id ORDER BY p.seq)
		FROM epochs e
		JOIN unnest($1::text[], $2::text[]) AS k(device_id, epoch) ON e.device_id = k.device_id AND e.epoch = k.epoch`
	lockCommands = `SELECT id, device_id, state FROM commands WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE`
)

// lockAndLoad is step 1, in the transaction's first round trip.
func (c *commit) lockAndLoad(ctx context.Context, p *pipeline) error {
	devs := make([]string, len(c.order))
	epochs := make([]string, len(c.order))
	for i, cur := range c.order {
		devs[i], epochs[i] = cur.device, cur.epoch
	}
	b := p.batch()
	b.Queue(createEpochs, devs, epochs)
	b.Queue(lockEpochs, devs, epochs)
	b.Queue(loadEpochs, devs, epochs).Query(func(rows pgx.Rows) error {
		var k epochKey
		var id, upto int64
		var parked []int64
		_, err := pgx.ForEachRow(rows, []any{&id, &k.device, &k.epoch, &upto, &parked}, func() error {
			cur := c.cursors[k]
			if cur == nil {
				return fmt.Errorf("store: epoch %v not asked for", k)
			}
			cur.id, cur.upto, cur.stored = id, uint64(upto), uint64(upto)
			for _, p := range parked {
				cur.parked[uint64(p)] = nil
			}
			return nil
		})
		return err
	})
	if len(c.cmdIDs) > 0 {
		c.cmdState = map[string]cmdRow{}
		b.Queue(lockCommands, c.cmdIDs).Query(func(rows pgx.Rows) error {
			var id, dev, state string
			_, err := pgx.ForEachRow(rows, []any{&id, &dev, &state}, func() error {
				c.cmdState[id] = cmdRow{device: dev, state: wire.CommandState(state)}
				return nil
			})
			return err
		})
	}
	if err := p.send(ctx, b, false); err != nil {
		return fmt.Errorf("store: lock epochs: %w", err)
	}
	for _, cur := range c.order {
		if cur.id == 0 {
			return fmt.Errorf("store: epoch %s of device %s was not created", cur.epoch, cur.device)
		}
	}
	return nil
}

// apply is step 2.
func (c *commit) apply() {
	for _, b := range c.batches {
		cur := c.cursors[epochKey{b.DeviceID, b.Epoch}]
		recv := ts(b.RecvTS)
		for i := range b.Records {
			r := &b.Records[i]
			switch {
			case r.Seq <= cur.upto:
				continue // a duplicate of a stored record
			case r.Seq > cur.upto+1:
				if _, dup := cur.parked[r.Seq]; dup {
					continue
				}
				p := newRow(cur.id, r, recv)
				cur.parked[r.Seq] = &p
			default:
				c.records = append(c.records, newRow(cur.id, r, recv))
				cur.upto++
				for {
					p, ok := cur.parked[cur.upto+1]
					if !ok {
						break
					}
					delete(cur.parked, cur.upto+1)
					if p == nil { // parked in the database
						p = &row{epochID: cur.id, seq: cur.upto + 1, moved: true}
						c.moves++
					}
					c.records = append(c.records, *p)
					cur.upto++
				}
			}
			c.effect(cur, r, recv)
		}
	}
}

// effect gathers the effect of a record stored for the first time. Records may be stored out of
// seq order (a parked record before the gap's fill), so health and peripherals only move forward
// in (epoch first seen, seq) order, and reported state only to a version at least as new.
func (c *commit) effect(cur *cursor, r *store.IncomingRecord, recv int64) {
	e := &r.Effect
	if e.Command != nil {
		c.results = append(c.results, cmdResult{device: cur.device, res: e.Command, recv: recv})
	}
	if e.Reported != nil {
		if old := c.reported[cur.device]; old == nil || e.Reported.Version >= old.Version {
			c.reported[cur.device] = &reported{Reported: *e.Reported, recv: recv}
		}
	}
	if e.Event != nil {
		ev := *e.Event
		ev.RecvTS = fromTS(recv)
		if err := store.CheckEvents([]store.Event{ev}); err == nil {
			c.events = append(c.events, ev)
		}
	}
	d := c.devices[cur.device]
	if len(e.Health) > 0 && d.health.newer(cur.id, r.Seq) {
		d.health = &effect{body: e.Health, at: recv, epochID: cur.id, seq: r.Seq}
	}
	if len(e.Peripherals) > 0 && d.periph.newer(cur.id, r.Seq) {
		d.periph = &effect{body: e.Peripherals, at: recv, epochID: cur.id, seq: r.Seq}
	}
}

const (
	// takeMoved deletes parked records that are now contiguous and returns them, to be inserted
	// into records in their place.
	takeMoved = `DELETE FROM pending_records p USING unnest($1::bigint[], $2::bigint[]) AS m(epoch_id, seq)
		WHERE p.epoch_id = m.epoch_id AND p.seq = m.seq
		RETURNING p.epoch_id, p.seq, p.kind, p.class, p.device_ts, p.recv_ts, p.body`
	// insertRecords inserts in the order of the arrays (a function scan WITH ORDINALITY is
	// ordered by its ordinal, so the sort costs nothing), so that ids follow seqs.
	insertRecords = `INSERT INTO records (epoch_id, seq, kind, class, device_ts, recv_ts, body)
		SELECT e, s, k, c, d, r, b FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::bytea[])
			WITH ORDINALITY AS u(e, s, k, c, d, r, b, n) ORDER BY n`
	insertParked = `INSERT INTO pending_records (epoch_id, seq, kind, class, device_ts, recv_ts, body)
		SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::bytea[])`
	saveWatermarks = `UPDATE epochs e SET upto = u.upto FROM unnest($1::bigint[], $2::bigint[]) AS u(id, upto) WHERE e.id = u.id`
	// lockDevices locks the rows updateDevices writes, in ID order (PostgreSQL's SELECT: the
	// locking clause comes after the sort), as every writer of several devices does: the update's
	// join would take them in whatever order its plan has.
	lockDevices = `SELECT FROM devices WHERE id = ANY($1::text[]) ORDER BY id FOR NO KEY UPDATE`
	// updateDevices writes each device's last-seen, and its health and peripherals where the
	// record that carried them is newer than the one that set them, in one statement for all.
	updateDevices = `UPDATE devices d SET last_seen = greatest(d.last_seen, u.seen),
		health       = CASE WHEN u.health IS NOT NULL AND (d.health_epoch, d.health_seq) < (u.he, u.hs) THEN u.health ELSE d.health END,
		health_at    = CASE WHEN u.health IS NOT NULL AND (d.health_epoch, d.health_seq) < (u.he, u.hs) THEN u.ha ELSE d.health_at END,
		health_epoch = CASE WHEN u.health IS NOT NULL AND (d.health_epoch, d.health_seq) < (u.he, u.hs) THEN u.he ELSE d.health_epoch END,
		health_seq   = CASE WHEN u.health IS NOT NULL AND (d.health_epoch, d.health_seq) < (u.he, u.hs) THEN u.hs ELSE d.health_seq END,
		periph       = CASE WHEN u.periph IS NOT NULL AND (d.periph_epoch, d.periph_seq) < (u.pe, u.ps) THEN u.periph ELSE d.periph END,
		periph_at    = CASE WHEN u.periph IS NOT NULL AND (d.periph_epoch, d.periph_seq) < (u.pe, u.ps) THEN u.pa ELSE d.periph_at END,
		periph_epoch = CASE WHEN u.periph IS NOT NULL AND (d.periph_epoch, d.periph_seq) < (u.pe, u.ps) THEN u.pe ELSE d.periph_epoch END,
		periph_seq   = CASE WHEN u.periph IS NOT NULL AND (d.periph_epoch, d.periph_seq) < (u.pe, u.ps) THEN u.ps ELSE d.periph_seq END
		FROM unnest($1::text[], $2::bigint[], $3::bytea[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bytea[], $8::bigint[], $9::bigint[], $10::bigint[])
			AS u(id, seen, health, ha, he, hs, periph, pa, pe, ps)
		WHERE d.id = u.id`
	upsertReported = `INSERT INTO reported (device_id, version, doc, error, updated_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (device_id) DO UPDATE SET version = excluded.version, doc = excluded.doc,
			error = excluded.error, updated_at = excluded.updated_at
		WHERE excluded.version >= reported.version`
	updateCommand = `UPDATE commands SET state = $2, output = $3, error = $4, updated_at = $5 WHERE id = $1`
)

// copyRecords is how many new records a commit stores with COPY (two round trips of its own)
// rather than in its last round trip: for a large group (a fleet draining its backlogs) COPY
// costs PostgreSQL less CPU than an insert from arrays; for the small groups of a fleet that is
// keeping up, the round trips cost more than that.
const copyRecords = 1000

// write is step 3: after reading back the parked records that move, if any, and storing the
// new records with COPY when they are many, everything in one round trip that ends with the
// commit (after the kiosks' events, if any, in one more).
func (c *commit) write(ctx context.Context, p *pipeline) error {
	if c.moves > 0 {
		if err := c.takeMoved(ctx, p.tx); err != nil {
			return err
		}
	}
	if len(c.records) >= copyRecords {
		_, err := p.tx.CopyFrom(ctx, pgx.Identifier{"records"}, []string{"epoch_id", "seq", "kind", "class", "device_ts", "recv_ts", "body"},
			&rowSource{rows: c.records})
		if err != nil {
			return fmt.Errorf("store: insert records: %w", err)
		}
	}
	b := p.batch()
	if n := len(c.records); n > 0 && n < copyRecords {
		b.Queue(insertRecords, columns(c.records)...)
	}
	var parked []row
	var ids, uptos []int64
	for _, cur := range c.order {
		for _, p := range cur.parked {
			if p != nil {
				parked = append(parked, *p)
			}
		}
		if cur.upto != cur.stored {
			ids, uptos = append(ids, cur.id), append(uptos, int64(cur.upto))
		}
	}
	if len(parked) > 0 {
		b.Queue(insertParked, columns(parked)...)
	}
	if len(ids) > 0 {
		b.Queue(saveWatermarks, ids, uptos)
	}
	if dev := c.deviceUpdates(); len(dev) > 0 {
		b.Queue(lockDevices, dev[0])
		b.Queue(updateDevices, dev...)
	}
	for _, id := range slices.Sorted(maps.Keys(c.reported)) {
		r := c.reported[id]
		b.Queue(upsertReported, id, r.Version, orNull(r.Doc), r.Error, r.recv)
	}
	for _, id := range c.foldResults() {
		r := c.cmdState[id]
		b.Queue(updateCommand, id, string(r.state), orNull(r.output), r.err, r.at)
	}
	if len(c.events) == 0 {
		if err := p.send(ctx, b, true); err != nil {
			return fmt.Errorf("store: commit batches: %w", err)
		}
		return nil
	}
	if err := p.send(ctx, b, false); err != nil {
		return fmt.Errorf("store: commit batches: %w", err)
	}
	if _, err := commitEvents(ctx, p.tx, c.events); err != nil {
		return err
	}
	if err := p.send(ctx, p.batch(), true); err != nil {
		return fmt.Errorf("store: commit batches: %w", err)
	}
	return nil
}

// deviceUpdates returns the parameters of updateDevices (the first, the IDs, sorted) for the
// devices whose row the commit changes: those with a new health or peripherals body, and
// those whose last-seen this process wrote a second or more ago.
func (c *commit) deviceUpdates() []any {
	var ids []string
	var seen, hAt, hEpoch, hSeq, pAt, pEpoch, pSeq []int64
	var health, periph [][]byte
	for _, id := range slices.Sorted(maps.Keys(c.devices)) {
		d := c.devices[id]
		if d.health == nil && d.periph == nil && d.seen-c.seenAt[id] < int64(time.Second) {
			continue // last-seen was written less than a second ago
		}
		c.seenWrite[id] = d.seen
		h, p := cmp.Or(d.health, &effect{}), cmp.Or(d.periph, &effect{})
		ids, seen = append(ids, id), append(seen, d.seen)
		health, hAt, hEpoch, hSeq = append(health, h.body), append(hAt, h.at), append(hEpoch, h.epochID), append(hSeq, int64(h.seq))
		periph, pAt, pEpoch, pSeq = append(periph, p.body), append(pAt, p.at), append(pEpoch, p.epochID), append(pSeq, int64(p.seq))
	}
	if len(ids) == 0 {
		return nil
	}
	return []any{ids, seen, health, hAt, hEpoch, hSeq, periph, pAt, pEpoch, pSeq}
}

// takeMoved fills in the rows that move from pending_records, deleting them there.
func (c *commit) takeMoved(ctx context.Context, tx pgx.Tx) error {
	var eids, seqs []int64
	at := map[[2]int64]*row{}
	for i := range c.records {
		if r := &c.records[i]; r.moved {
			eids, seqs = append(eids, r.epochID), append(seqs, int64(r.seq))
			at[[2]int64{r.epochID, int64(r.seq)}] = r
		}
	}
	rows, _ := tx.Query(ctx, takeMoved, eids, seqs)
	var p row
	var seq int64
	n, err := pgx.ForEachRow(rows, []any{&p.epochID, &seq, &p.kind, &p.class, &p.devTS, &p.recv, &p.body}, func() error {
		if r := at[[2]int64{p.epochID, seq}]; r != nil {
			p.seq = uint64(seq)
			*r = p
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: move parked records: %w", err)
	}
	if int(n.RowsAffected()) != len(eids) {
		return fmt.Errorf("store: move parked records: %d of %d found", n.RowsAffected(), len(eids))
	}
	return nil
}

// rowSource feeds rows to COPY.
type rowSource struct {
	rows []row
	i    int
	vals [7]any
}

func (s *rowSource) Next() bool { s.i++; return s.i <= len(s.rows) }
func (s *rowSource) Err() error { return nil }

// Values returns the current row's columns; COPY encodes them before it asks for the next row.
func (s *rowSource) Values() ([]any, error) {
	r := &s.rows[s.i-1]
	s.vals = [7]any{r.epochID, int64(r.seq), r.kind, r.class, r.devTS, r.recv, r.body}
	return s.vals[:], nil
}

// foldResults applies the group's command results, in order, to the states of the commands as
// locked, following the life cycle (a disallowed transition or another device's command is
// skipped: the record is still stored), and returns the IDs of the commands that changed, sorted.
func (c *commit) foldResults() []string {
	var changed []string
	for _, r := range c.results {
		cmd, ok := c.cmdState[r.res.ID]
		if !ok || cmd.device != r.device || !store.CommandTransitionAllowed(cmd.state, r.res.State) {
			continue
		}
		if !cmd.changed {
			changed = append(changed, r.res.ID)
		}
		cmd.state, cmd.output, cmd.err, cmd.at, cmd.changed = r.res.State, r.res.Output, r.res.Error, r.recv, true
		c.cmdState[r.res.ID] = cmd
	}
	slices.Sort(changed)
	return changed
}

// columns turns rows into the arrays of insertParked's parameters.
func columns(rows []row) []any {
	n := len(rows)
	eids, seqs, devTS, recv := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	kinds, classes, bodies := make([]string, n), make([]string, n), make([][]byte, n)
	for i, r := range rows {
		eids[i], seqs[i], kinds[i], classes[i], devTS[i], recv[i], bodies[i] = r.epochID, int64(r.seq), r.kind, r.class, r.devTS, r.recv, r.body
	}
	return []any{eids, seqs, kinds, classes, devTS, recv, bodies}
}

// Watermark returns the contiguous watermark of a device and epoch.
func (s *Store) Watermark(ctx context.Context, deviceID, epoch string) (uint64, error) {
	var upto int64
	err := s.pool.QueryRow(ctx, `SELECT upto FROM epochs WHERE device_id = $1 AND epoch = $2`, deviceID, epoch).Scan(&upto)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: watermark: %w", err)
	}
	return uint64(upto), nil
}

const recordCols = `SELECT r.id, e.device_id, e.epoch, r.seq, r.kind, r.class, r.device_ts, r.recv_ts, r.body
	FROM records r JOIN epochs e ON e.id = r.epoch_id `

// ListRecords returns stored records (the contiguous prefix of every epoch; records parked beyond
// a gap appear once it is filled). Without a device it lists hub-wide in id order. With a device
// it lists that device's records by (epoch first seen, seq); AfterID, then, is the id of the last
// record of the previous page.
func (s *Store) ListRecords(ctx context.Context, f store.RecordFilter) ([]store.Record, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 1000
	}
	if f.DeviceID == "" {
		return s.queryRecords(ctx, nil, recordCols+`WHERE r.id > $1 AND ($2 = '' OR r.kind = $2) ORDER BY r.id LIMIT $3`,
			f.AfterID, f.Kind, limit)
	}
	// Start after the cursor record's (epoch, seq), or at the device's first epoch.
	var fromEpoch, afterSeq int64
	if f.AfterID > 0 {
		err := s.pool.QueryRow(ctx, `SELECT r.epoch_id, r.seq FROM records r JOIN epochs e ON e.id = r.epoch_id
			WHERE r.id = $1 AND e.device_id = $2`, f.AfterID, f.DeviceID).Scan(&fromEpoch, &afterSeq)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, invalid("after: %d is not a record of device %s", f.AfterID, f.DeviceID)
		}
		if err != nil {
			return nil, fmt.Errorf("store: list records: %w", err)
		}
	}
	rows, _ := s.pool.Query(ctx, `SELECT id FROM epochs WHERE device_id = $1 AND id >= $2 ORDER BY id`, f.DeviceID, fromEpoch)
	epochs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("store: list records: %w", err)
	}
	var out []store.Record
	for _, eid := range epochs {
		after := int64(0)
		if eid == fromEpoch {
			after = afterSeq
		}
		q, args := recordCols+`WHERE r.epoch_id = $1 AND r.seq > $2 AND ($3 = '' OR r.kind = $3) ORDER BY r.seq LIMIT $4`,
			[]any{eid, after, f.Kind, limit - len(out)}
		if f.Kind == wire.KindJournal {
			// The journal verifier reads a device's journal records past its cursor: the partial
			// index (migration 0480) serves it, but only a plan for the literal condition can use it.
			q, args = recordCols+`WHERE r.epoch_id = $1 AND r.seq > $2 AND r.kind = '`+wire.KindJournal+`' ORDER BY r.seq LIMIT $3`,
				[]any{eid, after, limit - len(out)}
		}
		out, err = s.queryRecords(ctx, out, q, args...)
		if err != nil || len(out) >= limit {
			return out, err
		}
	}
	return out, nil
}

func (s *Store) queryRecords(ctx context.Context, out []store.Record, q string, args ...any) ([]store.Record, error) {
	rows, _ := s.pool.Query(ctx, q, args...)
	var r store.Record
	var seq, devTS, recv int64
	var class string
	var body []byte // pgx copies each row's bytes into a new slice
	_, err := pgx.ForEachRow(rows, []any{&r.ID, &r.DeviceID, &r.Epoch, &seq, &r.Kind, &class, &devTS, &recv, &body}, func() error {
		r.Seq, r.Class, r.Body = uint64(seq), wire.Class(class), body
		r.DeviceTS, r.RecvTS = time.UnixMilli(devTS).UTC(), fromTS(recv)
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: list records: %w", err)
	}
	return out, nil
}
