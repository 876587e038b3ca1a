package postgres

import (
	"context"
	"fmt"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

// PutMetadata stores a version of a role's metadata.
func (s *Store) PutMetadata(ctx context.Context, m store.TUFMetadata) error {
	if m.Role == "" || m.Version < 1 || len(m.Data) == 0 {
		return invalid("metadata needs a role, a version and data")
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO tuf_metadata (role, version, data, expires, created_at) VALUES ($1, $2, $3, $4, $5)`,
		m.Role, m.Version, m.Data, ts(m.Expires), ts(m.CreatedAt))
	if err != nil {
		return exists(err, "metadata", fmt.Sprintf("%d.%s", m.Version, m.Role))
	}
	return nil
}

// GetMetadata returns one version of a role's metadata.
func (s *Store) GetMetadata(ctx context.Context, role string, version int64) (store.TUFMetadata, error) {
	return s.metadata(ctx, `WHERE role = $1 AND version = $2`, role, version)
}

// LatestMetadata returns a role's highest version.
func (s *Store) LatestMetadata(ctx context.Context, role string) (store.TUFMetadata, error) {
	return s.metadata(ctx, `WHERE role = $1 ORDER BY version DESC LIMIT 1`, role)
}

func (s *Store) metadata(ctx context.Context, where string, args ...any) (store.TUFMetadata, error) {
	m := store.TUFMetadata{}
	var exp, created int64
	err := s.pool.QueryRow(ctx, `SELECT role, version, data, expires, created_at FROM tuf_metadata `+where, args...).
		Scan(&m.Role, &m.Version, &m.Data, &exp, &created)
	if err != nil {
		return m, notFound(err, "metadata", args)
	}
	m.Expires, m.CreatedAt = fromTS(exp), fromTS(created)
	return m, nil
}
