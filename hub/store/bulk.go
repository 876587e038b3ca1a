package store

import (
	"context"
	"encoding/json"
	"time"
)

// Bulk keeps bulk jobs (hub/bulk): one action to the kiosks a filter selected, each kiosk with
// how far it got. A job's kiosks are fixed when it is created.
type Bulk interface {
	// CreateBulkJob stores a job and its kiosks. ErrExists on a duplicate ID, or when j.CreatedBy
	// already has a job with j.Key (the idempotency key).
	CreateBulkJob(ctx context.Context, j BulkJob, items []BulkItem) error
	GetBulkJob(ctx context.Context, id string) (BulkJob, error)
	// BulkJobByKey returns the job createdBy created with key (ErrNotFound: none).
	BulkJobByKey(ctx context.Context, createdBy, key string) (BulkJob, error)
	// ListBulkJobs lists jobs, newest first: only the unfinished ones if asked (limit 0: 100).
	ListBulkJobs(ctx context.Context, unfinished bool, limit int) ([]BulkJob, error)
	// BulkItems lists a job's kiosks by ID.
	BulkItems(ctx context.Context, id string) ([]BulkItem, error)
	// ClaimBulkItems claims up to c.N of job id's kiosks in state c.State with no reference yet,
	// for c.Owner until c.Until, and returns them by ID: those no one claimed, those c.Owner
	// claimed before, and those whose claim ended before c.Now (its owner died). Of replicas
	// stepping one job at once, each kiosk is claimed by one, which alone acts on it; storing its
	// reference (UpdateBulkItems) makes it unclaimable for good.
	ClaimBulkItems(ctx context.Context, id string, c BulkClaim) ([]BulkItem, error)
	// UpdateBulkItems stores the new state, reference and error of some of a job's kiosks.
	UpdateBulkItems(ctx context.Context, id string, items []BulkItem) error
	// FinishBulkJob marks a job done at at (ErrNotFound for none).
	FinishBulkJob(ctx context.Context, id string, at time.Time) error
}

// BulkJob is one bulk action.
type BulkJob struct {
	ID        string
	Key       string // the idempotency key, unique per CreatedBy
	Action    string
	Request   json.RawMessage // what to do to which kiosks, as hub/bulk keeps it
	Scope     []string        // the creator's region scope (empty: everywhere)
	CreatedBy string
	Roles     string // the creator's, comma-separated (the audit log's)
	Source    string // the creator's address
	Count     int
	CreatedAt time.Time
	ExpiresAt time.Time
	DoneAt    time.Time // zero while running
}

// BulkClaim is what ClaimBulkItems claims, for whom and until when.
type BulkClaim struct {
	Owner      string // the claiming engine (one per process)
	State      string // the state of the kiosks to claim (hub/bulk: queued)
	Now, Until time.Time
	N          int
}

// BulkItem is one kiosk of a bulk job: Ref is "" until the action was done to it, then the
// command's ID or the desired version it set.
type BulkItem struct {
	DeviceID  string
	State     string
	Ref       string
	Error     string
	UpdatedAt time.Time
}
