package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/postgres"
	"github.com/kioskfleet/kioskfleet/hub/store/storetest"
	"github.com/kioskfleet/kioskfleet/pkg/migrate"
	"github.com/kioskfleet/kioskfleet/pkg/pgtest"
)

// TestMain runs the package on one PostgreSQL server of its own (pgtest), and checks that no test
// left a goroutine behind (a pool not closed).
func TestMain(m *testing.M) {
	code := pgtest.Run(m)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// open opens a store on url, closed when t ends.
func open(t testing.TB, url string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, pgtest.DB(t)) })
}

// TestReplicasRotateRefresh: two stores on one database (two hub replicas), each with eight
// callers, rotate the same refresh tokens at once, each caller in its own order, so that each
// replica group-commits rotations of several tokens together and the two replicas' batches
// take the tokens' rows in different orders (PostgreSQL breaks the deadlocks that makes, and
// the writes of a broken batch run again alone). Every token is rotated exactly once; every
// other attempt is a reuse, which revokes its family; no attempt fails otherwise.
func TestReplicasRotateRefresh(t *testing.T) {
	url := pgtest.DB(t)
	replicas := []*postgres.Store{open(t, url), open(t, url)}
	ctx := t.Context()
	const tokens, callers = 12, 8
	tok := func(id string, kind store.TokenKind, family string) store.Token {
		return store.Token{ID: id, Kind: kind, Hash: []byte("hash-" + id), FamilyID: family, UserID: "u", Subject: "s", ClientID: "c",
			CreatedAt: storetest.T0, ExpiresAt: storetest.T0.Add(time.Hour)}
	}
	for i := range tokens {
		if err := replicas[0].InsertTokens(ctx, tok(fmt.Sprint("r", i), store.TokenRefresh, fmt.Sprint("f", i))); err != nil {
			t.Fatal(err)
		}
	}
	var won, reused [tokens]atomic.Int32
	var wg sync.WaitGroup
	for r, s := range replicas {
		for c := range callers {
			wg.Go(func() {
				for k := range tokens {
					i := (k*[]int{1, 5}[r] + c) % tokens // another order for each caller and replica (1 and 5 are prime to 12)
					err := s.RotateRefresh(ctx, fmt.Sprint("r", i), storetest.T0, tok(fmt.Sprintf("a%d-%d-%d", i, r, c), store.TokenAccess, fmt.Sprint("f", i)),
						tok(fmt.Sprintf("n%d-%d-%d", i, r, c), store.TokenRefresh, fmt.Sprint("f", i)))
					switch {
					case err == nil:
						won[i].Add(1)
					case errors.Is(err, store.ErrTokenReused):
						reused[i].Add(1)
					default:
						t.Errorf("replica %d, caller %d, token %d: %v", r, c, i, err)
					}
				}
			})
		}
	}
	wg.Wait()
	for i := range tokens {
		if won[i].Load() != 1 || reused[i].Load() != 2*callers-1 {
			t.Errorf("token %d: rotated %d times, %d reuses; want 1 and %d", i, won[i].Load(), reused[i].Load(), 2*callers-1)
		}
		if old, err := replicas[1].GetToken(ctx, fmt.Sprint("r", i)); err != nil || !old.Rotated || !old.Revoked {
			t.Errorf("token %d after its reuse: %+v, %v; want rotated and revoked", i, old, err)
		}
	}
}

// TestReplicasCommitOneDevice: two stores on one database (two hub replicas) commit batches of
// the same devices at once, as when kiosks move between replicas: overlapping ranges, in
// different orders, with gaps that the other replica fills, in groups that list the devices in
// different orders. No commit fails, every watermark a replica returns covers at least what that
// replica itself has sent contiguously and never more than what both have, and in the end each
// device has every record once, in seq order, with nothing left parked.
func TestReplicasCommitOneDevice(t *testing.T) {
	url := pgtest.DB(t)
	replicas := []*postgres.Store{open(t, url), open(t, url)}
	const devices, rounds, per = 6, 30, 8
	dev := func(i int) string { return fmt.Sprintf("k%d", i) }
	for i := range devices {
		storetest.Enroll(t, replicas[0], "sz", dev(i))
	}
	var wg sync.WaitGroup
	for r, s := range replicas {
		wg.Go(func() {
			sent := make([]map[uint64]bool, devices)
			for i := range sent {
				sent[i] = map[uint64]bool{}
			}
			for round := range rounds {
				// Replica 0 sends rounds in order; replica 1 sends them back to front, so it
				// parks beyond gaps that replica 0 fills. Both send every round: all duplicates.
				k := round
				if r == 1 {
					k = rounds - 1 - round
				}
				var group []store.Batch
				for j := range devices {
					i := j
					if r == 1 {
						i = devices - 1 - j // the other device order
					}
					b := storetest.NewBatch(dev(i), "e", uint64(k*per+1), per, 50)
					b.RecvTS = storetest.T0.Add(time.Duration(round) * time.Second)
					group = append(group, b)
					for q := range per {
						sent[i][uint64(k*per+1+q)] = true
					}
				}
				marks, err := s.CommitBatches(t.Context(), group)
				if err != nil {
					t.Errorf("replica %d round %d: %v", r, round, err)
					return
				}
				for _, m := range marks {
					var i int
					fmt.Sscanf(m.DeviceID, "k%d", &i)
					own := uint64(0)
					for sent[i][own+1] {
						own++
					}
					if m.UpTo < own || m.UpTo > rounds*per {
						t.Errorf("replica %d round %d: %s acked up to %d, but it sent 1..%d itself", r, round, m.DeviceID, m.UpTo, own)
					}
				}
			}
		})
	}
	wg.Wait()
	s := replicas[1]
	for i := range devices {
		up, err := s.Watermark(t.Context(), dev(i), "e")
		if err != nil || up != rounds*per {
			t.Fatalf("%s: watermark %d, %v; want %d", dev(i), up, err, rounds*per)
		}
		rs, err := s.ListRecords(t.Context(), store.RecordFilter{DeviceID: dev(i), Limit: rounds * per * 2})
		if err != nil || len(rs) != rounds*per {
			t.Fatalf("%s: %d records, %v; want %d", dev(i), len(rs), err, rounds*per)
		}
		for j, r := range rs {
			if r.Seq != uint64(j+1) || j > 0 && r.ID <= rs[j-1].ID {
				t.Fatalf("%s: record %d is seq %d id %d after id %d: not every seq once in id order", dev(i), j, r.Seq, r.ID, rs[max(j-1, 0)].ID)
			}
		}
	}
	if err := s.Check(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// TestCommitWaitsForDeviceLock: a commit of a device waits while another transaction holds that
// device's epoch row (as a commit on another replica does), and a commit of another device does
// not.
func TestCommitWaitsForDeviceLock(t *testing.T) {
	url := pgtest.DB(t)
	s := open(t, url)
	storetest.Enroll(t, s, "sz", "k1")
	storetest.Enroll(t, s, "sz", "k2")
	for _, d := range []string{"k1", "k2"} {
		if _, err := s.CommitBatches(t.Context(), []store.Batch{storetest.NewBatch(d, "e", 1, 1, 10)}); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	tx, err := conn.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(t.Context(), `SELECT 1 FROM epochs WHERE device_id = 'k1' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CommitBatches(t.Context(), []store.Batch{storetest.NewBatch("k2", "e", 2, 1, 10)}); err != nil {
		t.Fatalf("another device's commit: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.CommitBatches(context.Background(), []store.Batch{storetest.NewBatch("k1", "e", 2, 1, 10)})
		done <- err
	}()
	// The commit waits on the row lock: PostgreSQL shows a backend of ours waiting for a tuple
	// or transaction lock.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting int
		if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("commit of k1 finished (%v) while its epoch row was locked", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("commit of k1 never waited on the lock")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := tx.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if up, err := s.Watermark(t.Context(), "k1", "e"); err != nil || up != 2 {
		t.Fatalf("k1 watermark %d, %v; want 2", up, err)
	}
}

// TestReopen: what is written survives a close and an open (a restart, or another replica).
func TestReopen(t *testing.T) {
	url := pgtest.DB(t)
	storetest.Reopen(t, func(t *testing.T) store.Store {
		s, err := postgres.Open(t.Context(), url, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestCheckFindsBrokenWatermark: Check reports a watermark that disagrees with the records.
func TestCheckFindsBrokenWatermark(t *testing.T) {
	url := pgtest.DB(t)
	s := open(t, url)
	storetest.Enroll(t, s, "sz", "k1")
	if _, err := s.CommitBatches(t.Context(), []store.Batch{storetest.NewBatch("k1", "e", 1, 3, 10)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(t.Context()); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), `UPDATE epochs SET upto = 5`); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(t.Context()); err == nil || !strings.Contains(err.Error(), "1 epochs whose watermark disagrees") {
		t.Fatalf("Check = %v, want the broken watermark reported", err)
	}
}

// TestConcurrentOpen: replicas starting together on an empty database all open it; the schema is
// migrated once.
func TestConcurrentOpen(t *testing.T) {
	url := pgtest.DB(t)
	var wg sync.WaitGroup
	stores := make([]*postgres.Store, 4)
	errs := make([]error, len(stores))
	for i := range stores {
		wg.Go(func() { stores[i], errs[i] = postgres.Open(t.Context(), url, nil) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: %v", i, err)
			continue
		}
		stores[i].Close()
	}
}

// TestRefusesNewerSchema: a database migrated by a newer binary is not opened.
func TestRefusesNewerSchema(t *testing.T) {
	url := pgtest.DB(t)
	open(t, url).Close()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), `INSERT INTO schema_migrations (version, applied_at) VALUES (9999, 0)`); err != nil {
		t.Fatal(err)
	}
	if s, err := postgres.Open(t.Context(), url, nil); !errors.Is(err, migrate.ErrTooNew) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open = %v, want ErrTooNew", err)
	}
}

// TestOpenURL: store.Open finds this backend by either scheme; the store commits with
// synchronous_commit on unless the URL says otherwise; a bad URL or an unreachable server is an
// error that hides the password.
func TestOpenURL(t *testing.T) {
	url := pgtest.DB(t)
	for _, u := range []string{url, "postgresql" + strings.TrimPrefix(url, "postgres")} {
		s, err := store.Open(t.Context(), u, nil)
		if err != nil {
			t.Fatalf("Open(%q): %v", u, err)
		}
		if err := s.Ping(t.Context()); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	if err := store.CheckURL("postgres://h/db"); err != nil {
		t.Fatal(err)
	}
	for u, want := range map[string]string{url: "on", url + "&synchronous_commit=remote_apply": "remote_apply"} {
		if got := postgres.SynchronousCommit(t, open(t, u)); got != want {
			t.Errorf("%s: synchronous_commit = %s, want %s", u, got, want)
		}
	}
	for _, u := range []string{"postgres://u:secret@127.0.0.1:1/db?connect_timeout=1", "postgres://u:secret@[bad/db"} {
		_, err := store.Open(t.Context(), u, nil)
		if err == nil || strings.Contains(err.Error(), "secret") {
			t.Errorf("Open(%q) = %v; want an error without the password", u, err)
		}
	}
}

// BenchmarkCommitBatches measures the group-commit hot path (storetest.BenchCommitBatches) on a
// durable server of its own (fsync on, synchronous_commit on) in the test's temp directory: the
// same promise as the SQLite store's synchronous=FULL, on the same disk.
func BenchmarkCommitBatches(b *testing.B) {
	srv := durableServer(b)
	storetest.BenchCommitBatches(b, func(b *testing.B) store.Store {
		name, url, err := srv.CreateDatabase(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { srv.DropDatabase(context.Background(), name) })
		return open(b, url)
	})
}

// BenchmarkCommitBatchesReplicas: n stores on one durable database (n hub replicas, each
// committing one group at a time as hub/ingest does) commit groups of 20 devices x 100 records of
// their own devices at once; records/s is their total.
func BenchmarkCommitBatchesReplicas(b *testing.B) {
	srv := durableServer(b)
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("replicas=%d/devices=20/records=100", n), func(b *testing.B) {
			name, url, err := srv.CreateDatabase(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { srv.DropDatabase(context.Background(), name) })
			const devices, per = 20, 100
			stores := make([]*postgres.Store, n)
			for r := range stores {
				stores[r] = open(b, url)
				for d := range devices {
					storetest.Enroll(b, stores[r], "sz", fmt.Sprintf("r%d-k%02d", r, d))
				}
			}
			var ops atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for r, s := range stores {
				wg.Go(func() {
					for next := uint64(1); ops.Add(1) <= int64(b.N); next += per {
						group := make([]store.Batch, devices)
						for d := range group {
							group[d] = storetest.NewBatch(fmt.Sprintf("r%d-k%02d", r, d), "e", next, per, 200)
						}
						if _, err := s.CommitBatches(context.Background(), group); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N*devices*per)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// durableServer starts a server with fsync on for b, stopped when b ends.
func durableServer(b *testing.B) *pgtest.Server {
	b.Helper()
	if _, err := pgtest.Shared(); errors.Is(err, pgtest.ErrNoPostgres) {
		b.Skip(err)
	}
	srv, err := pgtest.Start(context.Background(), "fsync=on", "full_page_writes=on")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Close() })
	return srv
}
