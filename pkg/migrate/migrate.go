// Package migrate applies numbered SQL migrations from an fs.FS (usually embedded) to a
// database/sql database, each in its own transaction, and records every applied version in the
// table schema_migrations. It is idempotent: a restart applies only what is missing. It uses no
// bind parameters and only portable SQL, so it works on SQLite and PostgreSQL alike (pgx's
// database/sql adapter runs a statement without parameters in the simple protocol, so a
// migration may hold several statements there too).
//
// A migration file is named NNNN_name.sql (version, underscore, name of [a-z0-9_]); files that do
// not end in .sql are ignored. Versions need not be contiguous: owners may reserve ranges (say
// 0100-0199), and a known version that is not yet applied is applied even if a higher one already
// is. A database that records a version this binary does not know was written by a newer binary
// and is refused.
package migrate

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

var (
	// ErrTooNew marks a database migrated by a newer binary than this one.
	ErrTooNew = errors.New("migrate: database schema is newer than this binary")
	// ErrUnknownVersion marks a database that records a version this binary does not have.
	ErrUnknownVersion = errors.New("migrate: database records an unknown migration")
	// ErrBadFile marks a badly named or duplicate migration file.
	ErrBadFile = errors.New("migrate: bad migration file")
)

// Table is the name of the table recording applied versions.
const Table = "schema_migrations"

// DB is what Up needs of a database: a *sql.DB, or a *sql.Conn where the caller holds a lock on
// that connection's session (PostgreSQL's pg_advisory_lock, so that replicas starting at once
// migrate one after the other).
type DB interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error)
}

var (
	_ DB = (*sql.DB)(nil)
	_ DB = (*sql.Conn)(nil)
)

// Migration is one numbered SQL script.
type Migration struct {
	Version int64
	Name    string // file name
	SQL     string
}

var fileRE = regexp.MustCompile(`^([0-9]+)_([a-z0-9_]+)\.sql$`)

// Load reads the migrations in the root of fsys, sorted by version.
func Load(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("migrate: read migrations: %w", err)
	}
	var ms []Migration
	seen := map[int64]string{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || path.Ext(name) != ".sql" {
			continue
		}
		m := fileRE.FindStringSubmatch(name)
		if m == nil {
			return nil, fmt.Errorf("%w: %q is not NNNN_name.sql", ErrBadFile, name)
		}
		v, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil || v < 1 {
			return nil, fmt.Errorf("%w: %q: version must be a positive integer", ErrBadFile, name)
		}
		if prev, ok := seen[v]; ok {
			return nil, fmt.Errorf("%w: %q and %q have the same version %d", ErrBadFile, prev, name, v)
		}
		seen[v] = name
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("migrate: read %s: %w", name, err)
		}
		if strings.TrimSpace(string(b)) == "" {
			return nil, fmt.Errorf("%w: %q is empty", ErrBadFile, name)
		}
		ms = append(ms, Migration{Version: v, Name: name, SQL: string(b)})
	}
	slices.SortFunc(ms, func(a, b Migration) int { return cmp.Compare(a.Version, b.Version) })
	return ms, nil
}

// Up applies every migration of fsys that db has not recorded, in version order, each in its own
// transaction together with its row in schema_migrations. It returns the versions it applied.
// db should allow a single writer (as sqlitex's writer pool does); on PostgreSQL, concurrent
// migrators would conflict, so the caller serializes them (see DB).
func Up(ctx context.Context, db DB, fsys fs.FS) ([]int64, error) {
	ms, err := Load(fsys)
	if err != nil {
		return nil, err
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+Table+
		` (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
		return nil, fmt.Errorf("migrate: create %s: %w", Table, err)
	}
	have, err := Applied(ctx, db)
	if err != nil {
		return nil, err
	}
	known := map[int64]bool{}
	var maxKnown int64
	for _, m := range ms {
		known[m.Version] = true
		maxKnown = max(maxKnown, m.Version)
	}
	for _, v := range have {
		if v > maxKnown {
			return nil, fmt.Errorf("%w: it records version %d, this binary knows up to %d", ErrTooNew, v, maxKnown)
		}
		if !known[v] {
			return nil, fmt.Errorf("%w: version %d", ErrUnknownVersion, v)
		}
	}
	var applied []int64
	for _, m := range ms {
		if slices.Contains(have, m.Version) {
			continue
		}
		if err := apply(ctx, db, m); err != nil {
			return applied, err
		}
		applied = append(applied, m.Version)
	}
	return applied, nil
}

func apply(ctx context.Context, db DB, m Migration) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %s: begin: %w", m.Name, err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	// Another process may have applied it since Up looked (SQLite: this transaction holds the
	// write lock if begun IMMEDIATE, as sqlitex's writer does).
	var n int
	if err := tx.QueryRowContext(ctx, fmt.Sprintf(`SELECT count(*) FROM %s WHERE version = %d`, Table, m.Version)).Scan(&n); err != nil {
		return fmt.Errorf("migrate: %s: %w", m.Name, err)
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return fmt.Errorf("migrate: %s: %w", m.Name, err)
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`INSERT INTO %s (version, applied_at) VALUES (%d, %d)`,
		Table, m.Version, time.Now().UnixMilli())); err != nil {
		return fmt.Errorf("migrate: %s: record version: %w", m.Name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: %s: commit: %w", m.Name, err)
	}
	return nil
}

// Applied returns the versions db records, ascending. The table must exist (Up creates it).
func Applied(ctx context.Context, db DB) ([]int64, error) {
	rows, err := db.QueryContext(ctx, `SELECT version FROM `+Table+` ORDER BY version`)
	if err != nil {
		return nil, fmt.Errorf("migrate: read %s: %w", Table, err)
	}
	defer rows.Close()
	var vs []int64
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("migrate: read %s: %w", Table, err)
		}
		vs = append(vs, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("migrate: read %s: %w", Table, err)
	}
	return vs, nil
}
