package sqlite

import (
	"context"
	"database/sql"
	"sync"
)

// groupCommit gathers concurrent writes of the identity store so that one transaction (one
// fsync, synchronous=FULL) commits them all: a citizen's login writes several times (its
// authorization request, the passkey ceremony, the passkey's signature counter, the browser
// session, the code, the tokens), and a hub logging in a thousand citizens a second cannot pay an
// fsync for each. Each write runs in its own savepoint, so that one failing leaves the others
// whole, and returns only when the transaction holding it has committed: nothing is answered
// before it is durable. The first caller leads: it commits what has gathered, a few batches at
// most, then hands the lead to a waiting caller, so no caller waits long. No goroutine of its own.
type groupCommit struct {
	w *sql.DB

	mu      sync.Mutex
	pending []*groupWrite
	leading bool
}

// groupWrite is one write waiting for its group commit.
type groupWrite struct {
	fn func(ctx context.Context, tx *sql.Tx) error
	// keep reports whether the write's changes stay despite its error (a refresh token reuse
	// revokes the family and then reports the reuse).
	keep func(error) bool
	err  error
	done chan struct{} // closed when committed (or failed)
	lead chan struct{} // closed when this caller is to lead the next batches
}

const leadRounds = 2

// write runs fn in the next group transaction and returns its error once that transaction has
// committed (or the transaction's error). fn must use the context it is given, never the
// caller's: a caller giving up must not interrupt (and so roll back) the others' transaction.
// keep may be nil.
func (g *groupCommit) write(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error, keep func(error) bool) error {
	r := &groupWrite{fn: fn, keep: keep, done: make(chan struct{}), lead: make(chan struct{})}
	g.mu.Lock()
	g.pending = append(g.pending, r)
	if g.leading {
		g.mu.Unlock()
		select {
		case <-r.done:
			return r.err
		case <-r.lead:
		}
		g.mu.Lock()
	}
	g.leading = true
	for round := 0; len(g.pending) > 0; round++ {
		if round == leadRounds {
			close(g.pending[0].lead) // hand over; g.leading stays true
			g.mu.Unlock()
			<-r.done
			return r.err
		}
		batch := g.pending
		g.pending = nil
		g.mu.Unlock()
		g.commit(context.WithoutCancel(ctx), batch)
		g.mu.Lock()
	}
	g.leading = false
	g.mu.Unlock()
	<-r.done
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
	for _, r := range batch {
		if err != nil {
			r.err = idpErr("group commit", err)
		}
		close(r.done)
	}
}
