package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// SetOptOut records an opt-out (or its end).
func (s *Store) SetOptOut(ctx context.Context, account string, out bool, at time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		q := `DELETE FROM outreach_opt_outs WHERE account = ?`
		args := []any{account}
		if out {
			q = `INSERT INTO outreach_opt_outs (account, at) VALUES (?, ?) ON CONFLICT (account) DO NOTHING`
			args = append(args, ts(at))
		}
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("store: opt-out: %w", err)
		}
		return nil
	})
}

// OptedOut reports whether an account opted out.
func (s *Store) OptedOut(ctx context.Context, account string) (bool, error) {
	var n int
	if err := s.db.R.QueryRowContext(ctx, `SELECT count(*) FROM outreach_opt_outs WHERE account = ?`, account).Scan(&n); err != nil {
		return false, fmt.Errorf("store: opt-out: %w", err)
	}
	return n > 0, nil
}
