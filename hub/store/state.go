package store

import (
	"context"
	"encoding/json"
	"time"
)

// State keeps each device's desired configuration document, versioned by the hub, and the last
// one the device reported (the effect of a committed record, see Records).
type State interface {
	// SetDesired stores a new desired document with the next version (1 for the first;
	// ErrNotFound for an unknown device).
	SetDesired(ctx context.Context, deviceID string, doc json.RawMessage, at time.Time) (DocState, error)
	// GetDesired and GetReported return ErrNotFound while the device has no such document.
	GetDesired(ctx context.Context, deviceID string) (DocState, error)
	GetReported(ctx context.Context, deviceID string) (DocState, error)
	// DevicesBehind returns, by ID, the devices whose desired version is newer than the version
	// they last reported without an error (or that reported none): what a replica's sweep sends
	// again when the notice of a change did not reach it. A device that refused a version (its
	// report carries the error) is left alone until the next change.
	DevicesBehind(ctx context.Context) ([]string, error)
}

// DocState is a versioned configuration document (desired or reported).
type DocState struct {
	DeviceID  string
	Version   int64
	Doc       json.RawMessage
	Error     string
	UpdatedAt time.Time
}
