package store

import (
	"context"
	"time"
)

// Presence keeps whether each device is online, as the hub sees it; a device shows it in its
// Online, Replica, PresenceAt, LastSeen and AgentVersion. A change applies unless a later one is
// recorded already. Going online records the replica that holds the session; going offline
// applies only when reported by that replica (or without one), so that a replica that saw a
// session end late does not undo its move to another replica. See Replicas for the leases.
type Presence interface {
	// SetPresence records a presence change (hub clock) without a replica and, when online, the
	// agent version.
	SetPresence(ctx context.Context, id string, online bool, agentVersion string, at time.Time) error
	// SetPresences records many presence changes in one transaction, in order, with the same
	// rules as SetPresence; unknown devices are skipped. The hub batches presence this way so that
	// a fleet reconnecting at once costs a few commits, not one per kiosk.
	SetPresences(ctx context.Context, us []PresenceUpdate) error
}

// PresenceUpdate is a presence change seen by the hub (hub clock).
type PresenceUpdate struct {
	DeviceID     string
	Online       bool
	AgentVersion string
	At           time.Time
	Replica      string // the hub replica that saw it ("": none named)
}
