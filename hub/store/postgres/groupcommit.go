package postgres

import (
	"cmp"
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// tokenWrite is one statement writing tokens (an insert, a rotation), waiting for its group
// commit (hub/store/internal/groupcommit): the concurrent token writes of this process go to
// PostgreSQL as one pipelined batch, one round trip and one implicit transaction, so one commit
// and one WAL flush for them all, where each alone was a round trip and a commit (a refresh grant
// is one of each). Nothing is answered before its batch has committed.
type tokenWrite struct {
	sql  string
	args []any
	tag  pgconn.CommandTag
	err  error
}

// writeTokens runs sql in the next batch of token writes and returns its outcome.
func (s *Store) writeTokens(ctx context.Context, sql string, args []any) (pgconn.CommandTag, error) {
	w := &tokenWrite{sql: sql, args: args}
	s.tokens.Do(ctx, w)
	return w.tag, w.err
}

// commitTokens runs a batch of token writes in one implicit transaction. A statement that fails
// aborts the transaction (PostgreSQL says so; a deadlock with another replica's batch is one):
// then each write runs again alone, so that one failing leaves the others whole. A batch whose
// outcome is unknown (the connection broke) fails every write in it, as a lone statement would.
// A lone write that is a deadlock victim runs again (Store.retry).
func (s *Store) commitTokens(ctx context.Context, batch []*tokenWrite) {
	if len(batch) > 1 {
		b := &pgx.Batch{}
		for _, w := range batch {
			b.Queue(w.sql, w.args...)
		}
		br := s.pool.SendBatch(ctx, b)
		for _, w := range batch {
			w.tag, w.err = br.Exec()
		}
		err := br.Close()
		for _, w := range batch {
			err = cmp.Or(err, w.err)
		}
		if err == nil {
			return
		}
		var pe *pgconn.PgError
		if !errors.As(err, &pe) {
			for _, w := range batch {
				w.err = err
			}
			return
		}
	}
	// Alone, a write can still be a deadlock victim (a family revoked by another replica's
	// statement while this one rotates a token of it): PostgreSQL asks for it to be run again.
	for _, w := range batch {
		w.err = s.retry(ctx, func() error {
			var err error
			w.tag, err = s.pool.Exec(ctx, w.sql, w.args...)
			return err
		})
	}
}
