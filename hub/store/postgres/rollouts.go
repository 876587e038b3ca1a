package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/internal/sqlrow"
)

// CreateRollout stores a rollout and its kiosks.
func (s *Store) CreateRollout(ctx context.Context, r store.Rollout, devices []store.RolloutDevice) error {
	if r.ID == "" || r.Kind == "" || r.App == "" || r.Version == "" || r.State == "" {
		return invalid("rollout needs an id, a kind, an app, a version and a state")
	}
	return s.tx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO rollouts (`+sqlrow.RolloutCols+`) VALUES ($1, 1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			r.ID, r.Kind, r.App, r.Version, r.State, r.Wave, sqlrow.Spec(r.Spec), sqlrow.Spec(r.Progress), r.Reason, r.CreatedBy, ts(r.CreatedAt), ts(r.CreatedAt))
		if err != nil {
			return exists(err, "rollout", r.ID)
		}
		b := &pgx.Batch{}
		for _, d := range devices {
			b.Queue(`INSERT INTO rollout_devices (rollout_id, `+sqlrow.RolloutDeviceCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
				r.ID, d.DeviceID, d.Wave, d.Previous, d.State, d.Error, ts(d.UpdatedAt))
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("store: rollout devices: %w", err)
		}
		return nil
	})
}

// GetRollout returns a rollout.
func (s *Store) GetRollout(ctx context.Context, id string) (store.Rollout, error) {
	r, err := sqlrow.Rollout(s.pool.QueryRow(ctx, `SELECT `+sqlrow.RolloutCols+` FROM rollouts WHERE id = $1`, id))
	if err != nil {
		return r, notFound(err, "rollout", id)
	}
	return r, nil
}

// ListRollouts lists rollouts in those states (none: all), newest first.
func (s *Store) ListRollouts(ctx context.Context, states ...string) ([]store.Rollout, error) {
	q := `SELECT ` + sqlrow.RolloutCols + ` FROM rollouts`
	var args []any
	for i, st := range states {
		q += map[bool]string{true: " WHERE state IN (", false: ", "}[i == 0] + sqlrow.Placeholder("$", i+1)
		args = append(args, st)
	}
	if len(states) > 0 {
		q += ")"
	}
	return queryAll(ctx, s.pool, sqlrow.Rollout, q+` ORDER BY created_at DESC, id`, args...)
}

// UpdateRollout replaces a rollout's state if its revision is still r.Rev.
func (s *Store) UpdateRollout(ctx context.Context, r store.Rollout) (store.Rollout, error) {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE rollouts SET rev = rev + 1, state = $1, wave = $2, progress = $3, reason = $4, updated_at = $5
			WHERE id = $6 AND rev = $7`, r.State, r.Wave, sqlrow.Spec(r.Progress), r.Reason, ts(r.UpdatedAt), r.ID, r.Rev)
		if err != nil {
			return fmt.Errorf("store: update rollout: %w", err)
		}
		if tag.RowsAffected() == 0 {
			if _, err := s.GetRollout(ctx, r.ID); err != nil {
				return err
			}
			return fmt.Errorf("%w: rollout %s is not at revision %d", store.ErrStale, r.ID, r.Rev)
		}
		return nil
	})
	if err != nil {
		return r, err
	}
	r.Rev++
	return r, nil
}

// RolloutDevices lists a rollout's kiosks by wave and ID.
func (s *Store) RolloutDevices(ctx context.Context, id string) ([]store.RolloutDevice, error) {
	return queryAll(ctx, s.pool, sqlrow.RolloutDevice, `SELECT `+sqlrow.RolloutDeviceCols+` FROM rollout_devices WHERE rollout_id = $1 ORDER BY wave, device_id`, id)
}

// UpdateRolloutDevices stores the new state of some of a rollout's kiosks.
func (s *Store) UpdateRolloutDevices(ctx context.Context, id string, ds []store.RolloutDevice) error {
	if len(ds) == 0 {
		return nil
	}
	return s.tx(ctx, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for _, d := range ds {
			b.Queue(`UPDATE rollout_devices SET state = $1, error = $2, previous = $3, updated_at = $4 WHERE rollout_id = $5 AND device_id = $6`,
				d.State, d.Error, d.Previous, ts(d.UpdatedAt), id, d.DeviceID)
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("store: rollout devices: %w", err)
		}
		return nil
	})
}

// SetTags replaces a device's tags.
func (s *Store) SetTags(ctx context.Context, deviceID string, tags []string) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM devices WHERE id = $1 FOR UPDATE`, deviceID).Scan(&one); err != nil {
			return notFound(err, "device", deviceID)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM device_tags WHERE device_id = $1`, deviceID); err != nil {
			return err
		}
		for _, t := range tags {
			if _, err := tx.Exec(ctx, `INSERT INTO device_tags (device_id, tag) VALUES ($1, $2) ON CONFLICT DO NOTHING`, deviceID, t); err != nil {
				return fmt.Errorf("store: tag: %w", err)
			}
		}
		return nil
	})
}

// Tags returns every tagged device's tags.
func (s *Store) Tags(ctx context.Context) (map[string][]string, error) {
	rows, err := queryAll(ctx, s.pool, sqlrow.ScanTag, `SELECT device_id, tag FROM device_tags ORDER BY device_id, tag`)
	return sqlrow.Tags(rows), err
}
