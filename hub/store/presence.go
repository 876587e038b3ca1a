package store

import (
	"context"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/fleet"
)

// Presence keeps whether each device is online, as the hub sees it; a device shows it in its
// Online, Replica, PresenceAt, LastSeen and AgentVersion. A change applies unless a later one is
// recorded already. Going online records the replica that holds the session; going offline
// applies only when reported by that replica (or without one), so that a replica that saw a
// session end late does not undo its move to another replica. See Replicas for the leases.
//
// Presence also keeps each device's presence history: its ended sessions, with the replica that
// held each, when it started and ended and why (fleet.DisconnectReason), the newest
// HistoryKeep per device. The sessions a replica held when it died (ReleaseReplica,
// ExpireLeases) end there with fleet.DisconnectHubLost.
type Presence interface {
	// SetPresence records a presence change (hub clock) without a replica and, when online, the
	// agent version.
	SetPresence(ctx context.Context, id string, online bool, agentVersion string, at time.Time) error
	// SetPresences records many presence changes in one transaction, in order, with the same
	// rules as SetPresence; unknown devices are skipped. The hub batches presence this way so that
	// a fleet reconnecting at once costs a few commits, not one per kiosk. An offline change with
	// an End adds the ended session to the device's history, whether or not the change applies.
	SetPresences(ctx context.Context, us []PresenceUpdate) error
	// PresenceHistory returns the device's ended sessions, newest first, at most limit (<= 0 or
	// more than HistoryKeep: HistoryKeep); none for an unknown device.
	PresenceHistory(ctx context.Context, id string, limit int) ([]Session, error)
}

// HistoryKeep is how many ended sessions each device's presence history keeps: older ones are
// dropped as new ones are added.
const HistoryKeep = 200

// The details of the sessions a lost replica held (fleet.DisconnectHubLost), by how the loss
// was found.
const (
	DetailLeaseExpired = "the replica holding the session stopped renewing its lease"
	DetailReleased     = "the replica holding the session restarted or stopped without seeing it end"
)

// MaxDetail bounds Session.Detail, in bytes; a longer detail is cut.
const MaxDetail = 200

// PresenceUpdate is a presence change seen by the hub (hub clock).
type PresenceUpdate struct {
	DeviceID     string
	Online       bool
	AgentVersion string
	At           time.Time
	Replica      string // the hub replica that saw it ("": none named)
	// End, on an offline change, is how the session that ended at At began and ended.
	End *SessionEnd
}

// SessionEnd says when a session that has just ended started and why it ended.
type SessionEnd struct {
	StartedAt time.Time
	Reason    fleet.DisconnectReason
	Detail    string // the error that ended it; cut at MaxDetail
}

// Session is an ended session in a device's presence history.
type Session struct {
	ID        int64 // order of recording
	DeviceID  string
	Replica   string
	StartedAt time.Time
	EndedAt   time.Time
	Reason    fleet.DisconnectReason
	Detail    string
}

// CutDetail cuts s to at most MaxDetail bytes, on a rune boundary.
func CutDetail(s string) string {
	if len(s) <= MaxDetail {
		return s
	}
	n := MaxDetail
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
