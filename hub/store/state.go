package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// State keeps each device's desired configuration document, versioned by the hub, and the last
// one the device reported (the effect of a committed record, see Records).
type State interface {
	// SetDesired stores a new desired document with the next version (1 for the first;
	// ErrNotFound for an unknown device).
	SetDesired(ctx context.Context, deviceID string, doc json.RawMessage, at time.Time) (DocState, error)
	// UpdateDesired changes the desired documents of many devices in one transaction (a
	// rollout's wave): update gets each device's current document (nil while it has none) and
	// returns the new one, stored with the next version. Nothing is stored when a device is
	// unknown (ErrNotFound), a document is not JSON (ErrInvalid) or update fails (its error). A
	// backend may call update again for a device when it retries the transaction: update must
	// depend on its arguments only.
	UpdateDesired(ctx context.Context, deviceIDs []string, at time.Time, update func(deviceID string, cur json.RawMessage) (json.RawMessage, error)) ([]DocState, error)
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

// CheckDeviceIDs refuses (ErrInvalid) a list of devices to update that names one twice: a
// backend writes each device's row once per transaction.
func CheckDeviceIDs(ids []string) error {
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if seen[id] {
			return fmt.Errorf("%w: device %s named twice", ErrInvalid, id)
		}
		seen[id] = true
	}
	return nil
}
