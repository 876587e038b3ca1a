package sqlitex_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3" // the plain driver, to make a database as an older version did

	"github.com/kioskfleet/kioskfleet/pkg/sqlitex"
)

func open(t *testing.T) *sqlitex.DB {
	t.Helper()
	db, err := sqlitex.Open(context.Background(), filepath.Join(t.TempDir(), "t.db"), sqlitex.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestPragmas(t *testing.T) {
	db := open(t)
	ctx := context.Background()
	for _, c := range []struct {
		pool *sql.DB
		name string
		want string
	}{
		{db.W, "journal_mode", "wal"},
		{db.W, "synchronous", "2"}, // FULL
		{db.W, "foreign_keys", "1"},
		{db.W, "busy_timeout", "5000"},
		{db.R, "journal_mode", "wal"},
		{db.R, "synchronous", "2"},
		{db.R, "query_only", "1"},
		{db.W, "journal_size_limit", "67108864"},
	} {
		var got string
		if err := c.pool.QueryRowContext(ctx, "PRAGMA "+c.name).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("PRAGMA %s = %q, want %q", c.name, got, c.want)
		}
	}
	if st := db.W.Stats(); st.MaxOpenConnections != 1 {
		t.Errorf("writer pool max %d, want 1", st.MaxOpenConnections)
	}
}

func TestReadersCannotWrite(t *testing.T) {
	db := open(t)
	ctx := context.Background()
	if _, err := db.W.ExecContext(ctx, "CREATE TABLE t (x INTEGER)"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.R.ExecContext(ctx, "INSERT INTO t VALUES (1)"); err == nil {
		t.Fatal("insert through a reader succeeded")
	}
}

func TestTxCommitRollbackAndConcurrency(t *testing.T) {
	db := open(t)
	ctx := context.Background()
	if _, err := db.W.ExecContext(ctx, "CREATE TABLE t (x INTEGER PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "INSERT INTO t VALUES (1)"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Tx = %v, want boom", err)
	}
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			if err := db.Tx(ctx, func(tx *sql.Tx) error {
				_, err := tx.ExecContext(ctx, "INSERT INTO t VALUES (?)", i+10)
				return err
			}); err != nil {
				t.Error(err)
			}
			var n int
			if err := db.R.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	var n int
	if err := db.R.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n != 16 {
		t.Fatalf("count = %d, %v; want 16 (rolled-back row must be absent)", n, err)
	}
	err = db.Tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO t VALUES (10)")
		return err
	})
	if !sqlitex.IsUniqueViolation(err) {
		t.Fatalf("duplicate insert: %v, want a unique violation", err)
	}
	if err := sqlitex.IntegrityCheck(ctx, db.R); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRejectsDSN(t *testing.T) {
	for _, p := range []string{"", ":memory:", "file:x.db", "x.db?mode=ro"} {
		if _, err := sqlitex.Open(context.Background(), p, sqlitex.Options{}); err == nil || !strings.Contains(err.Error(), "plain file path") {
			t.Errorf("Open(%q) = %v, want a path error", p, err)
		}
	}
}

func TestPathWithSpaces(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a dir%20x", "my db.sqlite")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	db, err := sqlitex.Open(context.Background(), p, sqlitex.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.W.Exec("CREATE TABLE t (x)"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("database not at %s: %v", p, err)
	}
}

func TestTxPanicReleasesWriter(t *testing.T) {
	db := open(t)
	ctx := context.Background()
	func() {
		defer func() { _ = recover() }()
		_ = db.Tx(ctx, func(tx *sql.Tx) error { panic("boom") })
	}()
	done := make(chan error, 1)
	go func() {
		done <- db.Tx(ctx, func(tx *sql.Tx) error { _, err := tx.Exec("CREATE TABLE t (x)"); return err })
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("writer connection still held after a panic in Tx")
	}
}

// TestFilesPrivate: the database, its WAL and shared-memory files are readable by their owner only,
// whatever the umask, and an existing database with a looser mode is tightened.
func TestFilesPrivate(t *testing.T) {
	old := syscall.Umask(0o022) // the usual umask, under which SQLite makes 0644 files
	defer syscall.Umask(old)
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "t.db")
	check := func(when string) {
		t.Helper()
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatalf("%s: %v", when, err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("%s: %s has mode %v, want 0600", when, filepath.Base(p), fi.Mode().Perm())
			}
		}
	}
	db, err := sqlitex.Open(ctx, path, sqlitex.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.W.Exec(`CREATE TABLE x(a)`); err != nil {
		t.Fatal(err)
	}
	check("new database")
	db.Close()

	// A database made before, with the umask's mode: tightened when opened.
	legacy := filepath.Join(dir, "legacy.db")
	raw, err := sql.Open("sqlite3", legacy)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`PRAGMA journal_mode=WAL; CREATE TABLE x(a)`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	if fi, _ := os.Stat(legacy); fi.Mode().Perm() != 0o644 {
		t.Fatalf("the legacy database has mode %v, want 0644 to begin with", fi.Mode().Perm())
	}
	path = legacy
	db, err = sqlitex.Open(ctx, path, sqlitex.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.W.Exec(`INSERT INTO x VALUES(1)`); err != nil {
		t.Fatal(err)
	}
	check("legacy database")
}

// TestBackgroundCheckpoint: with CheckpointEvery the committed pages reach the database file
// without a checkpoint of the writer's (its backstop is far off), and without it they stay in
// the WAL (SQLite's own checkpoint waits for 1,000 pages): the database file's size tells.
func TestBackgroundCheckpoint(t *testing.T) {
	const rows, size = 200, 4000 // ~200 pages: under both the default and the backstop
	write := func(t *testing.T, every time.Duration) (db *sqlitex.DB, path string) {
		path = filepath.Join(t.TempDir(), "t.db")
		db, err := sqlitex.Open(t.Context(), path, sqlitex.Options{CheckpointEvery: every})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		var auto int
		if err := db.W.QueryRowContext(t.Context(), "PRAGMA wal_autocheckpoint").Scan(&auto); err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{true: sqlitex.BackstopPages, false: 1000}[every > 0]; auto != want {
			t.Fatalf("writer's wal_autocheckpoint %d, want %d", auto, want)
		}
		err = db.Tx(t.Context(), func(tx *sql.Tx) error {
			if _, err := tx.Exec("CREATE TABLE t (b BLOB)"); err != nil {
				return err
			}
			for range rows {
				if _, err := tx.Exec("INSERT INTO t VALUES (zeroblob(?))", size); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return db, path
	}
	fileSize := func(path string) int64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}

	t.Run("default", func(t *testing.T) {
		_, path := write(t, 0)
		if n := fileSize(path); n >= rows*size {
			t.Fatalf("database file %d bytes right after the commit: checkpointed already", n)
		}
	})
	t.Run("background", func(t *testing.T) {
		db, path := write(t, 5*time.Millisecond)
		poll := time.NewTicker(time.Millisecond)
		defer poll.Stop()
		for deadline := time.Now().Add(10 * time.Second); fileSize(path) < rows*size; <-poll.C {
			if time.Now().After(deadline) {
				t.Fatalf("database file still %d bytes: no checkpoint in 10 s", fileSize(path))
			}
		}
		var n int
		if err := db.R.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil || n != rows {
			t.Fatalf("rows after the checkpoints: %d %v", n, err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatalf("second close: %v", err)
		}
	})
}
