package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// Commands keeps commands to devices and their life cycle. A command's result reaches it as the
// effect of a committed record (Records).
type Commands interface {
	// CreateCommand stores a new command in state queued.
	CreateCommand(ctx context.Context, c Command) error
	GetCommand(ctx context.Context, id string) (Command, error)
	// ListCommands returns a device's latest commands, newest first (limit 0: backend default).
	ListCommands(ctx context.Context, deviceID string, limit int) ([]Command, error)
	// PendingCommands returns the device's commands that are queued or delivered and not expired
	// at now, oldest first: what must be (re)sent when the device connects.
	PendingCommands(ctx context.Context, deviceID string, now time.Time) ([]Command, error)
	// MarkDelivered moves queued commands to delivered (others are left alone).
	MarkDelivered(ctx context.Context, ids []string, at time.Time) error
	// DevicesWithQueued returns, by ID, the devices that have a queued command not expired at
	// now: what a replica's sweep sends when the notice of a new command did not reach it.
	DevicesWithQueued(ctx context.Context, now time.Time) ([]string, error)
	// ExpireCommands moves every queued or delivered command whose expiry is <= now to expired
	// and returns them.
	ExpireCommands(ctx context.Context, now time.Time) ([]Command, error)
}

// Command is a command to a device and its life cycle.
type Command struct {
	ID          string
	DeviceID    string
	Name        string
	Args        json.RawMessage
	State       wire.CommandState
	CreatedAt   time.Time
	ExpiresAt   time.Time
	DeliveredAt time.Time
	UpdatedAt   time.Time
	Output      json.RawMessage
	Error       string
}

// CommandTransitionAllowed reports whether a command may move from one state to another. The life
// cycle is queued -> delivered -> accepted -> succeeded | failed; queued or delivered -> expired.
// An agent may report a later state directly (a result may arrive before its acceptance is seen).
// An agent may also report expired for a command it received too late.
func CommandTransitionAllowed(from, to wire.CommandState) bool {
	if from.Terminal() || from == to {
		return false
	}
	rank := map[wire.CommandState]int{wire.CmdQueued: 0, wire.CmdDelivered: 1, wire.CmdAccepted: 2}
	switch to {
	case wire.CmdDelivered, wire.CmdAccepted:
		return rank[to] > rank[from]
	case wire.CmdSucceeded, wire.CmdFailed:
		return true
	case wire.CmdExpired:
		return from == wire.CmdQueued || from == wire.CmdDelivered
	}
	return false
}
