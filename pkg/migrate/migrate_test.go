package migrate_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/kioskfleet/kioskfleet/pkg/migrate"
	"github.com/kioskfleet/kioskfleet/pkg/sqlitex"
)

func openDB(t *testing.T) *sqlitex.DB {
	t.Helper()
	db, err := sqlitex.Open(context.Background(), filepath.Join(t.TempDir(), "m.db"), sqlitex.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func file(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }

func TestUpIdempotentAndOutOfOrder(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	fsys := fstest.MapFS{
		"0001_init.sql":     file("CREATE TABLE a (x INTEGER);\nCREATE TABLE b (y INTEGER);"),
		"0100_identity.sql": file("CREATE TABLE c (z INTEGER);"),
		"README.md":         file("ignored"),
	}
	got, err := migrate.Up(ctx, db.W, fsys)
	if err != nil || !slices.Equal(got, []int64{1, 100}) {
		t.Fatalf("first Up = %v, %v; want [1 100]", got, err)
	}
	got, err = migrate.Up(ctx, db.W, fsys)
	if err != nil || len(got) != 0 {
		t.Fatalf("second Up = %v, %v; want nothing applied", got, err)
	}
	// A new migration below an applied one (another owner's range) is still applied.
	fsys["0002_more.sql"] = file("ALTER TABLE a ADD COLUMN w TEXT;")
	got, err = migrate.Up(ctx, db.W, fsys)
	if err != nil || !slices.Equal(got, []int64{2}) {
		t.Fatalf("third Up = %v, %v; want [2]", got, err)
	}
	vs, err := migrate.Applied(ctx, db.W)
	if err != nil || !slices.Equal(vs, []int64{1, 2, 100}) {
		t.Fatalf("Applied = %v, %v", vs, err)
	}
	if _, err := db.W.Exec("INSERT INTO a (x, w) VALUES (1, 'x')"); err != nil {
		t.Fatal(err)
	}
}

func TestFailedMigrationRollsBack(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	fsys := fstest.MapFS{
		"0001_ok.sql":  file("CREATE TABLE a (x INTEGER);"),
		"0002_bad.sql": file("CREATE TABLE b (y INTEGER); INSERT INTO nosuch VALUES (1);"),
	}
	got, err := migrate.Up(ctx, db.W, fsys)
	if err == nil || !slices.Equal(got, []int64{1}) {
		t.Fatalf("Up = %v, %v; want [1] and an error", got, err)
	}
	var n int
	if err := db.W.QueryRow("SELECT count(*) FROM sqlite_master WHERE name = 'b'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("table b exists after a failed migration (n=%d, %v)", n, err)
	}
	fsys["0002_bad.sql"] = file("CREATE TABLE b (y INTEGER);")
	if got, err := migrate.Up(ctx, db.W, fsys); err != nil || !slices.Equal(got, []int64{2}) {
		t.Fatalf("Up after fix = %v, %v", got, err)
	}
}

func TestRefusesNewerDatabase(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	newer := fstest.MapFS{"0001_a.sql": file("CREATE TABLE a (x);"), "0002_b.sql": file("CREATE TABLE b (x);")}
	if _, err := migrate.Up(ctx, db.W, newer); err != nil {
		t.Fatal(err)
	}
	older := fstest.MapFS{"0001_a.sql": file("CREATE TABLE a (x);")}
	if _, err := migrate.Up(ctx, db.W, older); !errors.Is(err, migrate.ErrTooNew) {
		t.Fatalf("Up with an older binary = %v, want ErrTooNew", err)
	}
	gap := fstest.MapFS{"0001_a.sql": file("CREATE TABLE a (x);"), "0003_c.sql": file("CREATE TABLE c (x);")}
	if _, err := migrate.Up(ctx, db.W, gap); !errors.Is(err, migrate.ErrUnknownVersion) {
		t.Fatalf("Up missing a recorded version = %v, want ErrUnknownVersion", err)
	}
}

func TestLoadRejectsBadFiles(t *testing.T) {
	for name, fsys := range map[string]fstest.MapFS{
		"bad name":  {"init.sql": file("SELECT 1;")},
		"upper":     {"0001_Init.sql": file("SELECT 1;")},
		"zero":      {"0000_zero.sql": file("SELECT 1;")},
		"duplicate": {"0001_a.sql": file("SELECT 1;"), "01_b.sql": file("SELECT 1;")},
		"empty":     {"0001_a.sql": file("  \n")},
	} {
		if _, err := migrate.Load(fsys); !errors.Is(err, migrate.ErrBadFile) {
			t.Errorf("%s: Load = %v, want ErrBadFile", name, err)
		}
	}
}

// TestConcurrentOpeners: two handles on one file (as two processes would be) migrate at once;
// both succeed and every migration runs once.
func TestConcurrentOpeners(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "m.db")
	fsys := fstest.MapFS{}
	for i := 1; i <= 20; i++ {
		fsys[fmt.Sprintf("%04d_t.sql", i)] = file(fmt.Sprintf("CREATE TABLE t%d (x INTEGER);", i))
	}
	var wg sync.WaitGroup
	for range 2 {
		db, err := sqlitex.Open(ctx, path, sqlitex.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		wg.Go(func() {
			if _, err := migrate.Up(ctx, db.W, fsys); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	db, err := sqlitex.Open(ctx, path, sqlitex.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	vs, err := migrate.Applied(ctx, db.R)
	if err != nil || len(vs) != 20 {
		t.Fatalf("Applied = %v, %v; want 20 versions", vs, err)
	}
}
