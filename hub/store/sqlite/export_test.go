package sqlite

import (
	"context"
	"database/sql"

	"github.com/kioskfleet/kioskfleet/hub/store/internal/rollup"
)

// MergeRollups folds d's cells into the rollups as a commit of its events would (without storing
// the raw events): benchmarks fill a large database with it.
func (s *Store) MergeRollups(ctx context.Context, d rollup.Delta) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		p := newStmts(tx)
		defer p.close()
		return mergeCells(ctx, p, d)
	})
}
