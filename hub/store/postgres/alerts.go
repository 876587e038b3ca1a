package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

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
	err := s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO alerts (device_id, rule, subject, detail, state, opened_at) VALUES ($1, $2, $3, $4, 'open', $5)
			ON CONFLICT DO NOTHING`, a.DeviceID, a.Rule, a.Subject, a.Detail, sqlrow.Nanos(a.OpenedAt))
		if err != nil {
			return err
		}
		created = tag.RowsAffected() == 1
		out, err = sqlrow.Alert(tx.QueryRow(ctx, `SELECT `+sqlrow.AlertCols+` FROM alerts
			WHERE device_id = $1 AND rule = $2 AND subject = $3 AND state <> 'resolved'`, a.DeviceID, a.Rule, a.Subject))
		if err != nil || !created {
			return err
		}
		return insertNotices(ctx, tx, []store.Alert{out})
	})
	if sqlState(err) == foreignKeyViolation {
		return store.Alert{}, false, fmt.Errorf("%w: device %s", store.ErrNotFound, a.DeviceID)
	}
	if err != nil {
		return store.Alert{}, false, fmt.Errorf("store: raise alert: %w", err)
	}
	return out, created, nil
}

// RaiseAlerts raises alerts in one statement over arrays of their fields (unnest), inserting in
// the order of their keys: two replicas' sweeps raising the same conditions at once take the
// unique index's entries in one order, and do not deadlock.
func (s *Store) RaiseAlerts(ctx context.Context, as []store.Alert) ([]store.Alert, error) {
	if len(as) == 0 {
		return nil, nil
	}
	dev, rule, subject, detail, opened := make([]string, len(as)), make([]string, len(as)), make([]string, len(as)),
		make([]string, len(as)), make([]int64, len(as))
	for i, a := range as {
		if err := sqlrow.CheckAlert(a); err != nil {
			return nil, err
		}
		dev[i], rule[i], subject[i], detail[i], opened[i] = a.DeviceID, a.Rule, a.Subject, a.Detail, sqlrow.Nanos(a.OpenedAt)
	}
	out, err := s.alertsReturned(ctx, `INSERT INTO alerts (device_id, rule, subject, detail, state, opened_at)
		SELECT u.d, u.r, u.s, u.dt, 'open', u.t FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[]) WITH ORDINALITY AS u (d, r, s, dt, t, n)
		WHERE EXISTS (SELECT 1 FROM devices WHERE id = u.d) ORDER BY u.d, u.r, u.s, u.n
		ON CONFLICT DO NOTHING RETURNING `+sqlrow.AlertCols, dev, rule, subject, detail, opened)
	if err != nil {
		return nil, fmt.Errorf("store: raise alerts: %w", err)
	}
	return out, nil
}

// AckAlert acknowledges an open alert.
func (s *Store) AckAlert(ctx context.Context, id int64, by string, at time.Time) (store.Alert, error) {
	return s.moveAlert(ctx, id, `UPDATE alerts SET state = 'acknowledged', ack_by = $1, ack_at = $2 WHERE id = $3 AND state = 'open'`, by, at)
}

// ResolveAlert resolves an unresolved alert.
func (s *Store) ResolveAlert(ctx context.Context, id int64, by string, at time.Time) (store.Alert, error) {
	return s.moveAlert(ctx, id, `UPDATE alerts SET state = 'resolved', resolved_by = $1, resolved_at = $2 WHERE id = $3 AND state <> 'resolved'`, by, at)
}

// ResolveAlerts resolves the unresolved alerts of ids in one statement.
func (s *Store) ResolveAlerts(ctx context.Context, ids []int64, by string, at time.Time) ([]store.Alert, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	out, err := s.alertsReturned(ctx, `UPDATE alerts SET state = 'resolved', resolved_by = $2, resolved_at = $3
		WHERE id = ANY($1) AND state <> 'resolved' RETURNING `+sqlrow.AlertCols, ids, by, sqlrow.Nanos(at))
	if err != nil {
		return nil, fmt.Errorf("store: resolve alerts: %w", err)
	}
	return out, nil
}

// alertsReturned runs a statement returning alerts in a transaction (what it changed is
// committed only if every row was read), with their notices, and returns them by ID (RETURNING's order is
// arbitrary).
func (s *Store) alertsReturned(ctx context.Context, q string, args ...any) ([]store.Alert, error) {
	var out []store.Alert
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var err error
		if out, err = queryAll(ctx, tx, sqlrow.Alert, q, args...); err != nil {
			return err
		}
		return insertNotices(ctx, tx, out)
	})
	slices.SortFunc(out, func(a, b store.Alert) int { return cmp.Compare(a.ID, b.ID) })
	return out, err
}

// moveAlert runs update ($1 by, $2 at, $3 id) and returns the alert: ErrConflict when it was
// resolved.
func (s *Store) moveAlert(ctx context.Context, id int64, update, by string, at time.Time) (store.Alert, error) {
	var out store.Alert
	err := s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, update, by, sqlrow.Nanos(at), id)
		if err != nil {
			return fmt.Errorf("store: alert %d: %w", id, err)
		}
		a, err := sqlrow.Alert(tx.QueryRow(ctx, `SELECT `+sqlrow.AlertCols+` FROM alerts WHERE id = $1`, id))
		if err != nil {
			return notFound(err, "alert", id)
		}
		out = a
		moved := tag.RowsAffected() == 1
		if err := sqlrow.CheckAlertMove(a, moved); err != nil || !moved {
			return err
		}
		return insertNotices(ctx, tx, []store.Alert{a})
	})
	return out, err
}

// insertNotices owes the notifier a notice of each of as, in its state now (store.AlertNotices).
func insertNotices(ctx context.Context, tx pgx.Tx, as []store.Alert) error {
	if len(as) == 0 {
		return nil
	}
	ids, states, at := make([]int64, len(as)), make([]string, len(as)), make([]int64, len(as))
	for i, a := range as {
		ids[i], states[i], at[i] = a.ID, string(a.State), sqlrow.Nanos(a.ChangedAt())
	}
	if _, err := tx.Exec(ctx, `INSERT INTO alert_notices (alert_id, state, at)
		SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[])`, ids, states, at); err != nil {
		return fmt.Errorf("store: alert notices: %w", err)
	}
	return nil
}

// ClaimAlertNotices claims owed notices in one statement, skipping those another replica's
// claim has locked, and reads their alerts.
func (s *Store) ClaimAlertNotices(ctx context.Context, claimer string, now, until time.Time, limit int) ([]store.AlertNotice, error) {
	var out []store.AlertNotice
	err := s.tx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `UPDATE alert_notices SET claimer = $1, claim_until = $2
			WHERE id IN (SELECT n.id FROM alert_notices n WHERE n.claim_until <= $3
				AND NOT EXISTS (SELECT 1 FROM alert_notices p WHERE p.alert_id = n.alert_id AND p.id < n.id)
				ORDER BY n.id LIMIT $4 FOR UPDATE SKIP LOCKED)
			RETURNING id, alert_id, state, at`, claimer, sqlrow.Nanos(until), sqlrow.Nanos(now), limit)
		if err != nil {
			return err
		}
		out, err = sqlrow.AlertNotices(rows)
		rows.Close()
		if err != nil || len(out) == 0 {
			return err
		}
		as, err := queryAll(ctx, tx, sqlrow.Alert, `SELECT `+sqlrow.AlertCols+` FROM alerts WHERE id = ANY($1)`, sqlrow.NoticeAlertIDs(out))
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
	return s.noticesExec(ctx, `UPDATE alert_notices SET claim_until = $2 WHERE id = ANY($1)`, ids, sqlrow.Nanos(until))
}

// DoneAlertNotices deletes notices.
func (s *Store) DoneAlertNotices(ctx context.Context, ids []int64) error {
	return s.noticesExec(ctx, `DELETE FROM alert_notices WHERE id = ANY($1)`, ids)
}

// ReleaseAlertNotices gives up claimer's claims.
func (s *Store) ReleaseAlertNotices(ctx context.Context, claimer string) error {
	return s.noticesExec(ctx, `UPDATE alert_notices SET claimer = '', claim_until = 0 WHERE claimer = $1`, claimer)
}

// DropAlertNotices deletes old notices nobody holds.
func (s *Store) DropAlertNotices(ctx context.Context, before, now time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM alert_notices WHERE at < $1 AND claim_until <= $2`, sqlrow.Nanos(before), sqlrow.Nanos(now))
	if err != nil {
		return 0, fmt.Errorf("store: alert notices: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// CountAlertNotices counts the notices owed.
func (s *Store) CountAlertNotices(ctx context.Context) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM alert_notices`).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: alert notices: %w", err)
	}
	return n, nil
}

func (s *Store) noticesExec(ctx context.Context, q string, args ...any) error {
	if _, err := s.pool.Exec(ctx, q, args...); err != nil {
		return fmt.Errorf("store: alert notices: %w", err)
	}
	return nil
}

// GetAlert returns an alert.
func (s *Store) GetAlert(ctx context.Context, id int64) (store.Alert, error) {
	a, err := sqlrow.Alert(s.pool.QueryRow(ctx, `SELECT `+sqlrow.AlertCols+` FROM alerts WHERE id = $1`, id))
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
	var args []any
	arg := func(v any) string { args = append(args, v); return "$" + strconv.Itoa(len(args)) }
	where := []string{"true"}
	if f.DeviceID != "" {
		where = append(where, "device_id = "+arg(f.DeviceID))
	}
	if len(f.DeviceIDs) > 0 {
		where = append(where, "device_id = ANY("+arg(f.DeviceIDs)+")")
	}
	if f.Unresolved {
		where = append(where, "state <> 'resolved'")
	}
	rows, err := s.pool.Query(ctx, `SELECT `+sqlrow.AlertCols+` FROM alerts
		WHERE `+strings.Join(where, " AND ")+` ORDER BY id DESC LIMIT `+arg(f.Limit), args...)
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
