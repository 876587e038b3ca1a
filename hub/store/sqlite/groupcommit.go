package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/kioskfleet/kioskfleet/hub/store/internal/groupcommit"
)

// groupCommit gathers concurrent writes of the identity store so that one transaction (one
// fsync, synchronous=FULL) commits them all (hub/store/internal/groupcommit): a citizen's login
// writes several times (its authorization request, the passkey ceremony, the passkey's signature
// counter, the browser session, the code, the tokens). A write that fails leaves the others whole
// (commit).
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
// caller's: a caller giving up must not interrupt (and so roll back) the others' transaction. fn
// may be run twice (see commit): it must change nothing but the database, through tx. keep may be
// nil.
func (g *groupCommit) write(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error, keep func(error) bool) error {
	r := &groupWrite{fn: fn, keep: keep}
	g.g.Do(ctx, r)
	return r.err
}

// errWriteFailed stops a batch run without savepoints at its first failing write.
var errWriteFailed = errors.New("a write of the batch failed")

// commit commits a batch in one transaction. It first runs the writes one after the other
// without savepoints: most batches have no failing write, and a savepoint per write costs two
// more statements and a copy of every page the write changes into the statement journal (which
// spills to a temporary file past 64 KiB: most pages of a batch). A failing statement is undone
// by SQLite itself, but not the statements of its write that went before; so at the first write
// that fails (with an error whose changes are not kept), the transaction is rolled back and the
// batch run again, each write in its own savepoint, so that a failing write leaves the others
// whole.
func (g *groupCommit) commit(ctx context.Context, batch []*groupWrite) {
	err := g.run(ctx, batch, false)
	if errors.Is(err, errWriteFailed) {
		err = g.run(ctx, batch, true)
	}
	if err != nil {
		for _, r := range batch {
			r.err = idpErr("group commit", err)
		}
	}
}

// run runs batch in one transaction, each write in its own savepoint if savepoints is set, and
// commits it; without savepoints, it returns errWriteFailed at the first failing write.
func (g *groupCommit) run(ctx context.Context, batch []*groupWrite, savepoints bool) error {
	tx, err := g.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, r := range batch {
		if savepoints {
			if _, err := tx.ExecContext(ctx, `SAVEPOINT w`); err != nil {
				return err
			}
		}
		r.err = r.fn(ctx, tx)
		failed := r.err != nil && (r.keep == nil || !r.keep(r.err))
		if !savepoints {
			if failed {
				return errWriteFailed
			}
			continue
		}
		end := `RELEASE w`
		if failed {
			end = `ROLLBACK TO w; RELEASE w`
		}
		if _, err := tx.ExecContext(ctx, end); err != nil {
			return err
		}
	}
	return tx.Commit()
}
