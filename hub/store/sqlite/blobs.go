package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

// PutBlob stores a blob unless it exists.
func (s *Store) PutBlob(ctx context.Context, b store.Blob) error {
	if len(b.SHA256) != 64 || b.Type == "" {
		return invalid("blob needs a sha256 and a type")
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO blobs (sha256, type, size, data, created_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (sha256) DO NOTHING`, b.SHA256, b.Type, int64(len(b.Data)), b.Data, ts(b.CreatedAt))
		if err != nil {
			return fmt.Errorf("store: put blob: %w", err)
		}
		return nil
	})
}

// GetBlob returns a blob with its data.
func (s *Store) GetBlob(ctx context.Context, sha256 string) (store.Blob, error) {
	return s.blob(ctx, sha256, true)
}

// StatBlob returns a blob without its data.
func (s *Store) StatBlob(ctx context.Context, sha256 string) (store.Blob, error) {
	return s.blob(ctx, sha256, false)
}

func (s *Store) blob(ctx context.Context, sha256 string, data bool) (store.Blob, error) {
	b := store.Blob{SHA256: sha256}
	var created int64
	dest := []any{&b.Type, &b.Size, &created}
	q := `SELECT type, size, created_at`
	if data {
		q += `, data`
		dest = append(dest, &b.Data)
	}
	if err := s.db.R.QueryRowContext(ctx, q+` FROM blobs WHERE sha256 = ?`, sha256).Scan(dest...); err != nil {
		return store.Blob{}, notFound(err, "blob", sha256)
	}
	b.CreatedAt = fromTS(created)
	return b, nil
}
