package sqlrow

import (
	"fmt"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
)

// SilenceCols are the columns of alert_silences that Silence scans.
const SilenceCols = `id, device_id, region, rule, reason, created_by, starts_at, ends_at, ended_by`

// Silence scans a row of SilenceCols.
func Silence(sc Scanner) (store.Silence, error) {
	var s store.Silence
	var starts, ends int64
	err := sc.Scan(&s.ID, &s.DeviceID, &s.Region, &s.Rule, &s.Reason, &s.CreatedBy, &starts, &ends, &s.EndedBy)
	s.StartsAt, s.EndsAt = Time(starts), Time(ends)
	return s, err
}

// CheckSilence reports what CreateSilence must refuse (store.ErrInvalid).
func CheckSilence(s store.Silence) error {
	if (s.DeviceID == "") == (s.Region == "") || s.CreatedBy == "" || !s.EndsAt.After(s.StartsAt) {
		return fmt.Errorf("%w: a silence needs a device or a region (not both), its creator and an end after its start", store.ErrInvalid)
	}
	if s.Region != "" && !fleet.ValidScopePrefix(s.Region) {
		return fmt.Errorf("%w: silence region %q is not a GB/T 2260 prefix of 2, 4 or 6 digits", store.ErrInvalid, s.Region)
	}
	return nil
}

// WorkOrderCols are the columns of work_orders that WorkOrder scans.
const WorkOrderCols = `id, alert_id, device_id, assignee, bring, note, open, created_by, created_at, closed_by, closed_at, closing`

// WorkOrder scans a row of WorkOrderCols.
func WorkOrder(sc Scanner) (store.WorkOrder, error) {
	var w store.WorkOrder
	var created, closed int64
	err := sc.Scan(&w.ID, &w.AlertID, &w.DeviceID, &w.Assignee, &w.Bring, &w.Note, &w.Open, &w.CreatedBy, &created, &w.ClosedBy, &closed, &w.Closing)
	w.CreatedAt, w.ClosedAt = Time(created), Time(closed)
	return w, err
}

// CheckWorkOrder reports what CreateWorkOrder must refuse (store.ErrInvalid).
func CheckWorkOrder(w store.WorkOrder) error {
	if w.AlertID == 0 || w.Assignee == "" || w.CreatedBy == "" {
		return fmt.Errorf("%w: a work order needs an alert, an assignee and its creator", store.ErrInvalid)
	}
	return nil
}
