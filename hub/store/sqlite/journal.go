package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/internal/sqlrow"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// JournalHead returns a device's journal verification state.
func (s *Store) JournalHead(ctx context.Context, deviceID string) (store.JournalHead, error) {
	h, err := sqlrow.JournalHead(s.db.R.QueryRowContext(ctx, `SELECT `+sqlrow.JournalHeadCols+` FROM journal_heads WHERE device_id = ?`, deviceID))
	if err != nil {
		return store.JournalHead{}, notFound(err, "journal of device", deviceID)
	}
	return h, nil
}

// AdvanceJournal stores h and events if the stored cursor is still from.
func (s *Store) AdvanceJournal(ctx context.Context, h store.JournalHead, from int64, events []store.SecurityEvent) error {
	if err := sqlrow.CheckJournal(h, events); err != nil {
		return err
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM devices WHERE id = ?`, h.DeviceID).Scan(&one); err != nil {
			return notFound(err, "device", h.DeviceID)
		}
		var cur int64
		err := tx.QueryRowContext(ctx, `SELECT last_record FROM journal_heads WHERE device_id = ?`, h.DeviceID).Scan(&cur)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			cur = 0
		case err != nil:
			return fmt.Errorf("store: journal of %s: %w", h.DeviceID, err)
		}
		if cur != from {
			return fmt.Errorf("%w: journal of %s verified up to record %d, not %d", store.ErrConflict, h.DeviceID, cur, from)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO journal_heads (`+sqlrow.JournalHeadCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (device_id) DO UPDATE SET last_record = excluded.last_record, epoch = excluded.epoch, chain = excluded.chain,
			idx = excluded.idx, hash = excluded.hash, checkpoint = excluded.checkpoint, entries = excluded.entries,
			events = excluded.events, updated_at = excluded.updated_at`, sqlrow.JournalHeadArgs(h)...); err != nil {
			return fmt.Errorf("store: journal of %s: %w", h.DeviceID, err)
		}
		for _, e := range events {
			if _, err := tx.ExecContext(ctx, `INSERT INTO security_events (device_id, kind, record_id, idx, detail, at, last_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
				h.DeviceID, e.Kind, e.RecordID, int64(e.Index), e.Detail, ts(e.At), ts(e.At)); err != nil {
				return fmt.Errorf("store: security event of %s: %w", h.DeviceID, err)
			}
		}
		return nil
	})
}

// AddSecurityEvents merges counted events into their rows of the minute.
func (s *Store) AddSecurityEvents(ctx context.Context, events []store.SecurityEvent) error {
	events, err := sqlrow.CheckSecurityEvents(events)
	if err != nil || len(events) == 0 {
		return err
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		for _, e := range events {
			if _, err := tx.ExecContext(ctx, `INSERT INTO security_events (device_id, kind, detail, at, staff, source, hits, last_at, bucket)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (kind, device_id, staff, source, bucket) WHERE bucket <> 0 DO UPDATE SET hits = hits + excluded.hits,
				at = min(at, excluded.at), last_at = max(last_at, excluded.last_at), detail = excluded.detail`,
				e.DeviceID, e.Kind, e.Detail, ts(e.At), e.Staff, e.Source, e.Count, ts(e.Last), store.SecurityMinute(e.At)); err != nil {
				return fmt.Errorf("store: security event %s: %w", e.Kind, err)
			}
		}
		return nil
	})
}

// ListSecurityEvents lists security events, oldest first (newest first with f.Newest).
func (s *Store) ListSecurityEvents(ctx context.Context, f store.SecurityEventFilter) ([]store.SecurityEvent, error) {
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	order := "id"
	if f.Newest {
		order = "id DESC"
	}
	rows, err := s.db.R.QueryContext(ctx, `SELECT `+sqlrow.SecurityEventCols+` FROM security_events
		WHERE id > ? AND (? = '' OR device_id = ?) AND (? = '' OR staff = ?) AND (? = '' OR kind = ? OR kind LIKE ?) AND last_at >= ?
		ORDER BY `+order+` LIMIT ?`, f.AfterID, f.DeviceID, f.DeviceID, f.Staff, f.Staff, f.Kind, f.Kind, sqlrow.SecurityKindLike(f.Kind),
		ts(f.Since), f.Limit)
	if err != nil {
		return nil, fmt.Errorf("store: security events: %w", err)
	}
	defer rows.Close()
	var out []store.SecurityEvent
	for rows.Next() {
		e, err := sqlrow.SecurityEvent(rows)
		if err != nil {
			return nil, fmt.Errorf("store: security events: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// PruneSecurityEvents deletes counted rows last seen before before, and all but the newest keep.
func (s *Store) PruneSecurityEvents(ctx context.Context, before time.Time, keep int) (int64, error) {
	var n int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		n = 0
		res, err := tx.ExecContext(ctx, `DELETE FROM security_events WHERE bucket <> 0 AND last_at < ?`, ts(before))
		if err != nil {
			return err
		}
		d, _ := res.RowsAffected()
		n += d
		if keep > 0 {
			if res, err = tx.ExecContext(ctx, `DELETE FROM security_events WHERE bucket <> 0 AND id < (
				SELECT id FROM security_events WHERE bucket <> 0 ORDER BY id DESC LIMIT 1 OFFSET ?)`, keep-1); err != nil {
				return err
			}
			d, _ = res.RowsAffected()
			n += d
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: prune security events: %w", err)
	}
	return n, nil
}

// JournalsBehind lists the devices with journal records past their verified cursor. Record IDs
// grow with seq within an epoch, so an epoch's last journal record (by seq, from the partial index
// of migration 0480; the condition on kind written literally, as the index requires) is its
// highest. One seek per epoch, all in the database.
func (s *Store) JournalsBehind(ctx context.Context) ([]string, error) {
	ids, err := queryIDs(ctx, s.db.R, `SELECT DISTINCT e.device_id FROM epochs e LEFT JOIN journal_heads h ON h.device_id = e.device_id
		WHERE (SELECT r.id FROM records r INDEXED BY records_journal WHERE r.epoch_id = e.id AND r.kind = '`+wire.KindJournal+`'
			ORDER BY r.seq DESC LIMIT 1) > COALESCE(h.last_record, 0)
		ORDER BY e.device_id`)
	if err != nil {
		return nil, fmt.Errorf("store: journals behind: %w", err)
	}
	return ids, nil
}
