package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
)

// TestGroupCommitFailingWrite: a batch whose third write fails after changing the database (its
// first statement went through) commits the other writes whole and none of the failing one's
// changes; a write whose error is kept keeps its changes. commit first runs the batch
// without savepoints, then again with them: the writes run twice.
func TestGroupCommitFailingWrite(t *testing.T) {
	ctx := context.Background()
	s := openInternal(t)
	if _, err := s.db.W.ExecContext(ctx, `CREATE TABLE gc_test(k TEXT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	// insert inserts one row for each key (a statement each).
	insert := func(keys ...string) func(ctx context.Context, tx *sql.Tx) error {
		return func(ctx context.Context, tx *sql.Tx) error {
			for _, k := range keys {
				if _, err := tx.ExecContext(ctx, `INSERT INTO gc_test(k) VALUES(?)`, k); err != nil {
					return err
				}
			}
			return nil
		}
	}
	// kept inserts a row and fails with an error whose changes are kept.
	errKept := errors.New("kept")
	runs := 0
	kept := func(key string) *groupWrite {
		return &groupWrite{fn: func(ctx context.Context, tx *sql.Tx) error {
			runs++
			if err := insert(key)(ctx, tx); err != nil {
				return err
			}
			return errKept
		}, keep: func(err error) bool { return errors.Is(err, errKept) }}
	}
	batch := []*groupWrite{
		{fn: insert("a1", "a2")},
		kept("c1"),
		{fn: insert("b1", "a1")}, // b1 goes in, then a1 is taken: the write fails
		{fn: insert("d1")},
	}
	gc := newGroupCommit(s.db.W)
	gc.commit(ctx, batch)
	for i, want := range []error{nil, errKept, errors.New("unique"), nil} {
		if got := batch[i].err; (got == nil) != (want == nil) || (errors.Is(want, errKept) && !errors.Is(got, errKept)) {
			t.Errorf("write %d: err = %v, want %v", i, got, want)
		}
	}
	if runs != 2 {
		t.Errorf("the kept write ran %d times, want 2 (without savepoints, then with)", runs)
	}
	// A batch without a failing write runs once.
	gc.commit(ctx, []*groupWrite{kept("c2"), {fn: insert("e1")}})
	if runs != 3 {
		t.Errorf("the kept write ran %d times in all, want 3", runs)
	}
	rows, err := s.db.R.QueryContext(ctx, `SELECT k FROM gc_test ORDER BY k`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		got = append(got, k)
	}
	if want := "[a1 a2 c1 c2 d1 e1]"; fmt.Sprint(got) != want {
		t.Errorf("committed %v, want %s", got, want)
	}
}

// TestWriterTempStore: the writer keeps its statement journals in memory (Open), the readers do
// not need to.
func TestWriterTempStore(t *testing.T) {
	ctx := context.Background()
	s := openInternal(t)
	var ts int
	if err := s.db.W.QueryRowContext(ctx, `PRAGMA temp_store`).Scan(&ts); err != nil {
		t.Fatal(err)
	}
	if ts != 2 { // MEMORY
		t.Errorf("writer's temp_store = %d, want 2 (MEMORY)", ts)
	}
}

// openInternal opens a store in a temporary directory, closed when the test ends.
func openInternal(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "hub.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
