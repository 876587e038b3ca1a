package store

import (
	"context"
	"time"
)

// Updates keeps the hub's update repository (hub/updates): every version of the signed
// metadata of each top-level role of The Update Framework (root, targets, snapshot, timestamp),
// as signed. The targets they name are Blobs.
type Updates interface {
	// PutMetadata stores a version of a role's metadata: ErrExists if that version is stored
	// already (another replica signed it first).
	PutMetadata(ctx context.Context, m TUFMetadata) error
	GetMetadata(ctx context.Context, role string, version int64) (TUFMetadata, error)
	// LatestMetadata returns a role's highest version; ErrNotFound while it has none.
	LatestMetadata(ctx context.Context, role string) (TUFMetadata, error)
}

// TUFMetadata is one version of one role's signed metadata.
type TUFMetadata struct {
	Role      string
	Version   int64
	Data      []byte // the signed JSON, as served
	Expires   time.Time
	CreatedAt time.Time
}
