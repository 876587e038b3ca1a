package store

import (
	"context"
	"strings"
	"time"
)

// Silences keeps alert silences (hub/alerts): while one is active, the alerts of its kiosk, or of
// every kiosk under its region (and of its rule, if it names one) are still raised and shown, but
// nobody is notified: a maintenance window.
type Silences interface {
	// CreateSilence stores a silence and returns it with its ID (ErrNotFound for an unknown
	// device, ErrInvalid without a device or a region, or with both, without a creator or an end
	// after its start).
	CreateSilence(ctx context.Context, s Silence) (Silence, error)
	// ListSilences lists the silences active at at (zero: every one), newest first.
	ListSilences(ctx context.Context, at time.Time) ([]Silence, error)
	// EndSilence ends a silence at at, unless it ended before (then it is returned as it is).
	EndSilence(ctx context.Context, id int64, by string, at time.Time) (Silence, error)
}

// Silence quiets the alerts of a kiosk, or of the kiosks under a region, of one rule or all, from
// StartsAt until EndsAt.
type Silence struct {
	ID        int64
	DeviceID  string // the kiosk, or "" for a region's
	Region    string // a GB/T 2260 code prefix ("4403": Shenzhen), or "" for a kiosk's
	Rule      string // "" for every rule
	Reason    string
	CreatedBy string
	StartsAt  time.Time
	EndsAt    time.Time
	EndedBy   string // who ended it early, if someone did
}

// Active reports whether s is in force at t.
func (s Silence) Active(t time.Time) bool { return !t.Before(s.StartsAt) && t.Before(s.EndsAt) }

// Matches reports whether s quiets an alert of rule at t of device, whose region is region.
func (s Silence) Matches(device, region, rule string, t time.Time) bool {
	covers := s.DeviceID == device
	if s.DeviceID == "" {
		covers = s.Region != "" && strings.HasPrefix(region, s.Region)
	}
	return covers && s.Active(t) && (s.Rule == "" || s.Rule == rule)
}

// WorkOrders keeps work orders: a visit to a kiosk that an alert calls for, who goes and what to
// bring, closed when done.
type WorkOrders interface {
	// CreateWorkOrder stores an open work order and returns it with its ID (ErrNotFound for an
	// unknown alert, ErrExists when the alert has an open work order).
	CreateWorkOrder(ctx context.Context, w WorkOrder) (WorkOrder, error)
	GetWorkOrder(ctx context.Context, id int64) (WorkOrder, error)
	// ListWorkOrders lists work orders, newest first.
	ListWorkOrders(ctx context.Context, f WorkOrderFilter) ([]WorkOrder, error)
	// CloseWorkOrder closes an open work order (ErrConflict if it is closed).
	CloseWorkOrder(ctx context.Context, id int64, by, note string, at time.Time) (WorkOrder, error)
}

// WorkOrder is a visit to a kiosk.
type WorkOrder struct {
	ID        int64
	AlertID   int64
	DeviceID  string
	Assignee  string
	Bring     string // what to bring: "paper roll for the receipt printer (EPSON TM-T82)"
	Note      string
	Open      bool
	CreatedBy string
	CreatedAt time.Time
	ClosedBy  string
	ClosedAt  time.Time
	Closing   string // the note it was closed with
}

// WorkOrderFilter selects work orders: open ones only, of one device, of one assignee.
type WorkOrderFilter struct {
	Open     bool
	DeviceID string
	Assignee string
	Limit    int // 0: 1000
}
