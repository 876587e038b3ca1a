package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/internal/sqlrow"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// CreateCommand stores a new command in state queued (whatever c.State says).
func (s *Store) CreateCommand(ctx context.Context, c store.Command) error {
	if c.ID == "" || c.DeviceID == "" || c.Name == "" || c.ExpiresAt.IsZero() {
		return invalid("command needs an id, a device, a name and an expiry")
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = time.Now()
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO commands (id, device_id, name, args, state, created_at, expires_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $6)`, c.ID, c.DeviceID, c.Name, orNull(c.Args), string(wire.CmdQueued),
		ts(c.CreatedAt), ts(c.ExpiresAt))
	if sqlState(err) == foreignKeyViolation {
		return fmt.Errorf("%w: device %s", store.ErrNotFound, c.DeviceID)
	}
	if err != nil {
		return exists(err, "command", c.ID)
	}
	return nil
}

func collectCommands(rows pgx.Rows) ([]store.Command, error) {
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Command, error) { return sqlrow.Command(r) })
	if err != nil {
		return nil, fmt.Errorf("store: list commands: %w", err)
	}
	return out, nil
}

// GetCommand returns a command.
func (s *Store) GetCommand(ctx context.Context, id string) (store.Command, error) {
	c, err := sqlrow.Command(s.pool.QueryRow(ctx, `SELECT `+sqlrow.CommandCols+` FROM commands WHERE id = $1`, id))
	if err != nil {
		return store.Command{}, notFound(err, "command", id)
	}
	return c, nil
}

// ListCommands returns a device's latest commands, newest first (limit 0: 100).
func (s *Store) ListCommands(ctx context.Context, deviceID string, limit int) ([]store.Command, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, _ := s.pool.Query(ctx, `SELECT `+sqlrow.CommandCols+` FROM commands WHERE device_id = $1 ORDER BY n DESC LIMIT $2`, deviceID, limit)
	return collectCommands(rows)
}

// PendingCommands returns the device's queued or delivered commands not expired at now, oldest
// first.
func (s *Store) PendingCommands(ctx context.Context, deviceID string, now time.Time) ([]store.Command, error) {
	rows, _ := s.pool.Query(ctx, `SELECT `+sqlrow.CommandCols+` FROM commands
		WHERE device_id = $1 AND state IN ('queued', 'delivered') AND expires_at > $2 ORDER BY n`, deviceID, ts(now))
	return collectCommands(rows)
}

// MarkDelivered moves queued commands to delivered (in ID order, the order in which CommitBatches
// locks commands).
func (s *Store) MarkDelivered(ctx context.Context, ids []string, at time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	ids = slices.Sorted(slices.Values(ids))
	return s.tx(ctx, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for _, id := range ids {
			b.Queue(`UPDATE commands SET state = 'delivered', delivered_at = $2, updated_at = $2
				WHERE id = $1 AND state = 'queued'`, id, ts(at))
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("store: mark delivered: %w", err)
		}
		return nil
	})
}

// DevicesWithQueued returns the devices with a queued command not expired at now (the partial
// index commands_open holds exactly the open commands).
func (s *Store) DevicesWithQueued(ctx context.Context, now time.Time) ([]string, error) {
	rows, _ := s.pool.Query(ctx, `SELECT DISTINCT device_id FROM commands
		WHERE state = 'queued' AND expires_at > $1 ORDER BY device_id`, ts(now))
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("store: devices with queued commands: %w", err)
	}
	return ids, nil
}

// DevicesBehind returns the devices whose desired version is ahead of what they reported.
func (s *Store) DevicesBehind(ctx context.Context) ([]string, error) {
	rows, _ := s.pool.Query(ctx, `SELECT d.device_id FROM desired d LEFT JOIN reported r ON r.device_id = d.device_id
		WHERE r.device_id IS NULL OR (r.version < d.version AND r.error = '') ORDER BY d.device_id`)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("store: devices behind their desired state: %w", err)
	}
	return ids, nil
}

// ExpireCommands moves queued or delivered commands whose expiry is <= now to expired and
// returns them, oldest first. It locks them in ID order first, as CommitBatches does.
func (s *Store) ExpireCommands(ctx context.Context, now time.Time) ([]store.Command, error) {
	var out []store.Command
	err := s.tx(ctx, func(tx pgx.Tx) error {
		const due = `state IN ('queued', 'delivered') AND expires_at <= $1`
		rows, _ := tx.Query(ctx, `SELECT id FROM commands WHERE `+due+` ORDER BY id FOR NO KEY UPDATE`, ts(now))
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil || len(ids) == 0 {
			return err
		}
		rows, _ = tx.Query(ctx, `WITH x AS (UPDATE commands SET state = 'expired', updated_at = $1 WHERE id = ANY($2) RETURNING *)
			SELECT `+sqlrow.CommandCols+` FROM x ORDER BY n`, ts(now), ids)
		out, err = collectCommands(rows)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: expire commands: %w", err)
	}
	return out, nil
}

// SetDesired stores a new desired document for a device with the next version (1 for the first).
func (s *Store) SetDesired(ctx context.Context, deviceID string, doc json.RawMessage, at time.Time) (store.DocState, error) {
	ds, err := s.UpdateDesired(ctx, []string{deviceID}, at, func(string, json.RawMessage) (json.RawMessage, error) { return doc, nil })
	if err != nil {
		return store.DocState{}, err
	}
	return ds[0], nil
}

// UpdateDesired changes the desired documents of devices in one transaction (store.State): the
// devices' desired rows are locked (in ID order, as every such transaction locks them), read,
// and written back in one statement.
func (s *Store) UpdateDesired(ctx context.Context, deviceIDs []string, at time.Time,
	update func(deviceID string, cur json.RawMessage) (json.RawMessage, error)) ([]store.DocState, error) {
	if err := store.CheckDeviceIDs(deviceIDs); err != nil {
		return nil, err
	}
	var out []store.DocState
	err := s.tx(ctx, func(tx pgx.Tx) error {
		out = make([]store.DocState, 0, len(deviceIDs))
		rows, _ := tx.Query(ctx, `SELECT id FROM devices WHERE id = ANY($1)`, deviceIDs)
		known, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("store: update desired: %w", err)
		}
		if len(known) < len(deviceIDs) {
			for _, id := range deviceIDs {
				if !slices.Contains(known, id) {
					return fmt.Errorf("%w: device %s", store.ErrNotFound, id)
				}
			}
		}
		cur := make(map[string][]byte, len(deviceIDs))
		rows, _ = tx.Query(ctx, `SELECT device_id, doc FROM desired WHERE device_id = ANY($1) ORDER BY device_id FOR UPDATE`, deviceIDs)
		var id string
		var doc []byte
		if _, err := pgx.ForEachRow(rows, []any{&id, &doc}, func() error { cur[id] = doc; return nil }); err != nil {
			return fmt.Errorf("store: update desired: %w", err)
		}
		docs := make([][]byte, len(deviceIDs))
		for i, id := range deviceIDs {
			next, err := update(id, cur[id])
			if err != nil {
				return err
			}
			if !json.Valid(next) {
				return invalid("desired doc of %s is not JSON", id)
			}
			docs[i] = next
			out = append(out, store.DocState{DeviceID: id, Doc: next, UpdatedAt: at.UTC()})
		}
		rows, _ = tx.Query(ctx, `INSERT INTO desired (device_id, version, doc, updated_at)
			SELECT id, 1, doc, $3 FROM unnest($1::text[], $2::bytea[]) AS u (id, doc)
			ON CONFLICT (device_id) DO UPDATE SET version = desired.version + 1, doc = excluded.doc, updated_at = excluded.updated_at
			RETURNING device_id, version`, deviceIDs, docs, ts(at))
		versions := make(map[string]int64, len(deviceIDs))
		var v int64
		if _, err := pgx.ForEachRow(rows, []any{&id, &v}, func() error { versions[id] = v; return nil }); err != nil {
			return fmt.Errorf("store: set desired: %w", err)
		}
		for i := range out {
			out[i].Version = versions[out[i].DeviceID]
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// GetDesired returns a device's desired document; ErrNotFound if it has none.
func (s *Store) GetDesired(ctx context.Context, deviceID string) (store.DocState, error) {
	d := store.DocState{DeviceID: deviceID}
	var updated int64
	var doc []byte
	err := s.pool.QueryRow(ctx, `SELECT version, doc, updated_at FROM desired WHERE device_id = $1`, deviceID).
		Scan(&d.Version, &doc, &updated)
	if err != nil {
		return store.DocState{}, notFound(err, "desired state of device", deviceID)
	}
	d.Doc, d.UpdatedAt = doc, fromTS(updated)
	return d, nil
}

// GetReported returns the state a device last reported; ErrNotFound if it has reported none.
func (s *Store) GetReported(ctx context.Context, deviceID string) (store.DocState, error) {
	d := store.DocState{DeviceID: deviceID}
	var updated int64
	var doc []byte
	err := s.pool.QueryRow(ctx, `SELECT version, doc, error, updated_at FROM reported WHERE device_id = $1`, deviceID).
		Scan(&d.Version, &doc, &d.Error, &updated)
	if err != nil {
		return store.DocState{}, notFound(err, "reported state of device", deviceID)
	}
	d.Doc, d.UpdatedAt = doc, fromTS(updated)
	return d, nil
}
