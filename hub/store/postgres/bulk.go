package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/internal/sqlrow"
)

// CreateBulkJob stores a job and its kiosks.
func (s *Store) CreateBulkJob(ctx context.Context, j store.BulkJob, items []store.BulkItem) error {
	if j.ID == "" || j.Key == "" || j.Action == "" || j.CreatedBy == "" {
		return invalid("bulk job needs an id, an idempotency key, an action and its creator")
	}
	return s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO bulk_jobs (`+sqlrow.BulkJobCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			sqlrow.BulkJobArgs(j)...); err != nil {
			return exists(err, "bulk job", j.ID+" or key "+j.Key)
		}
		b := &pgx.Batch{}
		for _, it := range items {
			b.Queue(`INSERT INTO bulk_items (job_id, `+sqlrow.BulkItemCols+`) VALUES ($1, $2, $3, $4, $5, $6)`,
				j.ID, it.DeviceID, it.State, it.Ref, it.Error, ts(it.UpdatedAt))
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("store: bulk items: %w", err)
		}
		return nil
	})
}

// GetBulkJob returns a job.
func (s *Store) GetBulkJob(ctx context.Context, id string) (store.BulkJob, error) {
	j, err := sqlrow.BulkJob(s.pool.QueryRow(ctx, `SELECT `+sqlrow.BulkJobCols+` FROM bulk_jobs WHERE id = $1`, id))
	if err != nil {
		return j, notFound(err, "bulk job", id)
	}
	return j, nil
}

// BulkJobByKey returns the job createdBy created with key.
func (s *Store) BulkJobByKey(ctx context.Context, createdBy, key string) (store.BulkJob, error) {
	j, err := sqlrow.BulkJob(s.pool.QueryRow(ctx, `SELECT `+sqlrow.BulkJobCols+` FROM bulk_jobs WHERE created_by = $1 AND idem_key = $2`,
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
	return queryAll(ctx, s.pool, sqlrow.BulkJob, `SELECT `+sqlrow.BulkJobCols+` FROM bulk_jobs WHERE (NOT $1::boolean OR done_at = 0)
		ORDER BY created_at DESC, id LIMIT $2`, unfinished, limit)
}

// BulkItems lists a job's kiosks by ID.
func (s *Store) BulkItems(ctx context.Context, id string) ([]store.BulkItem, error) {
	return queryAll(ctx, s.pool, sqlrow.BulkItem, `SELECT `+sqlrow.BulkItemCols+` FROM bulk_items WHERE job_id = $1 ORDER BY device_id`, id)
}

// ClaimBulkItems claims kiosks of a job in one statement. The rows it takes are locked (SKIP
// LOCKED passes over those another replica is claiming at this moment) and their claim checked
// again once locked, so two replicas never both get one.
func (s *Store) ClaimBulkItems(ctx context.Context, id string, c store.BulkClaim) ([]store.BulkItem, error) {
	items, err := queryAll(ctx, s.pool, sqlrow.BulkItem, `UPDATE bulk_items SET claimed_by = $2, claimed_until = $5
		WHERE job_id = $1 AND device_id IN (SELECT device_id FROM bulk_items
			WHERE job_id = $1 AND state = $3 AND ref = '' AND (claimed_by = $2 OR claimed_until < $4)
			ORDER BY device_id LIMIT $6 FOR UPDATE SKIP LOCKED)
		RETURNING `+sqlrow.BulkItemCols, id, c.Owner, c.State, ts(c.Now), ts(c.Until), c.N)
	slices.SortFunc(items, func(a, b store.BulkItem) int { return strings.Compare(a.DeviceID, b.DeviceID) })
	return items, err
}

// UpdateBulkItems stores the new state of some of a job's kiosks.
func (s *Store) UpdateBulkItems(ctx context.Context, id string, items []store.BulkItem) error {
	if len(items) == 0 {
		return nil
	}
	return s.tx(ctx, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for _, it := range items {
			b.Queue(`UPDATE bulk_items SET state = $1, ref = $2, error = $3, updated_at = $4 WHERE job_id = $5 AND device_id = $6`,
				it.State, it.Ref, it.Error, ts(it.UpdatedAt), id, it.DeviceID)
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("store: bulk items: %w", err)
		}
		return nil
	})
}

// FinishBulkJob marks a job done.
func (s *Store) FinishBulkJob(ctx context.Context, id string, at time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE bulk_jobs SET done_at = $1 WHERE id = $2`, ts(at), id)
	if err != nil {
		return fmt.Errorf("store: finish bulk job: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: bulk job %s", store.ErrNotFound, id)
	}
	return nil
}
