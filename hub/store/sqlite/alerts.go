package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
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
		if err != nil || !created {
			return err
		}
		return insertNotices(ctx, tx, []store.Alert{out})
	})
	return out, created, err
}

// RaiseAlerts raises alerts in one transaction, in one statement over them all (json_each of one
// parameter): a sweep's thousands of conditions cost SQLite's single writer one statement, not a
// transaction each, and the hub a handful of cgo calls, not several per alert.
func (s *Store) RaiseAlerts(ctx context.Context, as []store.Alert) ([]store.Alert, error) {
	if len(as) == 0 {
		return nil, nil
	}
	rows := make([][5]any, len(as)) // device, rule, subject, detail, opened_at
	for i, a := range as {
		if err := sqlrow.CheckAlert(a); err != nil {
			return nil, err
		}
		rows[i] = [5]any{a.DeviceID, a.Rule, a.Subject, a.Detail, ts(a.OpenedAt)}
	}
	// The WHERE also keeps SQLite from reading ON CONFLICT as a join's ON (the upsert grammar
	// asks for one after INSERT ... SELECT).
	return s.alertsReturned(ctx, `INSERT INTO alerts (device_id, rule, subject, detail, state, opened_at)
		SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, 'open', value ->> 4 FROM json_each(?)
		WHERE EXISTS (SELECT 1 FROM devices WHERE id = value ->> 0)
		ON CONFLICT DO NOTHING RETURNING `+sqlrow.AlertCols, jsonArg(rows))
}

// AckAlert acknowledges an open alert.
func (s *Store) AckAlert(ctx context.Context, id int64, by string, at time.Time) (store.Alert, error) {
	return s.moveAlert(ctx, id, `UPDATE alerts SET state = 'acknowledged', ack_by = ?, ack_at = ? WHERE id = ? AND state = 'open'`, by, at)
}

// ResolveAlert resolves an unresolved alert.
func (s *Store) ResolveAlert(ctx context.Context, id int64, by string, at time.Time) (store.Alert, error) {
	return s.moveAlert(ctx, id, `UPDATE alerts SET state = 'resolved', resolved_by = ?, resolved_at = ? WHERE id = ? AND state <> 'resolved'`, by, at)
}

// ResolveAlerts resolves the unresolved alerts of ids in one statement.
func (s *Store) ResolveAlerts(ctx context.Context, ids []int64, by string, at time.Time) ([]store.Alert, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	return s.alertsReturned(ctx, `UPDATE alerts SET state = 'resolved', resolved_by = ?, resolved_at = ?
		WHERE id IN (SELECT value FROM json_each(?)) AND state <> 'resolved' RETURNING `+sqlrow.AlertCols, by, ts(at), jsonArg(ids))
}

// alertsReturned runs a statement returning alerts in a transaction (what it changed is
// committed only if every row was read), with their notices, and returns them by ID (RETURNING's order is
// arbitrary).
func (s *Store) alertsReturned(ctx context.Context, q string, args ...any) ([]store.Alert, error) {
	var out []store.Alert
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		if out, err = queryAll(ctx, tx, sqlrow.Alert, q, args...); err != nil {
			return err
		}
		return insertNotices(ctx, tx, out)
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b store.Alert) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
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
		if err := sqlrow.CheckAlertMove(a, n == 1); err != nil || n != 1 {
			return err
		}
		return insertNotices(ctx, tx, []store.Alert{a})
	})
	return out, err
}

// insertNotices owes the notifier a notice of each of as, in its state now (store.AlertNotices).
func insertNotices(ctx context.Context, tx *sql.Tx, as []store.Alert) error {
	if len(as) == 0 {
		return nil
	}
	rows := make([][3]any, len(as)) // alert, state, at
	for i, a := range as {
		rows[i] = [3]any{a.ID, a.State, ts(a.ChangedAt())}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO alert_notices (alert_id, state, at)
		SELECT value ->> 0, value ->> 1, value ->> 2 FROM json_each(?)`, jsonArg(rows)); err != nil {
		return fmt.Errorf("store: alert notices: %w", err)
	}
	return nil
}

// ClaimAlertNotices claims owed notices in one statement, and reads their alerts.
func (s *Store) ClaimAlertNotices(ctx context.Context, claimer string, now, until time.Time, limit int) ([]store.AlertNotice, error) {
	var out []store.AlertNotice
	err := s.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `UPDATE alert_notices SET claimer = ?, claim_until = ?
			WHERE id IN (SELECT n.id FROM alert_notices n WHERE n.claim_until <= ?
				AND NOT EXISTS (SELECT 1 FROM alert_notices p WHERE p.alert_id = n.alert_id AND p.id < n.id)
				ORDER BY n.id LIMIT ?)
			RETURNING id, alert_id, state, at`, claimer, ts(until), ts(now), limit)
		if err != nil {
			return err
		}
		out, err = sqlrow.AlertNotices(rows)
		rows.Close()
		if err != nil || len(out) == 0 {
			return err
		}
		as, err := queryAll(ctx, tx, sqlrow.Alert, `SELECT `+sqlrow.AlertCols+` FROM alerts
			WHERE id IN (SELECT value FROM json_each(?))`, jsonArg(sqlrow.NoticeAlertIDs(out)))
		if err != nil {
			return err
		}
		return sqlrow.JoinNotices(out, as)
	})
	if err != nil {
		return nil, fmt.Errorf("store: claim alert notices: %w", err)
	}
	return out, nil
}

// DeferAlertNotices holds notices until until.
func (s *Store) DeferAlertNotices(ctx context.Context, ids []int64, until time.Time) error {
	return s.noticesExec(ctx, `UPDATE alert_notices SET claim_until = ? WHERE id IN (SELECT value FROM json_each(?))`, ts(until), jsonArg(ids))
}

// DoneAlertNotices deletes notices.
func (s *Store) DoneAlertNotices(ctx context.Context, ids []int64) error {
	return s.noticesExec(ctx, `DELETE FROM alert_notices WHERE id IN (SELECT value FROM json_each(?))`, jsonArg(ids))
}

// ReleaseAlertNotices gives up claimer's claims.
func (s *Store) ReleaseAlertNotices(ctx context.Context, claimer string) error {
	return s.noticesExec(ctx, `UPDATE alert_notices SET claimer = '', claim_until = 0 WHERE claimer = ?`, claimer)
}

// DropAlertNotices deletes old notices nobody holds.
func (s *Store) DropAlertNotices(ctx context.Context, before, now time.Time) (int, error) {
	var n int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM alert_notices WHERE at < ? AND claim_until <= ?`, ts(before), ts(now))
		if err == nil {
			n, err = res.RowsAffected()
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: alert notices: %w", err)
	}
	return int(n), nil
}

// CountAlertNotices counts the notices owed.
func (s *Store) CountAlertNotices(ctx context.Context) (int, error) {
	var n int
	if err := s.db.R.QueryRowContext(ctx, `SELECT count(*) FROM alert_notices`).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: alert notices: %w", err)
	}
	return n, nil
}

func (s *Store) noticesExec(ctx context.Context, q string, args ...any) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, q, args...)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: alert notices: %w", err)
	}
	return nil
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
	where, args := []string{"1"}, []any{}
	if f.DeviceID != "" {
		where, args = append(where, "device_id = ?"), append(args, f.DeviceID)
	}
	if len(f.DeviceIDs) > 0 {
		where = append(where, "device_id IN (SELECT value FROM json_each(?))")
		args = append(args, jsonArg(f.DeviceIDs))
	}
	if f.Unresolved {
		where = append(where, "state <> 'resolved'")
	}
	rows, err := s.db.R.QueryContext(ctx, `SELECT `+sqlrow.AlertCols+` FROM alerts
		WHERE `+strings.Join(where, " AND ")+` ORDER BY id DESC LIMIT ?`, append(args, f.Limit)...)
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
