package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/internal/sqlrow"
)

// RaiseAlert opens an alert unless its kiosk, rule and subject have an unresolved one.
func (s *Store) RaiseAlert(ctx context.Context, a store.Alert) (store.Alert, bool, error) {
	if err := sqlrow.CheckAlert(a); err != nil {
		return store.Alert{}, false, err
	}
	var out store.Alert
	var created bool
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM devices WHERE id = ?`, a.DeviceID).Scan(&one); err != nil {
			return notFound(err, "device", a.DeviceID)
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO alerts (device_id, rule, subject, detail, state, opened_at) VALUES (?, ?, ?, ?, 'open', ?)
			ON CONFLICT DO NOTHING`, a.DeviceID, a.Rule, a.Subject, a.Detail, ts(a.OpenedAt))
		if err != nil {
			return fmt.Errorf("store: raise alert: %w", err)
		}
		n, _ := res.RowsAffected()
		created = n == 1
		out, err = sqlrow.Alert(tx.QueryRowContext(ctx, `SELECT `+sqlrow.AlertCols+` FROM alerts
			WHERE device_id = ? AND rule = ? AND subject = ? AND state <> 'resolved'`, a.DeviceID, a.Rule, a.Subject))
		return err
	})
	return out, created, err
}

// AckAlert acknowledges an open alert.
func (s *Store) AckAlert(ctx context.Context, id int64, by string, at time.Time) (store.Alert, error) {
	return s.moveAlert(ctx, id, `UPDATE alerts SET state = 'acknowledged', ack_by = ?, ack_at = ? WHERE id = ? AND state = 'open'`, by, at)
}

// ResolveAlert resolves an unresolved alert.
func (s *Store) ResolveAlert(ctx context.Context, id int64, by string, at time.Time) (store.Alert, error) {
	return s.moveAlert(ctx, id, `UPDATE alerts SET state = 'resolved', resolved_by = ?, resolved_at = ? WHERE id = ? AND state <> 'resolved'`, by, at)
}

// moveAlert runs update (by, at, id) and returns the alert: ErrConflict when it was resolved.
func (s *Store) moveAlert(ctx context.Context, id int64, update, by string, at time.Time) (store.Alert, error) {
	var out store.Alert
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, update, by, ts(at), id)
		if err != nil {
			return fmt.Errorf("store: alert %d: %w", id, err)
		}
		n, _ := res.RowsAffected()
		a, err := sqlrow.Alert(tx.QueryRowContext(ctx, `SELECT `+sqlrow.AlertCols+` FROM alerts WHERE id = ?`, id))
		if err != nil {
			return notFound(err, "alert", id)
		}
		out = a
		return sqlrow.CheckAlertMove(a, n == 1)
	})
	return out, err
}

// GetAlert returns an alert.
func (s *Store) GetAlert(ctx context.Context, id int64) (store.Alert, error) {
	a, err := sqlrow.Alert(s.db.R.QueryRowContext(ctx, `SELECT `+sqlrow.AlertCols+` FROM alerts WHERE id = ?`, id))
	if err != nil {
		return store.Alert{}, notFound(err, "alert", id)
	}
	return a, nil
}

// ListAlerts lists alerts, newest first.
func (s *Store) ListAlerts(ctx context.Context, f store.AlertFilter) ([]store.Alert, error) {
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	rows, err := s.db.R.QueryContext(ctx, `SELECT `+sqlrow.AlertCols+` FROM alerts
		WHERE (? = '' OR device_id = ?) AND (? = 0 OR state <> 'resolved') ORDER BY id DESC LIMIT ?`,
		f.DeviceID, f.DeviceID, f.Unresolved, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("store: alerts: %w", err)
	}
	defer rows.Close()
	var out []store.Alert
	for rows.Next() {
		a, err := sqlrow.Alert(rows)
		if err != nil {
			return nil, fmt.Errorf("store: alerts: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}
