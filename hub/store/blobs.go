package store

import (
	"context"
	"time"
)

// Blobs keeps content-addressed bytes: kiosk bundles, agent binaries and printable guide
// templates, each under the lowercase hex SHA-256 of its content. The caller computes the hash;
// a blob never changes once stored.
type Blobs interface {
	// PutBlob stores b unless a blob with its hash exists (storing the same blob again is no
	// error).
	PutBlob(ctx context.Context, b Blob) error
	// GetBlob returns a blob with its data.
	GetBlob(ctx context.Context, sha256 string) (Blob, error)
	// StatBlob returns a blob without its data.
	StatBlob(ctx context.Context, sha256 string) (Blob, error)
}

// Blob is stored bytes and what they are.
type Blob struct {
	SHA256    string // lowercase hex
	Type      string // media type, e.g. application/pdf, application/gzip
	Size      int64
	Data      []byte
	CreatedAt time.Time
}
