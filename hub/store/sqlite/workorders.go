package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/internal/sqlrow"
)

// CreateSilence stores a silence.
func (s *Store) CreateSilence(ctx context.Context, si store.Silence) (store.Silence, error) {
	if err := sqlrow.CheckSilence(si); err != nil {
		return si, err
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var one int
		if si.DeviceID != "" {
			if err := tx.QueryRowContext(ctx, `SELECT 1 FROM devices WHERE id = ?`, si.DeviceID).Scan(&one); err != nil {
				return notFound(err, "device", si.DeviceID)
			}
		}
		return tx.QueryRowContext(ctx, `INSERT INTO alert_silences (device_id, region, rule, reason, created_by, starts_at, ends_at)
			VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`, si.DeviceID, si.Region, si.Rule, si.Reason, si.CreatedBy, ts(si.StartsAt), ts(si.EndsAt)).Scan(&si.ID)
	})
	return si, err
}

// ListSilences lists the silences active at at (zero: all), newest first.
func (s *Store) ListSilences(ctx context.Context, at time.Time) ([]store.Silence, error) {
	n := ts(at)
	return queryAll(ctx, s.db.R, sqlrow.Silence, `SELECT `+sqlrow.SilenceCols+` FROM alert_silences
		WHERE ? = 0 OR (starts_at <= ? AND ends_at > ?) ORDER BY id DESC`, n, n, n)
}

// EndSilence ends a silence at at, unless it ended before.
func (s *Store) EndSilence(ctx context.Context, id int64, by string, at time.Time) (store.Silence, error) {
	var out store.Silence
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE alert_silences SET ends_at = ?, ended_by = ? WHERE id = ? AND ends_at > ?`,
			ts(at), by, id, ts(at)); err != nil {
			return fmt.Errorf("store: end silence %d: %w", id, err)
		}
		var err error
		out, err = sqlrow.Silence(tx.QueryRowContext(ctx, `SELECT `+sqlrow.SilenceCols+` FROM alert_silences WHERE id = ?`, id))
		return notFoundOrNil(err, "silence", id)
	})
	return out, err
}

// CreateWorkOrder stores an open work order.
func (s *Store) CreateWorkOrder(ctx context.Context, w store.WorkOrder) (store.WorkOrder, error) {
	if err := sqlrow.CheckWorkOrder(w); err != nil {
		return w, err
	}
	w.Open = true
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT device_id FROM alerts WHERE id = ?`, w.AlertID).Scan(&w.DeviceID); err != nil {
			return notFound(err, "alert", w.AlertID)
		}
		err := tx.QueryRowContext(ctx, `INSERT INTO work_orders (alert_id, device_id, assignee, bring, note, open, created_by, created_at)
			VALUES (?, ?, ?, ?, ?, 1, ?, ?) RETURNING id`, w.AlertID, w.DeviceID, w.Assignee, w.Bring, w.Note, w.CreatedBy, ts(w.CreatedAt)).Scan(&w.ID)
		if err != nil {
			return exists(err, "open work order of alert", w.AlertID)
		}
		return nil
	})
	return w, err
}

// GetWorkOrder returns a work order.
func (s *Store) GetWorkOrder(ctx context.Context, id int64) (store.WorkOrder, error) {
	w, err := sqlrow.WorkOrder(s.db.R.QueryRowContext(ctx, `SELECT `+sqlrow.WorkOrderCols+` FROM work_orders WHERE id = ?`, id))
	return w, notFoundOrNil(err, "work order", id)
}

// ListWorkOrders lists work orders, newest first.
func (s *Store) ListWorkOrders(ctx context.Context, f store.WorkOrderFilter) ([]store.WorkOrder, error) {
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	return queryAll(ctx, s.db.R, sqlrow.WorkOrder, `SELECT `+sqlrow.WorkOrderCols+` FROM work_orders
		WHERE (? = 0 OR open = 1) AND (? = '' OR device_id = ?) AND (? = '' OR assignee = ?) ORDER BY id DESC LIMIT ?`,
		f.Open, f.DeviceID, f.DeviceID, f.Assignee, f.Assignee, f.Limit)
}

// CloseWorkOrder closes an open work order.
func (s *Store) CloseWorkOrder(ctx context.Context, id int64, by, note string, at time.Time) (store.WorkOrder, error) {
	var out store.WorkOrder
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE work_orders SET open = 0, closed_by = ?, closed_at = ?, closing = ? WHERE id = ? AND open = 1`,
			by, ts(at), note, id)
		if err != nil {
			return fmt.Errorf("store: close work order %d: %w", id, err)
		}
		n, _ := res.RowsAffected()
		if out, err = sqlrow.WorkOrder(tx.QueryRowContext(ctx, `SELECT `+sqlrow.WorkOrderCols+` FROM work_orders WHERE id = ?`, id)); err != nil {
			return notFound(err, "work order", id)
		}
		if n == 0 {
			return fmt.Errorf("%w: work order %d is closed", store.ErrConflict, id)
		}
		return nil
	})
	return out, err
}

// notFoundOrNil is notFound, or nil for no error.
func notFoundOrNil(err error, what string, id any) error {
	if err == nil {
		return nil
	}
	return notFound(err, what, id)
}
