package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

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
	return s.tx(ctx, func(tx *sql.Tx) error {
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM devices WHERE id = ?`, c.DeviceID).Scan(&one); err != nil {
			return notFound(err, "device", c.DeviceID)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO commands (id, device_id, name, args, state, created_at, expires_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, c.ID, c.DeviceID, c.Name, orNull(c.Args), string(wire.CmdQueued),
			ts(c.CreatedAt), ts(c.ExpiresAt), ts(c.CreatedAt))
		if err != nil {
			return exists(err, "command", c.ID)
		}
		return nil
	})
}

type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

func queryCommands(ctx context.Context, db querier, q string, args ...any) ([]store.Command, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list commands: %w", err)
	}
	defer rows.Close()
	var out []store.Command
	for rows.Next() {
		c, err := sqlrow.Command(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list commands: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// GetCommand returns a command.
func (s *Store) GetCommand(ctx context.Context, id string) (store.Command, error) {
	c, err := sqlrow.Command(s.db.R.QueryRowContext(ctx, `SELECT `+sqlrow.CommandCols+` FROM commands WHERE id = ?`, id))
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
	return queryCommands(ctx, s.db.R, `SELECT `+sqlrow.CommandCols+` FROM commands WHERE device_id = ? ORDER BY n DESC LIMIT ?`, deviceID, limit)
}

// PendingCommands returns the device's queued or delivered commands not expired at now, oldest
// first.
func (s *Store) PendingCommands(ctx context.Context, deviceID string, now time.Time) ([]store.Command, error) {
	return queryCommands(ctx, s.db.R, `SELECT `+sqlrow.CommandCols+` FROM commands
		WHERE device_id = ? AND state IN ('queued', 'delivered') AND expires_at > ? ORDER BY n`, deviceID, ts(now))
}

// MarkDelivered moves queued commands to delivered.
func (s *Store) MarkDelivered(ctx context.Context, ids []string, at time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, `UPDATE commands SET state = 'delivered', delivered_at = ?, updated_at = ?
			WHERE id = ? AND state = 'queued'`)
		if err != nil {
			return fmt.Errorf("store: mark delivered: %w", err)
		}
		defer st.Close()
		for _, id := range ids {
			if _, err := st.ExecContext(ctx, ts(at), ts(at), id); err != nil {
				return fmt.Errorf("store: mark delivered %s: %w", id, err)
			}
		}
		return nil
	})
}

// DevicesWithQueued returns the devices with a queued command not expired at now.
func (s *Store) DevicesWithQueued(ctx context.Context, now time.Time) ([]string, error) {
	ids, err := queryIDs(ctx, s.db.R, `SELECT DISTINCT device_id FROM commands
		WHERE state = 'queued' AND expires_at > ? ORDER BY device_id`, ts(now))
	if err != nil {
		return nil, fmt.Errorf("store: devices with queued commands: %w", err)
	}
	return ids, nil
}

// DevicesBehind returns the devices whose desired version is ahead of what they reported.
func (s *Store) DevicesBehind(ctx context.Context) ([]string, error) {
	ids, err := queryIDs(ctx, s.db.R, `SELECT d.device_id FROM desired d LEFT JOIN reported r ON r.device_id = d.device_id
		WHERE r.device_id IS NULL OR (r.version < d.version AND r.error = '') ORDER BY d.device_id`)
	if err != nil {
		return nil, fmt.Errorf("store: devices behind their desired state: %w", err)
	}
	return ids, nil
}

// queryer is a database, a connection or a transaction.
type queryer interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

// queryIDs runs a query of one text column and returns its values.
func queryIDs(ctx context.Context, db queryer, q string, args ...any) ([]string, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// ExpireCommands moves queued or delivered commands whose expiry is <= now to expired and
// returns them, oldest first.
func (s *Store) ExpireCommands(ctx context.Context, now time.Time) ([]store.Command, error) {
	var out []store.Command
	err := s.tx(ctx, func(tx *sql.Tx) error {
		const due = ` WHERE state IN ('queued', 'delivered') AND expires_at <= ?`
		var err error
		if out, err = queryCommands(ctx, tx, `SELECT `+sqlrow.CommandCols+` FROM commands`+due+` ORDER BY n`, ts(now)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE commands SET state = 'expired', updated_at = ?`+due, ts(now), ts(now)); err != nil {
			return fmt.Errorf("store: expire commands: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].State, out[i].UpdatedAt = wire.CmdExpired, now.UTC()
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

// UpdateDesired changes the desired documents of devices in one transaction (store.State).
func (s *Store) UpdateDesired(ctx context.Context, deviceIDs []string, at time.Time,
	update func(deviceID string, cur json.RawMessage) (json.RawMessage, error)) ([]store.DocState, error) {
	if err := store.CheckDeviceIDs(deviceIDs); err != nil {
		return nil, err
	}
	out := make([]store.DocState, 0, len(deviceIDs))
	err := s.tx(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		// The device's row, with its desired document if it has one: no row, no device.
		cur, err := tx.PrepareContext(ctx, `SELECT d.doc FROM devices v LEFT JOIN desired d ON d.device_id = v.id WHERE v.id = ?`)
		if err != nil {
			return fmt.Errorf("store: update desired: %w", err)
		}
		defer cur.Close()
		set, err := tx.PrepareContext(ctx, `INSERT INTO desired (device_id, version, doc, updated_at) VALUES (?, 1, ?, ?)
			ON CONFLICT (device_id) DO UPDATE SET version = desired.version + 1, doc = excluded.doc, updated_at = excluded.updated_at
			RETURNING version`)
		if err != nil {
			return fmt.Errorf("store: update desired: %w", err)
		}
		defer set.Close()
		for _, id := range deviceIDs {
			var doc []byte
			if err := cur.QueryRowContext(ctx, id).Scan(&doc); err != nil {
				return notFound(err, "device", id)
			}
			next, err := update(id, doc)
			if err != nil {
				return err
			}
			if !json.Valid(next) {
				return invalid("desired doc of %s is not JSON", id)
			}
			d := store.DocState{DeviceID: id, Doc: next, UpdatedAt: at.UTC()}
			if err := set.QueryRowContext(ctx, id, []byte(next), ts(at)).Scan(&d.Version); err != nil {
				return fmt.Errorf("store: set desired %s: %w", id, err)
			}
			out = append(out, d)
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
	err := s.db.R.QueryRowContext(ctx, `SELECT version, doc, updated_at FROM desired WHERE device_id = ?`, deviceID).
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
	err := s.db.R.QueryRowContext(ctx, `SELECT version, doc, error, updated_at FROM reported WHERE device_id = ?`, deviceID).
		Scan(&d.Version, &doc, &d.Error, &updated)
	if err != nil {
		return store.DocState{}, notFound(err, "reported state of device", deviceID)
	}
	d.Doc, d.UpdatedAt = doc, fromTS(updated)
	return d, nil
}
