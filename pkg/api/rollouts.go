package api

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// Rollouts (hub/rollout, docs/catalog.md "Rollouts"): a signed kiosk app version, or agent
// version, given to selected kiosks in waves, with a soak time between waves, stopped
// automatically when too many fail.

// Rollout kinds.
const (
	RolloutBundle = "bundle"
	RolloutAgent  = "agent"
)

// Rollout states.
const (
	RolloutRunning    = "running"
	RolloutPaused     = "paused"
	RolloutCompleted  = "completed"   // every wave given out (kiosks offline then get it when back)
	RolloutAborted    = "aborted"     // stopped: no more kiosks get it
	RolloutRolledBack = "rolled-back" // the kiosks it reached were given their previous version back
)

// States of a kiosk in a rollout.
const (
	DeviceWaiting   = "waiting"   // its wave has not come
	DeviceAssigned  = "assigned"  // its desired state names the version; not there yet (offline, downloading, waiting for the citizen to finish)
	DeviceUpdated   = "updated"   // it runs the version
	DeviceFailed    = "failed"    // it refused the version or rolled it back (its health check failed)
	DeviceReverting = "reverting" // rolled back: given its previous version, not there yet
	DeviceReverted  = "reverted"  // runs its previous version again
	DeviceWithdrawn = "withdrawn" // the rollout stopped before it got the version
)

// Selector selects kiosks; every field given must match (IDs: any of them).
type Selector struct {
	Site   string   `json:"site,omitempty"`
	Region string   `json:"region,omitempty"` // GB/T 2260 prefix: 44 Guangdong, 4403 Shenzhen
	Model  string   `json:"model,omitempty"`
	Tag    string   `json:"tag,omitempty"`
	IDs    []string `json:"ids,omitempty"`
}

// RolloutSpec is the body of POST /api/v1/rollouts.
type RolloutSpec struct {
	Kind     string   `json:"kind"`          // bundle or agent
	App      string   `json:"app,omitempty"` // a bundle's app
	Version  string   `json:"version"`
	Selector Selector `json:"selector"`
	// Waves are cumulative percentages of the selected kiosks, ending at 100; default 1, 10, 50,
	// 100.
	Waves []int `json:"waves,omitempty"`
	// Soak is how long a wave runs, once its online kiosks are done, before the next starts (a Go
	// duration; default 10m).
	Soak string `json:"soak,omitempty"`
	// The rollout aborts by itself once at least MinDone kiosks are done (updated or failed) and
	// at least FailPercent of those failed. Defaults: 20 and 5.
	MinDone     int     `json:"minDone,omitempty"`
	FailPercent float64 `json:"failPercent,omitempty"`
}

// Rollout is a rollout and its progress.
type Rollout struct {
	ID        string         `json:"id"`
	Spec      RolloutSpec    `json:"spec"`
	State     string         `json:"state"`
	Wave      int            `json:"wave"` // the wave running, from 1
	Reason    string         `json:"reason,omitempty"`
	Waves     []WaveProgress `json:"waves"`
	Totals    Counts         `json:"totals"`
	CreatedBy string         `json:"createdBy"`
	CreatedAt time.Time      `json:"createdAt"`
	UpdatedAt time.Time      `json:"updatedAt"`
}

// WaveProgress is one wave: its kiosks and how far they got.
type WaveProgress struct {
	Percent   int       `json:"percent"` // cumulative
	Counts    Counts    `json:"counts"`
	StartedAt time.Time `json:"startedAt,omitzero"`
	DoneAt    time.Time `json:"doneAt,omitzero"` // its online kiosks were done; the soak runs from here
}

// Counts counts kiosks by state.
type Counts struct {
	Devices  int `json:"devices"`
	Waiting  int `json:"waiting"`
	Assigned int `json:"assigned"`
	Offline  int `json:"offline"` // of those assigned: they get it when they return
	Updated  int `json:"updated"`
	Failed   int `json:"failed"`
	Reverted int `json:"reverted"` // reverting or reverted
}

// Rollouts is the body of GET /api/v1/rollouts.
type Rollouts struct {
	Rollouts []Rollout `json:"rollouts"`
}

// RolloutAction is the body of POST /api/v1/rollouts/{id}/actions: pause, resume, abort or
// rollback, with a reason (required to abort and roll back).
type RolloutAction struct {
	Action string `json:"action"`
	Reason string `json:"reason,omitempty"`
}

// RolloutDevice is one kiosk of a rollout.
type RolloutDevice struct {
	DeviceID  string    `json:"deviceId"`
	Wave      int       `json:"wave"` // from 1
	State     string    `json:"state"`
	Previous  string    `json:"previous,omitempty"`
	Error     string    `json:"error,omitempty"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// RolloutDevices is the body of GET /api/v1/rollouts/{id}/devices.
type RolloutDevices struct {
	Devices []RolloutDevice `json:"devices"`
}

// Tags is the body of PUT /api/v1/devices/{id}/tags (replacing them) and its answer.
type Tags struct {
	Tags []string `json:"tags"`
}

// CreateRollout starts a rollout.
func (c *Client) CreateRollout(ctx context.Context, spec RolloutSpec) (Rollout, error) {
	var out Rollout
	return out, c.Do(ctx, http.MethodPost, Prefix+"/rollouts", spec, &out)
}

// ListRollouts lists rollouts, newest first.
func (c *Client) ListRollouts(ctx context.Context) ([]Rollout, error) {
	var out Rollouts
	return out.Rollouts, c.Do(ctx, http.MethodGet, Prefix+"/rollouts", nil, &out)
}

// Rollout returns a rollout with its progress.
func (c *Client) Rollout(ctx context.Context, id string) (Rollout, error) {
	var out Rollout
	return out, c.Do(ctx, http.MethodGet, Prefix+"/rollouts/"+url.PathEscape(id), nil, &out)
}

// RolloutDevices lists a rollout's kiosks.
func (c *Client) RolloutDevices(ctx context.Context, id string) ([]RolloutDevice, error) {
	var out RolloutDevices
	return out.Devices, c.Do(ctx, http.MethodGet, Prefix+"/rollouts/"+url.PathEscape(id)+"/devices", nil, &out)
}

// RolloutAct pauses, resumes, aborts or rolls back a rollout.
func (c *Client) RolloutAct(ctx context.Context, id string, a RolloutAction) (Rollout, error) {
	var out Rollout
	return out, c.Do(ctx, http.MethodPost, Prefix+"/rollouts/"+url.PathEscape(id)+"/actions", a, &out)
}

// SetTags replaces a kiosk's tags.
func (c *Client) SetTags(ctx context.Context, deviceID string, tags []string) (Tags, error) {
	var out Tags
	return out, c.Do(ctx, http.MethodPut, Prefix+"/devices/"+url.PathEscape(deviceID)+"/tags", Tags{Tags: tags}, &out)
}
