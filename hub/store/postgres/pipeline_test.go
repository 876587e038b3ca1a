package postgres

import (
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/kioskfleet/kioskfleet/pkg/pgtest"
)

// TestPipeline: a pipelined transaction commits what its batches wrote only when its last
// batch's commit runs; a statement that fails in any batch, or a transaction that ends without
// its commit, leaves nothing written, and the connection goes back to the pool usable.
func TestPipeline(t *testing.T) {
	ctx := t.Context()
	s, err := Open(ctx, pgtest.DB(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.pool.Exec(ctx, `CREATE TABLE pipe (v int PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	// run writes v in a first batch (reading back how many rows there are), v+1 and then
	// extra in a second one, committed or not.
	run := func(v int, extra string, commit bool) error {
		return s.txPipelined(ctx, func(p *pipeline) error {
			b := p.batch()
			b.Queue(`INSERT INTO pipe VALUES ($1)`, v)
			var n int
			b.Queue(`SELECT count(*) FROM pipe`).QueryRow(func(r pgx.Row) error { return r.Scan(&n) })
			if err := p.send(ctx, b, false); err != nil {
				return err
			}
			if n == 0 {
				return errors.New("the first batch's insert is not visible to its own transaction")
			}
			b = p.batch()
			b.Queue(`INSERT INTO pipe VALUES ($1)`, v+1)
			if extra != "" {
				b.Queue(extra)
			}
			if !commit {
				return p.tx.SendBatch(ctx, b).Close()
			}
			return p.send(ctx, b, true)
		})
	}
	stored := func() (vs []int) {
		t.Helper()
		rows, _ := s.pool.Query(ctx, `SELECT v FROM pipe ORDER BY v`)
		vs, err := pgx.CollectRows(rows, pgx.RowTo[int])
		if err != nil {
			t.Fatal(err)
		}
		return vs
	}
	if err := run(1, "", true); err != nil {
		t.Fatal(err)
	}
	if err := run(10, "SELECT 1/0", true); err == nil {
		t.Error("a transaction whose last batch failed returned no error")
	}
	if err := run(20, "", false); !errors.Is(err, errNotCommitted) {
		t.Errorf("a transaction ended without its commit: %v, want errNotCommitted", err)
	}
	if err := run(1, "", true); sqlState(err) != uniqueViolation {
		t.Errorf("a first batch that fails: %v, want a unique violation", err)
	}
	if got := stored(); len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Errorf("stored %v, want [1 2]: only the committed transaction", got)
	}
	if n := s.pool.Stat().AcquiredConns(); n != 0 {
		t.Errorf("%d connections still acquired", n)
	}
	if err := run(30, "", true); err != nil {
		t.Fatalf("after the failures: %v", err)
	}
}
