package sqlite_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/sqlite"
	"github.com/kioskfleet/kioskfleet/hub/store/storetest"
	"github.com/kioskfleet/kioskfleet/pkg/migrate"
	"github.com/kioskfleet/kioskfleet/pkg/wire"

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

// TestReopen writes one of everything, closes, reopens (a restart) and finds it all again.
func TestReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "hub.db")
	s := open(t, path)
	storetest.Enroll(t, s, "sz", "k1")
	if _, err := s.CommitBatches(ctx, []store.Batch{storetest.NewBatch("k1", "e", 1, 10, 200),
		storetest.NewBatch("k1", "e", 15, 5, 200)}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateCommand(ctx, store.Command{ID: "c1", DeviceID: "k1", Name: "reboot", CreatedAt: storetest.T0,
		ExpiresAt: storetest.T0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetDesired(ctx, "k1", json.RawMessage(`{"a":1}`), storetest.T0); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPresence(ctx, "k1", true, "2.0.0", storetest.T0); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, path)
	defer s.Close()
	if d, err := s.GetDevice(ctx, "k1"); err != nil || !d.Online || d.AgentVersion != "2.0.0" || d.SiteID != "sz" {
		t.Fatalf("device after reopen: %+v, %v", d, err)
	}
	if up, err := s.Watermark(ctx, "k1", "e"); err != nil || up != 10 {
		t.Fatalf("watermark after reopen = %d, %v; want 10", up, err)
	}
	// The parked records (15..19) survived too: filling the gap jumps to 19.
	m, err := s.CommitBatches(ctx, []store.Batch{storetest.NewBatch("k1", "e", 11, 4, 200)})
	if err != nil || m[0].UpTo != 19 {
		t.Fatalf("fill after reopen = %+v, %v; want 19", m, err)
	}
	if rs, err := s.ListRecords(ctx, store.RecordFilter{DeviceID: "k1"}); err != nil || len(rs) != 19 {
		t.Fatalf("records after reopen: %d, %v", len(rs), err)
	}
	if c, err := s.GetCommand(ctx, "c1"); err != nil || c.State != wire.CmdQueued {
		t.Fatalf("command after reopen: %+v, %v", c, err)
	}
	if d, err := s.GetDesired(ctx, "k1"); err != nil || d.Version != 1 {
		t.Fatalf("desired after reopen: %+v, %v", d, err)
	}
	if err := s.Check(ctx); err != nil {
		t.Fatal(err)
	}
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

// BenchmarkCommitBatches measures the group-commit hot path: each op commits one transaction of
// N devices x 100 records of 200 bytes (synchronous=FULL, on the test's temp directory); in the
// "heartbeat" variant every 10th record also carries a health effect.
func BenchmarkCommitBatches(b *testing.B) {
	for _, c := range []struct {
		devices, perBatch int
		effects           bool
	}{{20, 100, false}, {50, 100, false}, {1, 100, false}, {20, 100, true}} {
		name := fmt.Sprintf("devices=%d/records=%d", c.devices, c.perBatch)
		if c.effects {
			name += "/heartbeat"
		}
		b.Run(name, func(b *testing.B) {
			s := open(b, filepath.Join(b.TempDir(), "bench.db"))
			defer s.Close()
			for d := range c.devices {
				storetest.Enroll(b, s, "sz", fmt.Sprintf("k%03d", d))
			}
			health := json.RawMessage(`{"uptimeS":100,"cpuPercent":12.5}`)
			next := uint64(1)
			b.ResetTimer()
			for b.Loop() {
				group := make([]store.Batch, c.devices)
				for d := range group {
					group[d] = storetest.NewBatch(fmt.Sprintf("k%03d", d), "e", next, c.perBatch, 200)
					for i := range group[d].Records {
						if c.effects && i%10 == 9 {
							group[d].Records[i].Effect.Health = health
						}
					}
				}
				m, err := s.CommitBatches(context.Background(), group)
				if err != nil {
					b.Fatal(err)
				}
				next += uint64(c.perBatch)
				if m[0].UpTo != next-1 {
					b.Fatalf("watermark %d, want %d", m[0].UpTo, next-1)
				}
			}
			b.ReportMetric(float64(b.N*c.devices*c.perBatch)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
