package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/internal/sqlrow"
)

// CreateSilence stores a silence.
func (s *Store) CreateSilence(ctx context.Context, si store.Silence) (store.Silence, error) {
	if err := sqlrow.CheckSilence(si); err != nil {
		return si, err
	}
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var one int
		if si.DeviceID != "" {
			if err := tx.QueryRow(ctx, `SELECT 1 FROM devices WHERE id = $1`, si.DeviceID).Scan(&one); err != nil {
				return notFound(err, "device", si.DeviceID)
			}
		}
		return tx.QueryRow(ctx, `INSERT INTO alert_silences (device_id, region, rule, reason, created_by, starts_at, ends_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`, si.DeviceID, si.Region, si.Rule, si.Reason, si.CreatedBy, ts(si.StartsAt), ts(si.EndsAt)).Scan(&si.ID)
	})
	return si, err
}

// ListSilences lists the silences active at at (zero: all), newest first.
func (s *Store) ListSilences(ctx context.Context, at time.Time) ([]store.Silence, error) {
	return queryAll(ctx, s.pool, sqlrow.Silence, `SELECT `+sqlrow.SilenceCols+` FROM alert_silences
		WHERE $1::bigint = 0 OR (starts_at <= $1 AND ends_at > $1) ORDER BY id DESC`, ts(at))
}

// EndSilence ends a silence at at, unless it ended before.
func (s *Store) EndSilence(ctx context.Context, id int64, by string, at time.Time) (store.Silence, error) {
	var out store.Silence
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE alert_silences SET ends_at = $1, ended_by = $2 WHERE id = $3 AND ends_at > $1`, ts(at), by, id); err != nil {
			return fmt.Errorf("store: end silence %d: %w", id, err)
		}
		var err error
		if out, err = sqlrow.Silence(tx.QueryRow(ctx, `SELECT `+sqlrow.SilenceCols+` FROM alert_silences WHERE id = $1`, id)); err != nil {
			return notFound(err, "silence", id)
		}
		return nil
	})
	return out, err
}

// CreateWorkOrder stores an open work order.
func (s *Store) CreateWorkOrder(ctx context.Context, w store.WorkOrder) (store.WorkOrder, error) {
	if err := sqlrow.CheckWorkOrder(w); err != nil {
		return w, err
	}
	w.Open = true
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT device_id FROM alerts WHERE id = $1`, w.AlertID).Scan(&w.DeviceID); err != nil {
			return notFound(err, "alert", w.AlertID)
		}
		if err := tx.QueryRow(ctx, `INSERT INTO work_orders (alert_id, device_id, assignee, bring, note, open, created_by, created_at)
			VALUES ($1, $2, $3, $4, $5, true, $6, $7) RETURNING id`, w.AlertID, w.DeviceID, w.Assignee, w.Bring, w.Note, w.CreatedBy, ts(w.CreatedAt)).Scan(&w.ID); err != nil {
			return exists(err, "open work order of alert", w.AlertID)
		}
		return nil
	})
	return w, err
}

// GetWorkOrder returns a work order.
func (s *Store) GetWorkOrder(ctx context.Context, id int64) (store.WorkOrder, error) {
	w, err := sqlrow.WorkOrder(s.pool.QueryRow(ctx, `SELECT `+sqlrow.WorkOrderCols+` FROM work_orders WHERE id = $1`, id))
	if err != nil {
		return w, notFound(err, "work order", id)
	}
	return w, nil
}

// ListWorkOrders lists work orders, newest first.
func (s *Store) ListWorkOrders(ctx context.Context, f store.WorkOrderFilter) ([]store.WorkOrder, error) {
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	return queryAll(ctx, s.pool, sqlrow.WorkOrder, `SELECT `+sqlrow.WorkOrderCols+` FROM work_orders
		WHERE (NOT $1::boolean OR open) AND ($2 = '' OR device_id = $2) AND ($3 = '' OR assignee = $3) ORDER BY id DESC LIMIT $4`,
		f.Open, f.DeviceID, f.Assignee, f.Limit)
}

// CloseWorkOrder closes an open work order.
func (s *Store) CloseWorkOrder(ctx context.Context, id int64, by, note string, at time.Time) (store.WorkOrder, error) {
	var out store.WorkOrder
	err := s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE work_orders SET open = false, closed_by = $1, closed_at = $2, closing = $3 WHERE id = $4 AND open`,
			by, ts(at), note, id)
		if err != nil {
			return fmt.Errorf("store: close work order %d: %w", id, err)
		}
		if out, err = sqlrow.WorkOrder(tx.QueryRow(ctx, `SELECT `+sqlrow.WorkOrderCols+` FROM work_orders WHERE id = $1`, id)); err != nil {
			return notFound(err, "work order", id)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("%w: work order %d is closed", store.ErrConflict, id)
		}
		return nil
	})
	return out, err
}
