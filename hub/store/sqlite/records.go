package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// cursor is the state of one (device, epoch) inside a CommitBatches transaction.
type cursor struct {
	deviceID, epoch string
	id              int64  // epochs.id
	upto            uint64 // contiguous watermark
	stored          uint64 // upto as stored
	nextParked      uint64 // lowest seq in pending_records, 0 if none
}

type epochKey struct{ device, epoch string }

// maxCachedCursors bounds the cursor cache (a cursor is about 100 bytes; a province's fleet fits).
const maxCachedCursors = 200_000

// CommitBatches commits batches in one transaction. Per (device, epoch) it keeps a cursor: a
// record at or below the watermark is a duplicate and skipped; the record right above it is
// appended to records and advances the watermark; a record beyond a gap is parked in
// pending_records (a duplicate there is ignored) until the gap is filled, when everything
// contiguous moves to records in seq order. Each record's effect is applied once, in the
// transaction that first stores it.
func (s *Store) CommitBatches(ctx context.Context, batches []store.Batch) ([]store.Watermark, error) {
	if err := store.CheckBatches(batches); err != nil {
		return nil, err
	}
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	if s.cursors == nil || len(s.cursors) > maxCachedCursors {
		s.cursors, s.lastSeenW = map[epochKey]cursor{}, map[string]int64{}
	}
	var marks []store.Watermark
	cursors := map[epochKey]*cursor{}
	var order []*cursor
	err := s.tx(ctx, func(tx *sql.Tx) error {
		p := newStmts(tx)
		defer p.close()
		for _, b := range batches {
			k := epochKey{b.DeviceID, b.Epoch}
			c := cursors[k]
			if c == nil {
				if cached, ok := s.cursors[k]; ok {
					c = &cached
				} else {
					var err error
					if c, err = loadCursor(ctx, p, b.DeviceID, b.Epoch); err != nil {
						return err
					}
				}
				cursors[k] = c
				order = append(order, c)
			}
			recv := ts(b.RecvTS)
			for i := range b.Records {
				if err := s.commitRecord(ctx, p, c, &b.Records[i], recv); err != nil {
					return err
				}
			}
		}
		marks = make([]store.Watermark, 0, len(order))
		for _, c := range order {
			if c.upto != c.stored {
				if _, err := p.exec(ctx, `UPDATE epochs SET upto = ? WHERE id = ?`, int64(c.upto), c.id); err != nil {
					return fmt.Errorf("store: save watermark: %w", err)
				}
			}
			marks = append(marks, store.Watermark{DeviceID: c.deviceID, Epoch: c.epoch, UpTo: c.upto})
		}
		// Last-seen rides along in the same transaction (no second commit per group), written at
		// most once a second per device.
		seen := map[string]int64{}
		for _, b := range batches {
			if t := ts(b.RecvTS); t > seen[b.DeviceID] {
				seen[b.DeviceID] = t
			}
		}
		for id, t := range seen {
			if t-s.lastSeenW[id] < int64(time.Second) {
				continue
			}
			if _, err := p.exec(ctx, `UPDATE devices SET last_seen = ? WHERE id = ? AND last_seen < ?`, t, id, t); err != nil {
				return fmt.Errorf("store: last seen: %w", err)
			}
			s.lastSeenW[id] = t
		}
		return nil
	})
	if err != nil {
		s.cursors, s.lastSeenW = nil, nil // the transaction rolled back: forget what it changed
		return nil, err
	}
	for _, c := range order {
		c.stored = c.upto
		s.cursors[epochKey{c.deviceID, c.epoch}] = *c
	}
	return marks, nil
}

func loadCursor(ctx context.Context, p *stmts, deviceID, epoch string) (*cursor, error) {
	c := &cursor{deviceID: deviceID, epoch: epoch}
	var upto int64
	var next sql.NullInt64
	err := p.queryRow(ctx, `SELECT id, upto, (SELECT min(seq) FROM pending_records WHERE epoch_id = epochs.id AND seq > epochs.upto)
		FROM epochs WHERE device_id = ? AND epoch = ?`, deviceID, epoch).Scan(&c.id, &upto, &next)
	if errors.Is(err, sql.ErrNoRows) {
		res, err := p.exec(ctx, `INSERT INTO epochs (device_id, epoch) VALUES (?, ?)`, deviceID, epoch)
		if err != nil {
			return nil, fmt.Errorf("store: new epoch: %w", err)
		}
		c.id, err = res.LastInsertId()
		return c, err
	}
	if err != nil {
		return nil, fmt.Errorf("store: load epoch: %w", err)
	}
	c.upto, c.stored, c.nextParked = uint64(upto), uint64(upto), uint64(next.Int64)
	return c, nil
}

const insertRecord = `INSERT INTO records (epoch_id, seq, kind, class, device_ts, recv_ts, body) VALUES (?, ?, ?, ?, ?, ?, ?)`

func (s *Store) commitRecord(ctx context.Context, p *stmts, c *cursor, r *store.IncomingRecord, recv int64) error {
	switch {
	case r.Seq <= c.upto:
		return nil // duplicate of a stored record
	case r.Seq > c.upto+1:
		res, err := p.exec(ctx, `INSERT INTO pending_records (epoch_id, seq, kind, class, device_ts, recv_ts, body)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			c.id, int64(r.Seq), r.Kind, string(r.Class), r.TS, recv, []byte(r.Body))
		if err != nil {
			return fmt.Errorf("store: park record: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil // duplicate of a parked record
		}
		if c.nextParked == 0 || r.Seq < c.nextParked {
			c.nextParked = r.Seq
		}
		return s.applyEffect(ctx, p, c, r, recv)
	}
	if _, err := p.exec(ctx, insertRecord, c.id, int64(r.Seq), r.Kind, string(r.Class), r.TS, recv, []byte(r.Body)); err != nil {
		return fmt.Errorf("store: insert record: %w", err)
	}
	c.upto++
	if err := s.applyEffect(ctx, p, c, r, recv); err != nil {
		return err
	}
	if c.upto+1 == c.nextParked {
		return drainPending(ctx, p, c)
	}
	return nil
}

// drainPending moves parked records that are now contiguous to records, in seq order.
func drainPending(ctx context.Context, p *stmts, c *cursor) error {
	for c.upto+1 == c.nextParked {
		seq := int64(c.nextParked)
		if _, err := p.exec(ctx, `INSERT INTO records (epoch_id, seq, kind, class, device_ts, recv_ts, body)
			SELECT epoch_id, seq, kind, class, device_ts, recv_ts, body FROM pending_records WHERE epoch_id = ? AND seq = ?`,
			c.id, seq); err != nil {
			return fmt.Errorf("store: move parked record: %w", err)
		}
		if _, err := p.exec(ctx, `DELETE FROM pending_records WHERE epoch_id = ? AND seq = ?`, c.id, seq); err != nil {
			return fmt.Errorf("store: move parked record: %w", err)
		}
		c.upto++
		var next sql.NullInt64
		if err := p.queryRow(ctx, `SELECT min(seq) FROM pending_records WHERE epoch_id = ? AND seq > ?`, c.id, int64(c.upto)).Scan(&next); err != nil {
			return fmt.Errorf("store: parked records: %w", err)
		}
		c.nextParked = uint64(next.Int64)
	}
	return nil
}

// applyEffect applies a newly stored record's effect. Records may be stored out of seq order (a
// parked record before the gap's fill), so health and peripherals only move forward in
// (epoch first seen, seq) order, and reported state only to a version at least as new.
func (s *Store) applyEffect(ctx context.Context, p *stmts, c *cursor, r *store.IncomingRecord, recv int64) error {
	e := &r.Effect
	if e.Command != nil {
		if err := applyCommandResult(ctx, p, c.deviceID, e.Command, recv); err != nil {
			return err
		}
	}
	if e.Reported != nil {
		if _, err := p.exec(ctx, `INSERT INTO reported (device_id, version, doc, error, updated_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (device_id) DO UPDATE SET version = excluded.version, doc = excluded.doc,
				error = excluded.error, updated_at = excluded.updated_at
			WHERE excluded.version >= reported.version`,
			c.deviceID, e.Reported.Version, orNull(e.Reported.Doc), e.Reported.Error, recv); err != nil {
			return fmt.Errorf("store: reported state: %w", err)
		}
	}
	if len(e.Health) > 0 {
		if _, err := p.exec(ctx, `UPDATE devices SET health = ?, health_at = ?, health_epoch = ?, health_seq = ?
			WHERE id = ? AND (health_epoch, health_seq) < (?, ?)`,
			[]byte(e.Health), recv, c.id, int64(r.Seq), c.deviceID, c.id, int64(r.Seq)); err != nil {
			return fmt.Errorf("store: health: %w", err)
		}
	}
	if e.Event != nil {
		ev := *e.Event
		ev.RecvTS = fromTS(recv)
		if err := store.CheckEvents([]store.Event{ev}); err != nil {
			s.log.Warn("event record not stored as an event", "device", c.deviceID, "seq", r.Seq, "err", err)
		} else if _, err := s.commitEvents(ctx, p, []store.Event{ev}); err != nil {
			return err
		}
	}
	if len(e.Peripherals) > 0 {
		if _, err := p.exec(ctx, `UPDATE devices SET periph = ?, periph_at = ?, periph_epoch = ?, periph_seq = ?
			WHERE id = ? AND (periph_epoch, periph_seq) < (?, ?)`,
			[]byte(e.Peripherals), recv, c.id, int64(r.Seq), c.deviceID, c.id, int64(r.Seq)); err != nil {
			return fmt.Errorf("store: peripherals: %w", err)
		}
	}
	return nil
}

// applyCommandResult moves the device's command to the reported state if the life cycle allows
// it; a disallowed or unknown one is logged by nobody and skipped: the record is still stored.
func applyCommandResult(ctx context.Context, p *stmts, deviceID string, res *wire.CommandResult, recv int64) error {
	var from string
	err := p.queryRow(ctx, `SELECT state FROM commands WHERE id = ? AND device_id = ?`, res.ID, deviceID).Scan(&from)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: command %s: %w", res.ID, err)
	}
	if !store.CommandTransitionAllowed(wire.CommandState(from), res.State) {
		return nil
	}
	if _, err := p.exec(ctx, `UPDATE commands SET state = ?, output = ?, error = ?, updated_at = ? WHERE id = ?`,
		string(res.State), orNull(res.Output), res.Error, recv, res.ID); err != nil {
		return fmt.Errorf("store: command %s: %w", res.ID, err)
	}
	return nil
}

// Watermark returns the contiguous watermark of a device and epoch.
func (s *Store) Watermark(ctx context.Context, deviceID, epoch string) (uint64, error) {
	var upto int64
	err := s.db.R.QueryRowContext(ctx, `SELECT upto FROM epochs WHERE device_id = ? AND epoch = ?`, deviceID, epoch).Scan(&upto)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: watermark: %w", err)
	}
	return uint64(upto), nil
}

// ListRecords returns stored records (the contiguous prefix of every epoch; records parked beyond
// a gap appear once it is filled). Without a device it lists hub-wide in id order. With a device
// it lists that device's records by (epoch first seen, seq); AfterID, then, is the id of the last
// record of the previous page.
func (s *Store) ListRecords(ctx context.Context, f store.RecordFilter) ([]store.Record, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 1000
	}
	const cols = `SELECT r.id, e.device_id, e.epoch, r.seq, r.kind, r.class, r.device_ts, r.recv_ts, r.body
		FROM records r JOIN epochs e ON e.id = r.epoch_id `
	if f.DeviceID == "" {
		return s.queryRecords(ctx, nil, cols+`WHERE r.id > ? AND (? = '' OR r.kind = ?) ORDER BY r.id LIMIT ?`,
			f.AfterID, f.Kind, f.Kind, limit)
	}
	// Start after the cursor record's (epoch, seq), or at the device's first epoch.
	var fromEpoch, afterSeq int64
	if f.AfterID > 0 {
		err := s.db.R.QueryRowContext(ctx, `SELECT r.epoch_id, r.seq FROM records r JOIN epochs e ON e.id = r.epoch_id
			WHERE r.id = ? AND e.device_id = ?`, f.AfterID, f.DeviceID).Scan(&fromEpoch, &afterSeq)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, invalid("after: %d is not a record of device %s", f.AfterID, f.DeviceID)
		}
		if err != nil {
			return nil, fmt.Errorf("store: list records: %w", err)
		}
	}
	rows, err := s.db.R.QueryContext(ctx, `SELECT id FROM epochs WHERE device_id = ? AND id >= ? ORDER BY id`, f.DeviceID, fromEpoch)
	if err != nil {
		return nil, fmt.Errorf("store: list records: %w", err)
	}
	var epochs []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: list records: %w", err)
		}
		epochs = append(epochs, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list records: %w", err)
	}
	var out []store.Record
	for _, eid := range epochs {
		after := int64(0)
		if eid == fromEpoch {
			after = afterSeq
		}
		q, args := cols+`WHERE r.epoch_id = ? AND r.seq > ? AND (? = '' OR r.kind = ?) ORDER BY r.seq LIMIT ?`,
			[]any{eid, after, f.Kind, f.Kind, limit - len(out)}
		if f.Kind == wire.KindJournal {
			// The journal verifier reads a device's journal records past its cursor; without the
			// partial index (migration 0480) that is a scan of all the device's records, at every
			// hub start for every device. SQLite uses a partial index only for a query that names
			// its condition literally.
			q, args = `SELECT r.id, e.device_id, e.epoch, r.seq, r.kind, r.class, r.device_ts, r.recv_ts, r.body
				FROM records r INDEXED BY records_journal JOIN epochs e ON e.id = r.epoch_id
				WHERE r.epoch_id = ? AND r.seq > ? AND r.kind = '`+wire.KindJournal+`' ORDER BY r.seq LIMIT ?`,
				[]any{eid, after, limit - len(out)}
		}
		var err error
		out, err = s.queryRecords(ctx, out, q, args...)
		if err != nil || len(out) >= limit {
			return out, err
		}
	}
	return out, nil
}

func (s *Store) queryRecords(ctx context.Context, out []store.Record, q string, args ...any) ([]store.Record, error) {
	rows, err := s.db.R.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list records: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r store.Record
		var seq, devTS, recv int64
		var class string
		var body []byte
		if err := rows.Scan(&r.ID, &r.DeviceID, &r.Epoch, &seq, &r.Kind, &class, &devTS, &recv, &body); err != nil {
			return nil, fmt.Errorf("store: list records: %w", err)
		}
		r.Seq, r.Class, r.Body = uint64(seq), wire.Class(class), body
		r.DeviceTS, r.RecvTS = time.UnixMilli(devTS).UTC(), fromTS(recv)
		out = append(out, r)
	}
	return out, rows.Err()
}
