// Package sqlitex opens SQLite databases (github.com/mattn/go-sqlite3) the way kioskfleet wants
// them: WAL journal, synchronous=FULL so that a committed transaction survives power loss, foreign
// keys on, a busy timeout, one writer connection (SQLite allows one writer at a time) and a pool of
// read-only connections that read concurrently with the writer; optionally, WAL checkpoints off
// the writer's commits (Options.CheckpointEvery).
package sqlitex

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-sqlite3"
)

// driverName is go-sqlite3 with a connect hook for the settings its DSN cannot carry.
const driverName = "sqlitex"

func init() {
	sql.Register(driverName, &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
		// Truncate the WAL back to 64 MiB after a checkpoint instead of keeping its peak size.
		_, err := c.Exec("PRAGMA journal_size_limit = 67108864", nil)
		return err
	}})
}

// ErrIntegrity marks a database that fails PRAGMA integrity_check.
var ErrIntegrity = errors.New("sqlitex: integrity check failed")

// Options tune Open. The zero value gives the project defaults.
type Options struct {
	// Synchronous is the PRAGMA synchronous level: "FULL" (default) makes every commit durable;
	// "NORMAL" may lose the last commits on power loss (never corrupts) and is for data that is
	// not a promise to anyone.
	Synchronous string
	// BusyTimeout is how long a connection waits for a lock (default 5s).
	BusyTimeout time.Duration
	// Readers is the size of the read pool (default max(4, GOMAXPROCS)).
	Readers int
	// StmtCache is the number of prepared statements cached per connection (default 64).
	StmtCache int
	// CheckpointEvery, if set, moves the WAL's checkpoints off the writer's commits: a goroutine
	// of the DB runs a PASSIVE checkpoint this often on a connection of its own, and the writer
	// checkpoints only as a backstop, once the WAL holds BackstopPages. By default (SQLite's) the
	// commit that takes the WAL past 1,000 pages copies them into the database file and syncs
	// it before it returns: at 10,000 records/s that was every ~0.4 s, and the commits it fell
	// on, and every batch waiting behind them, were the hub's p99 (issue 18).
	//
	// Durability is unchanged: a commit is durable once its WAL frames are synced
	// (synchronous=FULL), whoever later copies them into the database file; a checkpoint cut
	// short by a crash is completed from the WAL at the next open. A PASSIVE checkpoint takes no
	// lock that a writer or reader waits for.
	CheckpointEvery time.Duration
	// Log gets the background checkpoints' errors: the first, and then at most one a minute
	// with the number since (nil: none).
	Log *slog.Logger
}

// BackstopPages is the WAL size (pages) at which the writer checkpoints itself when
// Options.CheckpointEvery is set: 64 MiB of 4 KiB pages, the size journal_size_limit truncates
// the WAL back to. Reached only when the background checkpoints fall behind (a reader holding an
// old snapshot keeps them from finishing, or they fail).
const BackstopPages = 16384

// DB is a SQLite database opened as one writer and a pool of readers. Use W for every statement
// that writes (and for reads that must see the writer's uncommitted state inside a transaction),
// R for plain reads.
type DB struct {
	W *sql.DB // exactly one connection
	R *sql.DB // read-only connections (PRAGMA query_only)

	ckpt     *sql.DB       // the checkpointer's connection (Options.CheckpointEvery), or nil
	stop     chan struct{} // closed by Close: the checkpointer returns
	stopOnce sync.Once
	done     sync.WaitGroup
}

// Open opens (creating if needed) the database file at path and checks that it is reachable and
// in WAL mode.
func Open(ctx context.Context, path string, o Options) (*DB, error) {
	if path == "" || strings.ContainsAny(path, "?#") || strings.HasPrefix(path, "file:") || path == ":memory:" {
		return nil, fmt.Errorf("sqlitex: path %q: want a plain file path", path)
	}
	if o.Synchronous == "" {
		o.Synchronous = "FULL"
	}
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = 5 * time.Second
	}
	if o.Readers <= 0 {
		o.Readers = max(4, runtime.GOMAXPROCS(0))
	}
	if o.StmtCache <= 0 {
		o.StmtCache = 64
	}
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", o.Synchronous)
	q.Set("_foreign_keys", "on")
	q.Set("_busy_timeout", fmt.Sprint(o.BusyTimeout.Milliseconds()))
	q.Set("_stmt_cache_size", fmt.Sprint(o.StmtCache))
	// Writers take the write lock at BEGIN: a deferred transaction that reads and then writes can
	// fail with SQLITE_BUSY without waiting if another connection (another process) wrote.
	q.Set("_txlock", "immediate")
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath()
	if err := private(path); err != nil {
		return nil, err
	}

	w, err := sql.Open(driverName, dsn+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlitex: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	var mode string
	if err := w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlitex: open %s: %w", path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		w.Close()
		return nil, fmt.Errorf("sqlitex: open %s: journal mode is %q, want wal", path, mode)
	}

	q.Del("_txlock")
	q.Set("_query_only", "1")
	r, err := sql.Open(driverName, dsn+"?"+q.Encode())
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlitex: open %s readers: %w", path, err)
	}
	r.SetMaxOpenConns(o.Readers)
	r.SetMaxIdleConns(o.Readers)
	if err := r.PingContext(ctx); err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("sqlitex: open %s readers: %w", path, err)
	}
	d := &DB{W: w, R: r, stop: make(chan struct{})}
	if o.CheckpointEvery > 0 {
		if err := d.startCheckpoints(ctx, dsn, q, o.CheckpointEvery, o.Log); err != nil {
			d.Close()
			return nil, fmt.Errorf("sqlitex: open %s checkpointer: %w", path, err)
		}
	}
	return d, nil
}

// startCheckpoints sets the writer's automatic checkpoint to the backstop and starts the
// goroutine that checkpoints every interval until Close.
func (d *DB) startCheckpoints(ctx context.Context, dsn string, q url.Values, every time.Duration, log *slog.Logger) error {
	if _, err := d.W.ExecContext(ctx, fmt.Sprintf("PRAGMA wal_autocheckpoint = %d", BackstopPages)); err != nil {
		return err
	}
	q.Del("_query_only")
	ck, err := sql.Open(driverName, dsn+"?"+q.Encode())
	if err != nil {
		return err
	}
	ck.SetMaxOpenConns(1)
	ck.SetMaxIdleConns(1)
	ck.SetConnMaxLifetime(0)
	ck.SetConnMaxIdleTime(0)
	if err := ck.PingContext(ctx); err != nil {
		ck.Close()
		return err
	}
	d.ckpt = ck
	d.done.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		var failed int
		var reported time.Time
		for {
			select {
			case <-d.stop:
				return
			case <-t.C:
				// An error (I/O) is the writer's too, which reports it on its next commit; and
				// the backstop keeps the WAL bounded meanwhile. It is logged, not every 50 ms.
				_, err := ck.Exec("PRAGMA wal_checkpoint(PASSIVE)")
				if err == nil || log == nil {
					continue
				}
				if failed++; time.Since(reported) >= time.Minute {
					log.Error("sqlitex: background checkpoint failed; the writer checkpoints at its backstop", "err", err, "failures", failed)
					failed, reported = 0, time.Now()
				}
			}
		}
	})
	return nil
}

// private makes the database file readable by its owner only (mode 0600), creating it empty if
// it does not exist (SQLite takes an empty file for a new database) and tightening an existing
// one and its -wal and -shm files; SQLite creates those with the mode of the database file.
func private(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("sqlitex: open %s: %w", path, err)
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err == nil && fi.Mode().Perm()&0o077 != 0 {
			err = os.Chmod(p, fi.Mode().Perm()&0o700)
		}
		if err != nil {
			return fmt.Errorf("sqlitex: make %s private: %w", p, err)
		}
	}
	return nil
}

// Close stops the checkpointer, if any, and closes the connections. The last connection to
// close checkpoints the WAL.
func (d *DB) Close() error {
	d.stopOnce.Do(func() { close(d.stop) })
	d.done.Wait()
	var ck error
	if d.ckpt != nil {
		ck = d.ckpt.Close()
	}
	return errors.Join(ck, d.R.Close(), d.W.Close())
}

// Tx runs fn in a write transaction on the writer connection and commits it if fn returns nil;
// otherwise it rolls back and returns fn's error. With synchronous=FULL, a nil return means the
// transaction is durable.
func (d *DB) Tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return WithTx(ctx, d.W, fn)
}

// WithTx runs fn in a transaction of db, committing on nil and rolling back otherwise.
func WithTx(ctx context.Context, db *sql.DB, fn func(tx *sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlitex: begin: %w", err)
	}
	// Rolls back if fn fails or panics, so that the connection (the only writer) is released; a
	// no-op after Commit.
	defer tx.Rollback() //nolint:errcheck
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlitex: commit: %w", err)
	}
	return nil
}

// IntegrityCheck runs PRAGMA integrity_check on db and returns an error wrapping ErrIntegrity
// with the problems it reports (at most 10).
func IntegrityCheck(ctx context.Context, db *sql.DB) error {
	rows, err := db.QueryContext(ctx, "PRAGMA integrity_check(10)")
	if err != nil {
		return fmt.Errorf("sqlitex: integrity_check: %w", err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return fmt.Errorf("sqlitex: integrity_check: %w", err)
		}
		if s != "ok" {
			problems = append(problems, s)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlitex: integrity_check: %w", err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrIntegrity, strings.Join(problems, "; "))
	}
	return nil
}

// IsUniqueViolation reports whether err is a UNIQUE or PRIMARY KEY constraint failure.
func IsUniqueViolation(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) &&
		(se.ExtendedCode == sqlite3.ErrConstraintUnique || se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey)
}
