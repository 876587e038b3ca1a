package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// errNotCommitted is returned by txPipelined when fn returned without sending the commit.
var errNotCommitted = errors.New("store: pipelined transaction ended without its commit")

// pipeline is a transaction sent in as few round trips as its reads allow: its BEGIN goes with
// its first batch of statements (pgx.Batch.BeginTx) and its COMMIT with its last. A transaction
// that reads once and then writes costs two round trips, where Begin, two batches and Commit
// cost four. Every round trip is a wake-up of the server's backend and then of the caller: on a
// busy machine each waits for a core, which is what a commit's latency is made of.
type pipeline struct {
	conn *pgxpool.Conn
	tx   pgx.Tx // once the first batch was sent
}

// batch returns a batch for the next send: the first one begins the transaction.
func (p *pipeline) batch() *pgx.Batch {
	b := &pgx.Batch{}
	if p.tx == nil {
		b.BeginTx(pgx.TxOptions{})
	}
	return b
}

// send sends b (from batch) and reads its results, calling the callbacks queued with them;
// with commit, b ends with the transaction's commit, and a nil return means it is committed
// and durable (synchronous_commit). A statement that fails makes the server skip the rest of
// b, the commit included.
func (p *pipeline) send(ctx context.Context, b *pgx.Batch, commit bool) error {
	if commit {
		b.Queue("commit")
	}
	if p.tx == nil {
		br := p.conn.SendBatch(ctx, b)
		p.tx = br.Tx()
		return br.Close()
	}
	return p.tx.SendBatch(ctx, b).Close()
}

// txPipelined runs fn in a pipelined transaction: fn sends its statements with p.send, the
// last of them with commit. Like tx, it runs fn again when PostgreSQL aborted the transaction
// as a deadlock victim or a serialization failure (fn must keep all its state inside).
func (s *Store) txPipelined(ctx context.Context, fn func(p *pipeline) error) error {
	return s.retry(ctx, func() error { return s.pipelineOnce(ctx, fn) })
}

func (s *Store) pipelineOnce(ctx context.Context, fn func(p *pipeline) error) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// The pool closes a connection it gets back inside a transaction (or broken).
	defer conn.Release()
	p := &pipeline{conn: conn}
	err = fn(p)
	if err == nil && conn.Conn().PgConn().TxStatus() != 'I' {
		err = errNotCommitted
	}
	if err != nil && p.tx != nil && conn.Conn().PgConn().TxStatus() != 'I' {
		// A failed rollback closes the connection, which ends the transaction all the same.
		_ = p.tx.Rollback(context.WithoutCancel(ctx))
	}
	return err
}
