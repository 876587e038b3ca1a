package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/sqlite"
	"github.com/kioskfleet/kioskfleet/hub/store/storetest"
	"github.com/kioskfleet/kioskfleet/pkg/migrate"

	_ "github.com/mattn/go-sqlite3"
)

func TestMain(m *testing.M) {
	if crashChild() {
		return
	}
	goleak.VerifyTestMain(m)
}

func open(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s := open(t, filepath.Join(t.TempDir(), "hub.db"))
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestReopen: what is written survives a close and an open (a restart).
func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.db")
	storetest.Reopen(t, func(t *testing.T) store.Store { return open(t, path) })
}

// TestRefusesNewerSchema: a database migrated by a newer binary is not opened.
func TestRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.db")
	open(t, path).Close()
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO schema_migrations (version, applied_at) VALUES (9999, 0)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if s, err := sqlite.Open(t.Context(), path, nil); !errors.Is(err, migrate.ErrTooNew) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open = %v, want ErrTooNew", err)
	}
}

// BenchmarkCommitBatches measures the group-commit hot path (storetest.BenchCommitBatches), with
// synchronous=FULL on the test's temp directory.
func BenchmarkCommitBatches(b *testing.B) {
	storetest.BenchCommitBatches(b, func(b *testing.B) store.Store {
		s := open(b, filepath.Join(b.TempDir(), "bench.db"))
		b.Cleanup(func() { s.Close() })
		return s
	})
}
