package sqlite

import (
	"context"
	"database/sql"

	"github.com/kioskfleet/kioskfleet/hub/store/internal/groupcommit"
)

// groupCommit gathers concurrent writes of the identity store so that one transaction (one
// fsync, synchronous=FULL) commits them all (hub/store/internal/groupcommit): a citizen's login
// writes several times (its authorization request, the passkey ceremony, the passkey's signature
// counter, the browser session, the code, the tokens). Each write runs in its own savepoint, so
// that one failing leaves the others whole.
type groupCommit struct {
	w *sql.DB
	g *groupcommit.Group[*groupWrite]
}

func newGroupCommit(w *sql.DB) *groupCommit {
	gc := &groupCommit{w: w}
	gc.g = groupcommit.New(gc.commit)
	return gc
}

// groupWrite is one write waiting for its group commit.
type groupWrite struct {
	fn func(ctx context.Context, tx *sql.Tx) error
	// keep reports whether the write's changes stay despite its error (a refresh token reuse
	// revokes the family and then reports the reuse).
	keep func(error) bool
	err  error
}

// write runs fn in the next group transaction and returns its error once that transaction has
// committed (or the transaction's error). fn must use the context it is given, never the
// caller's: a caller giving up must not interrupt (and so roll back) the others' transaction.
// keep may be nil.
func (g *groupCommit) write(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error, keep func(error) bool) error {
	r := &groupWrite{fn: fn, keep: keep}
	g.g.Do(ctx, r)
	return r.err
}

// commit commits a batch in one transaction, each write in its own savepoint.
func (g *groupCommit) commit(ctx context.Context, batch []*groupWrite) {
	err := func() error {
		tx, err := g.w.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		for _, r := range batch {
			if _, err := tx.ExecContext(ctx, `SAVEPOINT w`); err != nil {
				return err
			}
			r.err = r.fn(ctx, tx)
			end := `RELEASE w`
			if r.err != nil && (r.keep == nil || !r.keep(r.err)) {
				end = `ROLLBACK TO w; RELEASE w`
			}
			if _, err := tx.ExecContext(ctx, end); err != nil {
				return err
			}
		}
		return tx.Commit()
	}()
	if err != nil {
		for _, r := range batch {
			r.err = idpErr("group commit", err)
		}
	}
}
