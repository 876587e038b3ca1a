package postgres

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
)

// RenewLease extends a replica's lease; lapsed when it had none (xmax is 0 on a row the
// statement inserted).
func (s *Store) RenewLease(ctx context.Context, replica string, now, until time.Time) (bool, error) {
	if replica == "" {
		return false, invalid("lease without a replica")
	}
	var inserted bool
	err := s.pool.QueryRow(ctx, `INSERT INTO replicas (id, renewed_at, lease_until) VALUES ($1, $2, $3)
		ON CONFLICT (id) DO UPDATE SET renewed_at = excluded.renewed_at, lease_until = excluded.lease_until
		RETURNING xmax = 0`, replica, ts(now), ts(until)).Scan(&inserted)
	if err != nil {
		return false, fmt.Errorf("store: renew lease of %s: %w", replica, err)
	}
	return inserted, nil
}

// ExpireLeases drops the leases that ended and marks offline the online devices of replicas
// without a lease. It locks those devices in ID order, as SetPresences and CommitBatches do.
func (s *Store) ExpireLeases(ctx context.Context, now time.Time) ([]string, error) {
	var out []string
	err := s.tx(ctx, func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, `DELETE FROM replicas WHERE lease_until < $1 RETURNING id, renewed_at`, ts(now))
		renewed := map[string]int64{}
		var id string
		var at int64
		if _, err := pgx.ForEachRow(rows, []any{&id, &at}, func() error { renewed[id] = at; return nil }); err != nil {
			return err
		}
		rows, _ = tx.Query(ctx, `SELECT d.id, d.replica FROM devices d
			WHERE d.online AND NOT EXISTS (SELECT 1 FROM replicas r WHERE r.id = d.replica)
			ORDER BY d.id FOR NO KEY UPDATE OF d`)
		var ids []string
		var ats []int64
		var replica string
		if _, err := pgx.ForEachRow(rows, []any{&id, &replica}, func() error {
			ids, ats = append(ids, id), append(ats, renewed[replica])
			return nil
		}); err != nil || len(ids) == 0 {
			return err
		}
		var err error
		out, err = setOffline(ctx, tx, ids, ats, store.DetailLeaseExpired)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: expire leases: %w", err)
	}
	return out, nil
}

// ReleaseReplica drops a replica's lease and marks its online devices offline at at.
func (s *Store) ReleaseReplica(ctx context.Context, replica string, at time.Time) ([]string, error) {
	var out []string
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM replicas WHERE id = $1`, replica); err != nil {
			return err
		}
		rows, _ := tx.Query(ctx, `SELECT id FROM devices WHERE online AND replica = $1 ORDER BY id FOR NO KEY UPDATE`, replica)
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil || len(ids) == 0 {
			return err
		}
		ats := make([]int64, len(ids))
		for i := range ats {
			ats[i] = ts(at)
		}
		out, err = setOffline(ctx, tx, ids, ats, store.DetailReleased)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: release replica %s: %w", replica, err)
	}
	return out, nil
}

// setOffline marks devices ids[i] offline, their presence time raised to ats[i], ends their
// sessions in their presence histories as lost with their replica (detail), and returns those it
// changed, by ID. The caller holds their rows' locks.
func setOffline(ctx context.Context, tx pgx.Tx, ids []string, ats []int64, detail string) ([]string, error) {
	if _, err := tx.Exec(ctx, `INSERT INTO presence_history (device_id, replica, started_at, ended_at, reason, detail)
		SELECT d.id, d.replica, d.presence_at, greatest(d.presence_at, x.at), $3, $4
		FROM devices d JOIN unnest($1::text[], $2::bigint[]) AS x(id, at) ON d.id = x.id WHERE d.online ORDER BY d.id`,
		ids, ats, string(fleet.DisconnectHubLost), detail); err != nil {
		return nil, err
	}
	rows, _ := tx.Query(ctx, `UPDATE devices d SET online = false, presence_at = greatest(d.presence_at, x.at)
		FROM unnest($1::text[], $2::bigint[]) AS x(id, at) WHERE d.id = x.id AND d.online RETURNING d.id`, ids, ats)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	slices.Sort(out)
	b := &pgx.Batch{}
	for _, id := range out {
		b.Queue(trimHistorySQL, id, store.HistoryKeep)
	}
	return out, tx.SendBatch(ctx, b).Close()
}

// PinFingerprint pins fp under name unless a value is pinned there.
func (s *Store) PinFingerprint(ctx context.Context, name string, fp []byte) error {
	var pinned []byte
	_, err := s.pool.Exec(ctx, `INSERT INTO pinned (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`, name, fp)
	if err == nil {
		// A statement of its own: it sees a value another replica pinned meanwhile.
		err = s.pool.QueryRow(ctx, `SELECT value FROM pinned WHERE name = $1`, name).Scan(&pinned)
	}
	if err != nil {
		return fmt.Errorf("store: pin %s: %w", name, err)
	}
	if !bytes.Equal(pinned, fp) {
		return fmt.Errorf("%w: %s", store.ErrMismatch, name)
	}
	return nil
}
