// Package postgres is the hub's shared store: store.Store on PostgreSQL through a pgx connection
// pool, for several hub replicas on one database. Its schema is the numbered migrations in
// migrations/ (PostgreSQL's dialect of the SQLite store's; 0100-0199 are the identity tables,
// 0300-0399 the data rooms'), applied by pkg/migrate when it opens, one replica at a time.
// Importing the package registers it with store.Open for URLs "postgres://..." and
// "postgresql://..." (libpq's URL and keyword forms, and pgx's pool_* parameters, see
// pgxpool.ParseConfig).
//
// Durability: every transaction commits with synchronous_commit=on unless the URL asks for
// another level (for example synchronous_commit=remote_apply with synchronous standbys); never
// run the hub's database with fsync=off or synchronous_commit=off, as a commit is a promise
// (the hub acks records once CommitBatches returns). PostgreSQL's own replication gives high
// availability; the hub adds no cluster of its own.
//
// Concurrency: any number of processes may use one database. CommitBatches serializes the commits
// of a device in the database (a row lock on its epoch row, see records.go); a transaction that
// PostgreSQL aborts as a deadlock victim or a serialization failure is run again. Triggers tell
// every replica what it must act on (a new command, a revocation...) by NOTIFY; Listen hears them
// (notify.go, store.Notifier).
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/internal/groupcommit"
	"github.com/kioskfleet/kioskfleet/hub/store/internal/sqlrow"
	"github.com/kioskfleet/kioskfleet/pkg/migrate"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is the PostgreSQL implementation of store.Store.
type Store struct {
	pool *pgxpool.Pool
	log  *slog.Logger

	// lastSeenMu guards lastSeenW: when this process last wrote each device's last-seen (it writes
	// it at most once a second per device; the database keeps the greatest of all replicas').
	lastSeenMu sync.Mutex
	lastSeenW  map[string]int64

	tokens *groupcommit.Group[*tokenWrite] // token writes, committed together (groupcommit.go)
}

var _ store.Store = (*Store)(nil)

func init() {
	store.Register("postgres", openURL)
	store.Register("postgresql", openURL)
}

func openURL(ctx context.Context, url string, log *slog.Logger) (store.Store, error) {
	s, err := Open(ctx, url, log)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// migrateLock is the advisory lock key under which a process migrates the schema ("kfmigrat").
const migrateLock = 0x6b666d6967726174

// Open connects to the database at url and applies pending migrations.
func Open(ctx context.Context, url string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err) // pgx masks the password in what it quotes
	}
	rp := cfg.ConnConfig.RuntimeParams
	if rp["synchronous_commit"] == "" {
		rp["synchronous_commit"] = "on"
	}
	if rp["application_name"] == "" {
		rp["application_name"] = "fleet-hub"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: postgres: %w", err)
	}
	where := fmt.Sprintf("%s:%d/%s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
	applied, err := migrateUp(ctx, pool)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: open %s: %w", where, err)
	}
	if len(applied) > 0 {
		log.Info("store migrated", "database", where, "applied", applied)
	}
	s := &Store{pool: pool, log: log, lastSeenW: map[string]int64{}}
	s.tokens = groupcommit.New(s.commitTokens)
	return s, nil
}

// migrateUp applies the migrations on one connection holding the migration lock, so that
// replicas starting together migrate one after the other and the later ones find nothing to do.
func migrateUp(ctx context.Context, pool *pgxpool.Pool) ([]int64, error) {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, int64(migrateLock)); err != nil {
		return nil, fmt.Errorf("migration lock: %w", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(migrateLock))
	return migrate.Up(ctx, conn, sub)
}

// Close closes the pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Ping checks that the database answers (cheap, for health endpoints).
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}

// Check verifies the store's own invariants over the whole database (PostgreSQL checks its
// pages itself): every epoch's watermark is the number of its records and their highest seq,
// and no parked record lies at or below its watermark.
func (s *Store) Check(ctx context.Context) error {
	var bad, parked int64
	err := s.pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM epochs e LEFT JOIN
			(SELECT epoch_id, count(*) AS n, max(seq) AS top FROM records GROUP BY epoch_id) r ON r.epoch_id = e.id
		 WHERE e.upto <> coalesce(r.n, 0) OR e.upto <> coalesce(r.top, 0)),
		(SELECT count(*) FROM pending_records p JOIN epochs e ON e.id = p.epoch_id WHERE p.seq <= e.upto)`).Scan(&bad, &parked)
	if err != nil {
		return fmt.Errorf("store: check: %w", err)
	}
	if bad > 0 || parked > 0 {
		return fmt.Errorf("store: check: %d epochs whose watermark disagrees with their records, %d parked records at or below their watermark", bad, parked)
	}
	return nil
}

// maxAttempts bounds how often tx runs a transaction that PostgreSQL aborted as a deadlock victim
// or a serialization failure.
const maxAttempts = 5

// tx runs fn in a transaction; a nil return means it is committed and durable. A transaction
// aborted by a deadlock or a serialization failure is run again (fn must do all its work, and
// keep all its state, inside).
func (s *Store) tx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return s.retry(ctx, func() error { return pgx.BeginFunc(ctx, s.pool, fn) })
}

// retry runs a transaction (once) again while PostgreSQL aborts it as a deadlock victim or a
// serialization failure, up to maxAttempts times, after a short random pause.
func (s *Store) retry(ctx context.Context, once func() error) error {
	for attempt := 1; ; attempt++ {
		err := once()
		if err == nil || attempt == maxAttempts || !retryable(err) {
			return err
		}
		s.log.Debug("store: transaction retried", "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(rand.IntN(5*attempt)+1) * time.Millisecond):
		}
	}
}

// SQLSTATEs (PostgreSQL manual, appendix A).
const (
	uniqueViolation      = "23505"
	foreignKeyViolation  = "23503"
	serializationFailure = "40001"
	deadlockDetected     = "40P01"
)

func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func retryable(err error) bool {
	c := sqlState(err)
	return c == serializationFailure || c == deadlockDetected
}

// notFound maps pgx.ErrNoRows to store.ErrNotFound with a description of what was missing.
func notFound(err error, what string, id any) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: %s %v", store.ErrNotFound, what, id)
	}
	return fmt.Errorf("store: %s %v: %w", what, id, err)
}

// exists maps a unique violation to store.ErrExists.
func exists(err error, what string, id any) error {
	if sqlState(err) == uniqueViolation {
		return fmt.Errorf("%w: %s %v", store.ErrExists, what, id)
	}
	return fmt.Errorf("store: %s %v: %w", what, id, err)
}

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", store.ErrInvalid, fmt.Sprintf(format, a...))
}

// Times are stored as Unix nanoseconds, as in the SQLite store.
var ts, fromTS = sqlrow.Nanos, sqlrow.Time

// orNull stores an empty byte string as NULL.
func orNull(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}
