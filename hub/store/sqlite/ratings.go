package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/internal/sqlrow"
)

// AddRating stores a rating and, for a bad one, its follow-up.
func (s *Store) AddRating(ctx context.Context, r store.Rating, due time.Time) error {
	if err := store.CheckRating(r); err != nil {
		return err
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO ratings (`+sqlrow.RatingCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			sqlrow.RatingArgs(&r)...); err != nil {
			return exists(err, "rating", r.ID)
		}
		if r.Score > store.BadScore {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO follow_ups (rating_id, due) VALUES (?, ?)`, r.ID, ts(due)); err != nil {
			return fmt.Errorf("store: follow-up: %w", err)
		}
		return nil
	})
}

// RatingSummary aggregates ratings by a dimension.
func (s *Store) RatingSummary(ctx context.Context, q store.RatingQuery) ([]store.RatingGroup, error) {
	col := sqlrow.RatingDimension(q.By)
	if col == "" {
		return nil, invalid("rating dimension %q", q.By)
	}
	rows, err := s.db.R.QueryContext(ctx, sqlrow.RatingSummarySQL(col, "avg(score)", func(int) string { return "?" }),
		ts(q.From), ts(q.To), q.MinCitizens)
	if err != nil {
		return nil, fmt.Errorf("store: rating summary: %w", err)
	}
	defer rows.Close()
	out, err := sqlrow.RatingGroups(rows)
	if err != nil {
		return nil, fmt.Errorf("store: rating summary: %w", err)
	}
	return out, nil
}

// ListFollowUps returns follow-ups, oldest due first.
func (s *Store) ListFollowUps(ctx context.Context, f store.FollowUpFilter) ([]store.FollowUp, error) {
	rows, err := s.db.R.QueryContext(ctx, `SELECT `+sqlrow.FollowUpCols+` FROM follow_ups f JOIN ratings r ON r.id = f.rating_id
		WHERE ? OR f.resolved_at = 0 ORDER BY f.due, r.id LIMIT ?`, f.All, store.CaseLimit(f.Limit))
	if err != nil {
		return nil, fmt.Errorf("store: follow-ups: %w", err)
	}
	defer rows.Close()
	out, err := sqlrow.FollowUps(rows)
	if err != nil {
		return nil, fmt.Errorf("store: follow-ups: %w", err)
	}
	return out, nil
}

// ResolveFollowUp closes an open follow-up.
func (s *Store) ResolveFollowUp(ctx context.Context, id, by, note string, at time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE follow_ups SET resolved_at = ?, resolved_by = ?, note = ? WHERE rating_id = ? AND resolved_at = 0`,
			ts(at), by, note, id)
		if err != nil {
			return fmt.Errorf("store: follow-up %s: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return notFound(sql.ErrNoRows, "open follow-up", id)
		}
		return nil
	})
}

// ReplaceRater gives an account's ratings another rater.
func (s *Store) ReplaceRater(ctx context.Context, account, anon string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE ratings SET account = ?, case_id = '' WHERE account = ?`, anon, account); err != nil {
			return fmt.Errorf("store: replace rater: %w", err)
		}
		return nil
	})
}
