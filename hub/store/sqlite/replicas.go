package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
)

// RenewLease extends a replica's lease; lapsed when it had none.
func (s *Store) RenewLease(ctx context.Context, replica string, now, until time.Time) (bool, error) {
	if replica == "" {
		return false, invalid("lease without a replica")
	}
	var lapsed bool
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE replicas SET renewed_at = ?, lease_until = ? WHERE id = ?`, ts(now), ts(until), replica)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n > 0 {
			lapsed = false
			return nil
		}
		lapsed = true
		_, err = tx.ExecContext(ctx, `INSERT INTO replicas (id, renewed_at, lease_until) VALUES (?, ?, ?)`, replica, ts(now), ts(until))
		return err
	})
	if err != nil {
		return false, fmt.Errorf("store: renew lease of %s: %w", replica, err)
	}
	return lapsed, nil
}

// ExpireLeases drops the leases that ended and marks offline the online devices of replicas
// without a lease.
func (s *Store) ExpireLeases(ctx context.Context, now time.Time) ([]string, error) {
	var ids []string
	err := s.tx(ctx, func(tx *sql.Tx) error {
		// The presence time of each device becomes its replica's last renewal, kept in a
		// temporary table for the update's join.
		if _, err := tx.ExecContext(ctx, `CREATE TEMP TABLE IF NOT EXISTS expired_leases (id TEXT PRIMARY KEY, renewed_at INTEGER NOT NULL)`); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM temp.expired_leases`); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO temp.expired_leases SELECT id, renewed_at FROM replicas WHERE lease_until < ?`, ts(now)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM replicas WHERE lease_until < ?`, ts(now)); err != nil {
			return err
		}
		const lost = `online AND NOT EXISTS (SELECT 1 FROM replicas r WHERE r.id = devices.replica)`
		const endedAt = `max(presence_at, coalesce((SELECT renewed_at FROM temp.expired_leases x WHERE x.id = devices.replica), 0))`
		if _, err := tx.ExecContext(ctx, `INSERT INTO presence_history (device_id, replica, started_at, ended_at, reason, detail)
				SELECT id, replica, presence_at, `+endedAt+`, ?, ? FROM devices WHERE `+lost,
			string(fleet.DisconnectHubLost), store.DetailLeaseExpired); err != nil {
			return err
		}
		var err error
		if ids, err = queryIDs(ctx, tx, `UPDATE devices SET online = 0, presence_at = `+endedAt+` WHERE `+lost+` RETURNING id`); err != nil {
			return err
		}
		return trimHistory(ctx, tx, ids)
	})
	if err != nil {
		return nil, fmt.Errorf("store: expire leases: %w", err)
	}
	slices.Sort(ids)
	return ids, nil
}

// ReleaseReplica drops a replica's lease and marks its online devices offline at at.
func (s *Store) ReleaseReplica(ctx context.Context, replica string, at time.Time) ([]string, error) {
	var ids []string
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM replicas WHERE id = ?`, replica); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO presence_history (device_id, replica, started_at, ended_at, reason, detail)
				SELECT id, replica, presence_at, max(presence_at, ?1), ?3, ?4 FROM devices WHERE online AND replica = ?2`,
			ts(at), replica, string(fleet.DisconnectHubLost), store.DetailReleased); err != nil {
			return err
		}
		var err error
		if ids, err = queryIDs(ctx, tx, `UPDATE devices SET online = 0, presence_at = max(presence_at, ?)
			WHERE online AND replica = ? RETURNING id`, ts(at), replica); err != nil {
			return err
		}
		return trimHistory(ctx, tx, ids)
	})
	if err != nil {
		return nil, fmt.Errorf("store: release replica %s: %w", replica, err)
	}
	slices.Sort(ids)
	return ids, nil
}

// PinFingerprint pins fp under name unless a value is pinned there.
func (s *Store) PinFingerprint(ctx context.Context, name string, fp []byte) error {
	var pinned []byte
	err := s.tx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT value FROM pinned WHERE name = ?`, name).Scan(&pinned)
		if errors.Is(err, sql.ErrNoRows) {
			pinned = fp
			_, err = tx.ExecContext(ctx, `INSERT INTO pinned (name, value) VALUES (?, ?)`, name, fp)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("store: pin %s: %w", name, err)
	}
	if !bytes.Equal(pinned, fp) {
		return fmt.Errorf("%w: %s", store.ErrMismatch, name)
	}
	return nil
}
