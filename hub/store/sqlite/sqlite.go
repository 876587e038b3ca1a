// Package sqlite is the hub's embedded store: store.Store on one SQLite file (WAL,
// synchronous=FULL, one writer connection plus readers, see pkg/sqlitex), with its schema applied
// from the numbered migrations in migrations/ when it opens. Numbers 0100-0199 belong to the
// identity tables, 0300-0399 to the data rooms (events, cases, ratings, outreach). Importing the
// package registers it with store.Open for URLs "sqlite:PATH". The identity store group-commits
// the writes of logins (groupcommit.go) and keeps logins in progress in memory (logins.go).
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/internal/sqlrow"
	"github.com/kioskfleet/kioskfleet/pkg/migrate"
	"github.com/kioskfleet/kioskfleet/pkg/sqlitex"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is the SQLite implementation of store.Store.
type Store struct {
	db  *sqlitex.DB
	log *slog.Logger
	*identityStore

	// commitMu serialises CommitBatches with its in-memory state: the cursors of recently seen
	// (device, epoch) pairs as last committed, and when each device's last-seen was last written.
	// This process is the database's only writer, so the cache cannot go stale; a failed
	// transaction drops it.
	commitMu  sync.Mutex
	cursors   map[epochKey]cursor
	lastSeenW map[string]int64

	// unfolded is set when events may have been stored that the rollups have not folded yet
	// (events.go): at open, and by every transaction that stores events. foldMu serialises folds.
	unfolded atomic.Bool
	foldMu   sync.Mutex
}

var _ store.Store = (*Store)(nil)

func init() { store.Register("sqlite", openURL) }

// openURL opens "sqlite:PATH" for store.Open; PATH is a file path, taken as it is.
func openURL(ctx context.Context, url string, log *slog.Logger) (store.Store, error) {
	s, err := Open(ctx, strings.TrimPrefix(url, "sqlite:"), log)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// CheckpointEvery is how often the store checkpoints its WAL in the background
// (sqlitex.Options.CheckpointEvery). At 10,000 records/s the WAL grows by ~1,000 pages in 0.4 s:
// every 50 ms keeps each checkpoint small.
const CheckpointEvery = 50 * time.Millisecond

// Open opens (creating if needed) the store at path and applies pending migrations.
func Open(ctx context.Context, path string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Checkpoints off the commits: the group commit's batches never wait for one (sqlitex).
	db, err := sqlitex.Open(ctx, path, sqlitex.Options{CheckpointEvery: CheckpointEvery, Log: log})
	if err != nil {
		return nil, err
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		db.Close()
		return nil, err
	}
	applied, err := migrate.Up(ctx, db.W, sub)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if len(applied) > 0 {
		log.Info("store migrated", "path", path, "applied", applied)
	}
	// The writer keeps its statement journals (the original of each page a statement changes, for
	// undoing it) in memory: past 64 KiB SQLite spills one to a temporary file, which an insert into
	// idp_tokens and its five indexes often reaches (page splits), and the rest of the transaction
	// then writes each page it changes there too. Set after the migrations: it holds the writer's
	// sorts in memory as well, which a CREATE INDEX on a large table should not be.
	if _, err := db.W.ExecContext(ctx, `PRAGMA temp_store = MEMORY`); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s := &Store{db: db, log: log, identityStore: &identityStore{w: db.W, r: db.R, gc: newGroupCommit(db.W), logins: newLogins()}}
	s.unfolded.Store(true) // the last process may have stored events it did not fold
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Check runs PRAGMA integrity_check.
func (s *Store) Check(ctx context.Context) error { return sqlitex.IntegrityCheck(ctx, s.db.R) }

// Ping checks that the database answers (cheap, for health endpoints).
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.db.R.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}

// tx runs fn in a write transaction; a nil return means it is committed and durable. Every
// writing method of the package (identity's too) goes through it.
func (s *Store) tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return s.db.Tx(ctx, fn)
}

// Times are stored as Unix nanoseconds (sqlrow).
var ts, fromTS = sqlrow.Nanos, sqlrow.Time

// notFound maps sql.ErrNoRows to store.ErrNotFound with a description of what was missing.
func notFound(err error, what string, id any) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: %s %v", store.ErrNotFound, what, id)
	}
	return fmt.Errorf("store: %s %v: %w", what, id, err)
}

// exists maps a unique violation to store.ErrExists.
func exists(err error, what string, id any) error {
	if sqlitex.IsUniqueViolation(err) {
		return fmt.Errorf("%w: %s %v", store.ErrExists, what, id)
	}
	return fmt.Errorf("store: %s %v: %w", what, id, err)
}

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", store.ErrInvalid, fmt.Sprintf(format, a...))
}

// orNull stores an empty JSON value as NULL.
func orNull(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// stmts prepares each statement once per transaction.
type stmts struct {
	tx *sql.Tx
	m  map[string]*sql.Stmt
}

func newStmts(tx *sql.Tx) *stmts { return &stmts{tx: tx, m: map[string]*sql.Stmt{}} }

func (p *stmts) get(ctx context.Context, q string) (*sql.Stmt, error) {
	if st, ok := p.m[q]; ok {
		return st, nil
	}
	st, err := p.tx.PrepareContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("store: prepare: %w", err)
	}
	p.m[q] = st
	return st, nil
}

func (p *stmts) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	st, err := p.get(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

func (p *stmts) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	st, err := p.get(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

func (p *stmts) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	st, err := p.get(ctx, q)
	if err != nil {
		return p.tx.QueryRowContext(ctx, q, args...) // reports the same error on Scan
	}
	return st.QueryRowContext(ctx, args...)
}

func (p *stmts) close() {
	for _, st := range p.m {
		st.Close()
	}
}
