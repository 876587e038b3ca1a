package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/internal/sqlrow"
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
			if _, err := tx.Exec(ctx, `INSERT INTO security_events (device_id, kind, record_id, idx, detail, at) VALUES ($1, $2, $3, $4, $5, $6)`,
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

// ListSecurityEvents lists security events, oldest first.
func (s *Store) ListSecurityEvents(ctx context.Context, f store.SecurityEventFilter) ([]store.SecurityEvent, error) {
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	rows, err := s.pool.Query(ctx, `SELECT `+sqlrow.SecurityEventCols+` FROM security_events
		WHERE id > $1 AND ($2 = '' OR device_id = $2) ORDER BY id LIMIT $3`, f.AfterID, f.DeviceID, f.Limit)
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
