package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/internal/sqlrow"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// JournalHead returns a device's journal verification state.
func (s *Store) JournalHead(ctx context.Context, deviceID string) (store.JournalHead, error) {
	h, err := sqlrow.JournalHead(s.pool.QueryRow(ctx, `SELECT `+sqlrow.JournalHeadCols+` FROM journal_heads WHERE device_id = $1`, deviceID))
	if err != nil {
		return store.JournalHead{}, notFound(err, "journal of device", deviceID)
	}
	return h, nil
}

// AdvanceJournal stores h and events if the stored cursor is still from. The head's row is
// locked while it is compared; two replicas creating a device's first head meet at its primary
// key, and the second gets ErrConflict.
func (s *Store) AdvanceJournal(ctx context.Context, h store.JournalHead, from int64, events []store.SecurityEvent) error {
	if err := sqlrow.CheckJournal(h, events); err != nil {
		return err
	}
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var cur int64
		err := tx.QueryRow(ctx, `SELECT last_record FROM journal_heads WHERE device_id = $1 FOR UPDATE`, h.DeviceID).Scan(&cur)
		exists := err == nil
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if cur != from {
			return fmt.Errorf("%w: journal of %s verified up to record %d, not %d", store.ErrConflict, h.DeviceID, cur, from)
		}
		q := `INSERT INTO journal_heads (` + sqlrow.JournalHeadCols + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`
		if exists {
			q = `UPDATE journal_heads SET last_record = $2, epoch = $3, chain = $4, idx = $5, hash = $6, checkpoint = $7,
				entries = $8, events = $9, updated_at = $10 WHERE device_id = $1`
		}
		if _, err := tx.Exec(ctx, q, sqlrow.JournalHeadArgs(h)...); err != nil {
			return err
		}
		for _, e := range events {
			if _, err := tx.Exec(ctx, `INSERT INTO security_events (device_id, kind, record_id, idx, detail, at, last_at) VALUES ($1, $2, $3, $4, $5, $6, $6)`,
				h.DeviceID, e.Kind, e.RecordID, int64(e.Index), e.Detail, ts(e.At)); err != nil {
				return err
			}
		}
		return nil
	})
	switch sqlState(err) {
	case "":
	case foreignKeyViolation:
		return fmt.Errorf("%w: device %s", store.ErrNotFound, h.DeviceID)
	case uniqueViolation:
		return fmt.Errorf("%w: journal of %s created concurrently", store.ErrConflict, h.DeviceID)
	}
	if err != nil && !errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("store: journal of %s: %w", h.DeviceID, err)
	}
	return err
}

// AddSecurityEvents merges counted events into their rows of the minute.
func (s *Store) AddSecurityEvents(ctx context.Context, events []store.SecurityEvent) error {
	events, err := sqlrow.CheckSecurityEvents(events)
	if err != nil || len(events) == 0 {
		return err
	}
	err = s.tx(ctx, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for _, e := range events {
			b.Queue(`INSERT INTO security_events (device_id, kind, detail, at, staff, source, hits, last_at, bucket)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
				ON CONFLICT (kind, device_id, staff, source, bucket) WHERE bucket <> 0 DO UPDATE SET hits = security_events.hits + excluded.hits,
				at = LEAST(security_events.at, excluded.at), last_at = GREATEST(security_events.last_at, excluded.last_at), detail = excluded.detail`,
				e.DeviceID, e.Kind, e.Detail, ts(e.At), e.Staff, e.Source, e.Count, ts(e.Last), store.SecurityMinute(e.At))
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return fmt.Errorf("store: security events: %w", err)
	}
	return nil
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
	rows, err := s.pool.Query(ctx, `SELECT `+sqlrow.SecurityEventCols+` FROM security_events
		WHERE id > $1 AND ($2 = '' OR device_id = $2) AND ($3 = '' OR staff = $3) AND ($4 = '' OR kind = $4 OR kind LIKE $5) AND last_at >= $6
		ORDER BY `+order+` LIMIT $7`, f.AfterID, f.DeviceID, f.Staff, f.Kind, sqlrow.SecurityKindLike(f.Kind), ts(f.Since), f.Limit)
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
	err := s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM security_events WHERE bucket <> 0 AND last_at < $1`, ts(before))
		if err != nil {
			return err
		}
		n = tag.RowsAffected()
		if keep > 0 {
			if tag, err = tx.Exec(ctx, `DELETE FROM security_events WHERE bucket <> 0 AND id < (
				SELECT id FROM security_events WHERE bucket <> 0 ORDER BY id DESC LIMIT 1 OFFSET $1)`, keep-1); err != nil {
				return err
			}
			n += tag.RowsAffected()
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
	rows, _ := s.pool.Query(ctx, `SELECT DISTINCT e.device_id FROM epochs e LEFT JOIN journal_heads h ON h.device_id = e.device_id
		WHERE (SELECT r.id FROM records r WHERE r.epoch_id = e.id AND r.kind = '`+wire.KindJournal+`'
			ORDER BY r.seq DESC LIMIT 1) > COALESCE(h.last_record, 0)
		ORDER BY e.device_id`)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("store: journals behind: %w", err)
	}
	return ids, nil
}
