package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/internal/sqlrow"
)

// auditLock is the advisory lock key that serializes appends to the audit chain across replicas.
const auditLock = 0x6b66617564697421 // "kfaudit!"

// AppendAudit appends an entry to the chain, one replica at a time.
func (s *Store) AppendAudit(ctx context.Context, e store.StaffAction) (store.StaffAction, error) {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(auditLock)); err != nil {
			return err
		}
		var prev string
		err := tx.QueryRow(ctx, `SELECT hash FROM staff_audit ORDER BY id DESC LIMIT 1`).Scan(&prev)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if e, err = sqlrow.ChainStaffAction(e, prev); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `INSERT INTO staff_audit (at, actor, roles, action, target, source, status, result, prev, hash)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id`, sqlrow.StaffActionArgs(e)...).Scan(&e.ID)
	})
	if err != nil && !errors.Is(err, store.ErrInvalid) {
		err = fmt.Errorf("store: audit: %w", err)
	}
	return e, err
}

// ListAudit lists audit entries, newest first.
func (s *Store) ListAudit(ctx context.Context, f store.StaffActionFilter) ([]store.StaffAction, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	rows, err := s.pool.Query(ctx, `SELECT `+sqlrow.StaffActionCols+` FROM staff_audit
		WHERE ($1 = '' OR actor = $1) AND ($2 = '' OR target = $2) AND ($3 = 0 OR id < $3) ORDER BY id DESC LIMIT $4`,
		f.Actor, f.Target, f.BeforeID, f.Limit)
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
