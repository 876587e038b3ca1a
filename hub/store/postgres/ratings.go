package postgres

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/internal/sqlrow"
)

// AddRating stores a rating and, for a bad one, its follow-up.
func (s *Store) AddRating(ctx context.Context, r store.Rating, due time.Time) error {
	if err := store.CheckRating(r); err != nil {
		return err
	}
	return s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO ratings (`+sqlrow.RatingCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
			sqlrow.RatingArgs(&r)...); err != nil {
			return exists(err, "rating", r.ID)
		}
		if r.Score > store.BadScore {
			return nil
		}
		if _, err := tx.Exec(ctx, `INSERT INTO follow_ups (rating_id, due) VALUES ($1, $2)`, r.ID, ts(due)); err != nil {
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
	rows, err := s.pool.Query(ctx, sqlrow.RatingSummarySQL(col, "avg(score)::float8", func(n int) string { return "$" + strconv.Itoa(n) }),
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
	rows, err := s.pool.Query(ctx, `SELECT `+sqlrow.FollowUpCols+` FROM follow_ups f JOIN ratings r ON r.id = f.rating_id
		WHERE $1 OR f.resolved_at = 0 ORDER BY f.due, r.id LIMIT $2`, f.All, store.CaseLimit(f.Limit))
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
	tag, err := s.pool.Exec(ctx, `UPDATE follow_ups SET resolved_at = $1, resolved_by = $2, note = $3 WHERE rating_id = $4 AND resolved_at = 0`,
		ts(at), by, note, id)
	if err != nil {
		return fmt.Errorf("store: follow-up %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return notFound(pgx.ErrNoRows, "open follow-up", id)
	}
	return nil
}

// ReplaceRater gives an account's ratings another rater.
func (s *Store) ReplaceRater(ctx context.Context, account, anon string) error {
	if _, err := s.pool.Exec(ctx, `UPDATE ratings SET account = $1, case_id = '' WHERE account = $2`, anon, account); err != nil {
		return fmt.Errorf("store: replace rater: %w", err)
	}
	return nil
}
