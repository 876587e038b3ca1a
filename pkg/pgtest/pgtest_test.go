package pgtest_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kioskfleet/kioskfleet/pkg/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// TestDatabasePerTest: each test gets its own empty database on the package's server.
func TestDatabasePerTest(t *testing.T) {
	a, b := pgtest.DB(t), pgtest.DB(t)
	if a == b {
		t.Fatalf("two tests share database %s", a)
	}
	ca, cb := connect(t, a), connect(t, b)
	if _, err := ca.Exec(t.Context(), `CREATE TABLE x (n int); INSERT INTO x VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	if _, err := cb.Exec(t.Context(), `SELECT * FROM x`); err == nil {
		t.Fatal("a table of one test's database is visible in another's")
	}
	var fsync string
	if err := ca.QueryRow(t.Context(), `SHOW fsync`).Scan(&fsync); err != nil || fsync != "off" {
		t.Fatalf("fsync = %q, %v; want off", fsync, err)
	}
}

// TestKillRestart: a killed server comes back on the same port with what was committed.
func TestKillRestart(t *testing.T) {
	if _, err := pgtest.Shared(); errors.Is(err, pgtest.ErrNoPostgres) {
		t.Skip(err)
	}
	s, err := pgtest.Start(t.Context(), "fsync=on")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := connect(t, s.URL("postgres"))
	if _, err := c.Exec(t.Context(), `CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)`); err != nil {
		t.Fatal(err)
	}
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	// The backend serving c is a child of the killed postmaster: it notices the death at its next
	// wait and exits, which on a loaded machine can take a moment.
	for deadline := time.Now().Add(10 * time.Second); c.Ping(t.Context()) == nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("connection still answers 10 s after the server was killed")
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := connect(t, s.URL("postgres")).QueryRow(t.Context(), `SELECT n FROM kept`).Scan(&n); err != nil || n != 42 {
		t.Fatalf("after restart: %d, %v", n, err)
	}
}

// TestCPU: the server's CPU time is counted, and grows with the work it is given.
func TestCPU(t *testing.T) {
	s, err := pgtest.Shared()
	if errors.Is(err, pgtest.ErrNoPostgres) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	before, err := s.CPU()
	if err != nil || before <= 0 {
		t.Fatalf("CPU = %v, %v; want more than 0", before, err)
	}
	c := connect(t, pgtest.DB(t))
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := c.Exec(t.Context(), `SELECT count(*) FROM generate_series(1, 200000)`); err != nil {
			t.Fatal(err)
		}
		after, err := s.CPU()
		if err != nil {
			t.Fatal(err)
		}
		if after > before {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("CPU stayed at %v while the server counted", after)
		}
	}
}
