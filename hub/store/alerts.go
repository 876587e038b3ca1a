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
	AlertNotices
}

// AlertNotices is the outbox of the alerts' notifier (hub/alerts): every alert opened,
// acknowledged or resolved by the methods above owes one notice, written in the transaction of
// the change, so that a hub killed between the change's commit and the notice's delivery still
// delivers it when it is back (or another replica does). A notice is claimed by one deliverer at a
// time, for a while (a lease: a deliverer that dies holding one only delays it), and deleted once
// delivered. Notices of one alert are claimed in the order of its changes: one is not claimed
// while an earlier one of its alert is still owed.
type AlertNotices interface {
	// ClaimAlertNotices claims for claimer, until until, up to limit owed notices, oldest first,
	// that nobody holds at now (never claimed, or their claim has run out).
	ClaimAlertNotices(ctx context.Context, claimer string, now, until time.Time, limit int) ([]AlertNotice, error)
	// DeferAlertNotices holds the notices ids until until (a delivery that failed is tried again
	// then), still owed.
	DeferAlertNotices(ctx context.Context, ids []int64, until time.Time) error
	// DoneAlertNotices deletes the notices ids: delivered, or not to be (silenced).
	DoneAlertNotices(ctx context.Context, ids []int64) error
	// ReleaseAlertNotices gives up claimer's claims: a hub back from a crash takes its notices
	// back at once instead of waiting for their claims to run out.
	ReleaseAlertNotices(ctx context.Context, claimer string) error
	// DropAlertNotices deletes the notices of changes before before that nobody holds at now,
	// and returns how many: owed to no notifier (none is configured), they are not kept for one
	// configured later.
	DropAlertNotices(ctx context.Context, before, now time.Time) (int, error)
	// CountAlertNotices returns how many notices are owed, held or not.
	CountAlertNotices(ctx context.Context) (int, error)
}

// AlertNotice is a change of an alert its notifier is owed.
type AlertNotice struct {
	ID    int64
	State AlertState // what the alert became: open, acknowledged, resolved
	At    time.Time  // when
	// Alert is the alert as it was then: as it is now, without what happened to it since State.
	Alert Alert
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

// ChangedAt is when the alert came into its state.
func (a Alert) ChangedAt() time.Time {
	switch a.State {
	case AlertAcknowledged:
		return a.AckAt
	case AlertResolved:
		return a.ResolvedAt
	}
	return a.OpenedAt
}

// AsOf returns the alert as it was when it came into state s (earlier in its life than its
// state now, or the same): what happened to it after that is left out.
func (a Alert) AsOf(s AlertState) Alert {
	a.State = s
	if s != AlertResolved {
		a.ResolvedBy, a.ResolvedAt = "", time.Time{}
	}
	if s == AlertOpen {
		a.AckBy, a.AckAt = "", time.Time{}
	}
	return a
}
