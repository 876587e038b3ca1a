package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/internal/sqlrow"
)

// CreateBulkJob stores a job and its kiosks.
func (s *Store) CreateBulkJob(ctx context.Context, j store.BulkJob, items []store.BulkItem) error {
	if j.ID == "" || j.Key == "" || j.Action == "" || j.CreatedBy == "" {
		return invalid("bulk job needs an id, an idempotency key, an action and its creator")
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO bulk_jobs (`+sqlrow.BulkJobCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			sqlrow.BulkJobArgs(j)...); err != nil {
			return exists(err, "bulk job", j.ID+" or key "+j.Key)
		}
		st, err := tx.PrepareContext(ctx, `INSERT INTO bulk_items (job_id, `+sqlrow.BulkItemCols+`) VALUES (?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, it := range items {
			if _, err := st.ExecContext(ctx, j.ID, it.DeviceID, it.State, it.Ref, it.Error, ts(it.UpdatedAt)); err != nil {
				return fmt.Errorf("store: bulk item %s: %w", it.DeviceID, err)
			}
		}
		return nil
	})
}

// GetBulkJob returns a job.
func (s *Store) GetBulkJob(ctx context.Context, id string) (store.BulkJob, error) {
	j, err := sqlrow.BulkJob(s.db.R.QueryRowContext(ctx, `SELECT `+sqlrow.BulkJobCols+` FROM bulk_jobs WHERE id = ?`, id))
	if err != nil {
		return j, notFound(err, "bulk job", id)
	}
	return j, nil
}

// BulkJobByKey returns the job createdBy created with key.
func (s *Store) BulkJobByKey(ctx context.Context, createdBy, key string) (store.BulkJob, error) {
	j, err := sqlrow.BulkJob(s.db.R.QueryRowContext(ctx, `SELECT `+sqlrow.BulkJobCols+` FROM bulk_jobs WHERE created_by = ? AND idem_key = ?`,
		createdBy, key))
	if err != nil {
		return j, notFound(err, "bulk job with key", key)
	}
	return j, nil
}

// ListBulkJobs lists jobs, newest first.
func (s *Store) ListBulkJobs(ctx context.Context, unfinished bool, limit int) ([]store.BulkJob, error) {
	if limit <= 0 {
		limit = 100
	}
	return queryAll(ctx, s.db.R, sqlrow.BulkJob, `SELECT `+sqlrow.BulkJobCols+` FROM bulk_jobs WHERE (? = 0 OR done_at = 0)
		ORDER BY created_at DESC, id LIMIT ?`, unfinished, limit)
}

// BulkItems lists a job's kiosks by ID.
func (s *Store) BulkItems(ctx context.Context, id string) ([]store.BulkItem, error) {
	return queryAll(ctx, s.db.R, sqlrow.BulkItem, `SELECT `+sqlrow.BulkItemCols+` FROM bulk_items WHERE job_id = ? ORDER BY device_id`, id)
}

// ClaimBulkItems claims kiosks of a job in one statement (SQLite has one writer at a time).
func (s *Store) ClaimBulkItems(ctx context.Context, id string, c store.BulkClaim) ([]store.BulkItem, error) {
	items, err := queryAll(ctx, s.db.W, sqlrow.BulkItem, `UPDATE bulk_items SET claimed_by = ?2, claimed_until = ?5
		WHERE job_id = ?1 AND device_id IN (SELECT device_id FROM bulk_items
			WHERE job_id = ?1 AND state = ?3 AND ref = '' AND (claimed_by = ?2 OR claimed_until < ?4)
			ORDER BY device_id LIMIT ?6)
		RETURNING `+sqlrow.BulkItemCols, id, c.Owner, c.State, ts(c.Now), ts(c.Until), c.N)
	slices.SortFunc(items, func(a, b store.BulkItem) int { return strings.Compare(a.DeviceID, b.DeviceID) })
	return items, err
}

// UpdateBulkItems stores the new state of some of a job's kiosks.
func (s *Store) UpdateBulkItems(ctx context.Context, id string, items []store.BulkItem) error {
	if len(items) == 0 {
		return nil
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, `UPDATE bulk_items SET state = ?, ref = ?, error = ?, updated_at = ? WHERE job_id = ? AND device_id = ?`)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, it := range items {
			if _, err := st.ExecContext(ctx, it.State, it.Ref, it.Error, ts(it.UpdatedAt), id, it.DeviceID); err != nil {
				return fmt.Errorf("store: bulk item %s: %w", it.DeviceID, err)
			}
		}
		return nil
	})
}

// FinishBulkJob marks a job done.
func (s *Store) FinishBulkJob(ctx context.Context, id string, at time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE bulk_jobs SET done_at = ? WHERE id = ?`, ts(at), id)
		if err != nil {
			return fmt.Errorf("store: finish bulk job: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: bulk job %s", store.ErrNotFound, id)
		}
		return nil
	})
}
