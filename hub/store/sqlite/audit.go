package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/internal/sqlrow"
)

// AppendAudit appends an entry to the chain (writes are serialized: one writer).
func (s *Store) AppendAudit(ctx context.Context, e store.StaffAction) (store.StaffAction, error) {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var prev string
		err := tx.QueryRowContext(ctx, `SELECT hash FROM staff_audit ORDER BY id DESC LIMIT 1`).Scan(&prev)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("store: audit: %w", err)
		}
		if e, err = sqlrow.ChainStaffAction(e, prev); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `INSERT INTO staff_audit (at, actor, roles, action, target, source, status, result, prev, hash)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`, sqlrow.StaffActionArgs(e)...).Scan(&e.ID)
	})
	return e, err
}

// ListAudit lists audit entries, newest first.
func (s *Store) ListAudit(ctx context.Context, f store.StaffActionFilter) ([]store.StaffAction, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	rows, err := s.db.R.QueryContext(ctx, `SELECT `+sqlrow.StaffActionCols+` FROM staff_audit
		WHERE (? = '' OR actor = ?) AND (? = '' OR target = ?) AND (? = 0 OR id < ?) ORDER BY id DESC LIMIT ?`,
		f.Actor, f.Actor, f.Target, f.Target, f.BeforeID, f.BeforeID, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("store: audit: %w", err)
	}
	defer rows.Close()
	var out []store.StaffAction
	for rows.Next() {
		e, err := sqlrow.StaffAction(rows)
		if err != nil {
			return nil, fmt.Errorf("store: audit: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}
