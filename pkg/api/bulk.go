package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"
)

// Bulk actions (POST /api/v1/bulk): one action to every kiosk a filter selects in the caller's
// region scope, as a job whose per-kiosk progress can be watched. A person first asks for the
// count (DryRun), then confirms it (Expect) under an idempotency key: a retried request with
// the same key answers the job it created instead of acting twice.
const (
	BulkCommand = "command" // a command to each kiosk (Command)
	BulkDesired = "desired" // a JSON merge patch (RFC 7396) to each kiosk's desired state (Desired)
	BulkRevoke  = "revoke"  // revoke each kiosk and cut its session
)

// Per-kiosk progress of a bulk job.
const (
	BulkQueued    = "queued"    // not yet sent, or the kiosk is offline: it gets it when it connects
	BulkDelivered = "delivered" // sent to the kiosk's session, not yet confirmed
	BulkAcked     = "acked"     // the kiosk confirmed (command succeeded, desired version reported), or the hub did it (revoke)
	BulkFailed    = "failed"    // refused, failed, or not confirmed before the job expired
)

// Bulk job states.
const (
	BulkRunning = "running" // some kiosks are not acked or failed yet
	BulkDone    = "done"
)

// BulkFilter selects kiosks in service and not revoked; empty fields match all. Status: online
// (connected), degraded (connected with a peripheral not ok), offline.
type BulkFilter struct {
	Region string `json:"region,omitempty"` // GB/T 2260 prefix
	Site   string `json:"site,omitempty"`
	Status string `json:"status,omitempty"`
	Model  string `json:"model,omitempty"`
	Tag    string `json:"tag,omitempty"` // a device tag (PUT /devices/{id}/tags)
}

// IsZero reports whether the filter selects every kiosk in scope.
func (f BulkFilter) IsZero() bool { return f == BulkFilter{} }

// BulkRequest is the body of POST /api/v1/bulk.
type BulkRequest struct {
	Filter  BulkFilter      `json:"filter"`
	Action  string          `json:"action"`
	Command *CreateCommand  `json:"command,omitempty"` // action command
	Desired json.RawMessage `json:"desired,omitempty"` // action desired: a merge patch; "bundles" and "agent" belong to rollouts
	// TTL is how long the job waits for its kiosks (a Go duration, default 1h, at most 7 days;
	// a command's TTL when it has none): a kiosk not acked by then has failed.
	TTL string `json:"ttl,omitempty"`
	// DryRun answers the count and the kiosks without acting.
	DryRun bool `json:"dryRun,omitempty"`
	// Expect (required to act) is the count the person confirmed: the hub refuses (409
	// count_changed) unless exactly that many kiosks match.
	Expect *int `json:"expect,omitempty"`
	// IdempotencyKey (required to act, 8..128 characters) names the request: the same caller
	// sending the same key again gets the job it created (Replayed), never a second one.
	IdempotencyKey string `json:"idempotencyKey,omitempty"`
}

// BulkCounts counts a job's kiosks by progress.
type BulkCounts struct {
	Queued    int `json:"queued"`
	Delivered int `json:"delivered"`
	Acked     int `json:"acked"`
	Failed    int `json:"failed"`
}

// Add counts one kiosk in state.
func (c *BulkCounts) Add(state string) {
	switch state {
	case BulkQueued:
		c.Queued++
	case BulkDelivered:
		c.Delivered++
	case BulkAcked:
		c.Acked++
	case BulkFailed:
		c.Failed++
	}
}

// BulkJob is a bulk job (or, DryRun, what one would select).
type BulkJob struct {
	ID        string          `json:"id,omitempty"`
	Action    string          `json:"action"`
	Filter    BulkFilter      `json:"filter"`
	Command   *CreateCommand  `json:"command,omitempty"`
	Desired   json.RawMessage `json:"desired,omitempty"`
	State     string          `json:"state,omitempty"`
	Count     int             `json:"count"`
	Counts    BulkCounts      `json:"counts"`
	CreatedBy string          `json:"createdBy,omitempty"`
	CreatedAt time.Time       `json:"createdAt,omitzero"`
	ExpiresAt time.Time       `json:"expiresAt,omitzero"`
	DoneAt    time.Time       `json:"doneAt,omitzero"`
	DryRun    bool            `json:"dryRun,omitempty"`
	Devices   []string        `json:"devices,omitempty"`  // dry run: the kiosks selected (the first 1000)
	Replayed  bool            `json:"replayed,omitempty"` // the job an earlier request with the same key created
}

// BulkItem is one kiosk of a bulk job.
type BulkItem struct {
	DeviceID  string    `json:"deviceId"`
	State     string    `json:"state"`
	Ref       string    `json:"ref,omitempty"` // the command's ID, or the desired version set
	Error     string    `json:"error,omitempty"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// BulkJobs is the body of GET /api/v1/bulk.
type BulkJobs struct {
	Jobs []BulkJob `json:"jobs"`
}

// BulkItems is the body of GET /api/v1/bulk/{id}/devices.
type BulkItems struct {
	Items []BulkItem `json:"items"`
}

// Bulk sends a bulk request: a dry run, or the job it started.
func (c *Client) Bulk(ctx context.Context, req BulkRequest) (BulkJob, error) {
	var out BulkJob
	return out, c.Do(ctx, http.MethodPost, Prefix+"/bulk", req, &out)
}

// BulkJob returns a bulk job with its counts.
func (c *Client) BulkJob(ctx context.Context, id string) (BulkJob, error) {
	var out BulkJob
	return out, c.Do(ctx, http.MethodGet, Prefix+"/bulk/"+url.PathEscape(id), nil, &out)
}

// BulkJobs lists the bulk jobs the caller may see, newest first.
func (c *Client) BulkJobs(ctx context.Context) ([]BulkJob, error) {
	var out BulkJobs
	return out.Jobs, c.Do(ctx, http.MethodGet, Prefix+"/bulk", nil, &out)
}

// BulkItems lists a bulk job's kiosks with their progress.
func (c *Client) BulkItems(ctx context.Context, id string) ([]BulkItem, error) {
	var out BulkItems
	return out.Items, c.Do(ctx, http.MethodGet, Prefix+"/bulk/"+url.PathEscape(id)+"/devices", nil, &out)
}
