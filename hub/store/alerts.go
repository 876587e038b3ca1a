package store

import (
	"context"
	"time"
)

// Alerts keeps the alerts the hub's rules raise (hub/alerts): one unresolved alert at most per
// kiosk, rule and subject (a peripheral's ID, or ""), which goes open -> acknowledged ->
// resolved, with who did it and when.
type Alerts interface {
	// RaiseAlert opens an alert for a's device, rule and subject unless one is unresolved. It
	// returns the unresolved alert and whether it is new. ErrNotFound for an unknown device.
	RaiseAlert(ctx context.Context, a Alert) (Alert, bool, error)
	// RaiseAlerts raises each of as as RaiseAlert does, all in one transaction (a sweep of the
	// fleet), and returns those it created, by ID. An alert of an unknown device is skipped; so
	// is one whose kiosk, rule and subject have an unresolved alert (in the store, or earlier
	// in as). ErrInvalid, and nothing raised, if one lacks what RaiseAlert needs.
	RaiseAlerts(ctx context.Context, as []Alert) ([]Alert, error)
	// AckAlert acknowledges an open alert; an acknowledged one is returned as it is. ErrConflict
	// for a resolved one, ErrNotFound for none.
	AckAlert(ctx context.Context, id int64, by string, at time.Time) (Alert, error)
	// ResolveAlert resolves an unresolved alert ("" by: the hub, its condition cleared).
	// ErrConflict for a resolved one, ErrNotFound for none.
	ResolveAlert(ctx context.Context, id int64, by string, at time.Time) (Alert, error)
	// ResolveAlerts resolves the alerts of ids that are unresolved, in one transaction, and
	// returns them as resolved, by ID. Resolved and unknown IDs are skipped (where ResolveAlert
	// says ErrConflict or ErrNotFound).
	ResolveAlerts(ctx context.Context, ids []int64, by string, at time.Time) ([]Alert, error)
	// GetAlert returns an alert.
	GetAlert(ctx context.Context, id int64) (Alert, error)
	// ListAlerts lists alerts, newest first.
	ListAlerts(ctx context.Context, f AlertFilter) ([]Alert, error)
}

// AlertState is where an alert is in its life.
type AlertState string

// Alert states.
const (
	AlertOpen         AlertState = "open"
	AlertAcknowledged AlertState = "acknowledged" // someone is on it
	AlertResolved     AlertState = "resolved"
)

// Alert is a condition of a kiosk that needs a person.
type Alert struct {
	ID         int64
	DeviceID   string
	Rule       string // offline, peripheral-fault, peripheral-degraded
	Subject    string // the peripheral's ID, or ""
	Detail     string // what was seen: "paper-out", "offline since ..."
	State      AlertState
	OpenedAt   time.Time
	AckBy      string
	AckAt      time.Time
	ResolvedBy string // "" with ResolvedAt set: resolved by the hub, its condition cleared
	ResolvedAt time.Time
}

// AlertFilter selects alerts: of one device, or of some (or all); only unresolved ones.
type AlertFilter struct {
	DeviceID   string
	DeviceIDs  []string // only these devices' alerts (with DeviceID: those of both)
	Unresolved bool
	Limit      int // 0: 1000
}
