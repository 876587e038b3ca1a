package store

import (
	"context"
	"time"
)

// Presence keeps whether each device is online, as the hub sees it; a device shows it in its
// Online, PresenceAt, LastSeen and AgentVersion.
type Presence interface {
	// SetPresence records a presence change (hub clock) and, when online, the agent version.
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
}
