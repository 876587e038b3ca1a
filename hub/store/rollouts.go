package store

import (
	"context"
	"encoding/json"
	"time"
)

// Rollouts keeps the staged rollouts of kiosk apps and agent versions (hub/rollout): each
// rollout with its waves, the kiosks it selected and how far each got; and the tags kiosks carry
// for selecting them.
type Rollouts interface {
	// CreateRollout stores a rollout and its kiosks (ErrExists on a duplicate ID).
	CreateRollout(ctx context.Context, r Rollout, devices []RolloutDevice) error
	GetRollout(ctx context.Context, id string) (Rollout, error)
	// ListRollouts lists rollouts in those states (none: all), newest first.
	ListRollouts(ctx context.Context, states ...string) ([]Rollout, error)
	// UpdateRollout replaces a rollout's state if its revision is still r.Rev (ErrStale if not),
	// and returns it with the next revision.
	UpdateRollout(ctx context.Context, r Rollout) (Rollout, error)
	// RolloutDevices lists a rollout's kiosks by wave and ID.
	RolloutDevices(ctx context.Context, id string) ([]RolloutDevice, error)
	// UpdateRolloutDevices stores the new state of some of a rollout's kiosks.
	UpdateRolloutDevices(ctx context.Context, id string, ds []RolloutDevice) error

	// SetTags replaces a device's tags (ErrNotFound for an unknown device).
	SetTags(ctx context.Context, deviceID string, tags []string) error
	// Tags returns every tagged device's tags.
	Tags(ctx context.Context) (map[string][]string, error)
}

// Rollout is one staged rollout of a target to selected kiosks.
type Rollout struct {
	ID        string
	Rev       int64 // grows with every update
	Kind      string
	App       string // the app (bundle) or "kiosk-agent"
	Version   string
	State     string
	Wave      int             // the wave running (index into Spec's waves)
	Spec      json.RawMessage // selector, waves, soak, thresholds: hub/rollout's
	Progress  json.RawMessage // wave start and end times: hub/rollout's
	Reason    string          // why it is paused, aborted or rolled back
	CreatedBy string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// RolloutDevice is one kiosk of a rollout.
type RolloutDevice struct {
	DeviceID  string
	Wave      int
	Previous  string // the version it ran before (what a rollback restores)
	State     string
	Error     string
	UpdatedAt time.Time
}
