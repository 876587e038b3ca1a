package journal_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/ingest"
	"github.com/kioskfleet/kioskfleet/hub/ingest/ingesttest"
	"github.com/kioskfleet/kioskfleet/hub/journal"
	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/sqlite"
	"github.com/kioskfleet/kioskfleet/hub/store/storetest"
	"github.com/kioskfleet/kioskfleet/pkg/polltest"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// kiosk is an enrolled device with a real certificate, writing its journal as agent/journal does.
type kiosk struct {
	t     *testing.T
	id    string
	key   *ecdsa.PrivateKey
	chain string
	es    []wire.JournalEntry
}

func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "hub.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func enroll(t *testing.T, s store.Devices, id string) *kiosk {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: id},
		NotBefore: storetest.T0, NotAfter: storetest.T0.AddDate(1, 0, 0)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.GetSite(ctx, "sz"); err != nil {
		if err := s.CreateSite(ctx, store.Site{ID: "sz", Name: "Hall", Region: "440305"}); err != nil {
			t.Fatal(err)
		}
	}
	h := sha256.Sum256([]byte("secret-" + id))
	if err := s.CreateEnrollmentToken(ctx, store.EnrollmentToken{ID: "tok-" + id, Hash: h[:], SiteID: "sz", CreatedAt: storetest.T0, ExpiresAt: storetest.T0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EnrollDevice(ctx, h[:], store.Device{ID: id, Model: "K1", CertSerial: "01", CertExpiry: tmpl.NotAfter,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, storetest.T0); err != nil {
		t.Fatal(err)
	}
	return &kiosk{t: t, id: id, key: key, chain: "0123456789abcdef"}
}

// write appends n entries to the kiosk's chain; every third is a checkpoint.
func (k *kiosk) write(n int) {
	for range n {
		e := wire.JournalEntry{V: wire.Version, Chain: k.chain, Index: uint64(len(k.es) + 1), TS: storetest.T0.UnixMilli(),
			Type: "print", Session: "s-1", Counts: map[string]int64{"pages": 2}, Refs: map[string]string{"document": "form-apply"}}
		if len(k.es) > 0 {
			e.Prev = k.es[len(k.es)-1].Hash
		}
		e.Seal()
		if e.Index%3 == 0 {
			if err := e.SignCheckpoint(k.key); err != nil {
				k.t.Fatal(err)
			}
		}
		k.es = append(k.es, e)
	}
}

// batch is the outbox's batch of the entries at indices (1-based), in that order, from seq from.
func (k *kiosk) batch(epoch string, from uint64, entries ...wire.JournalEntry) store.Batch {
	b := store.Batch{DeviceID: k.id, Epoch: epoch, RecvTS: storetest.T0}
	for i, e := range entries {
		b.Records = append(b.Records, store.IncomingRecord{Record: wire.Record{Seq: from + uint64(i), Kind: wire.KindJournal,
			Class: wire.Business, TS: e.TS, Body: wire.Encode(e)}})
	}
	return b
}

func (k *kiosk) at(idx ...int) []wire.JournalEntry {
	var out []wire.JournalEntry
	for _, i := range idx {
		out = append(out, k.es[i-1])
	}
	return out
}

// verify commits b and runs the verifier on the kiosk; it returns the kinds of the kiosk's events.
func verify(t *testing.T, s *sqlite.Store, v *journal.Verifier, k *kiosk, bs ...store.Batch) []string {
	t.Helper()
	if _, err := s.CommitBatches(context.Background(), bs); err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(context.Background(), k.id); err != nil {
		t.Fatal(err)
	}
	return events(t, s, k.id)
}

func events(t *testing.T, s store.Journal, id string) []string {
	t.Helper()
	evs, err := s.ListSecurityEvents(context.Background(), store.SecurityEventFilter{DeviceID: id})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range evs {
		kinds = append(kinds, e.Kind+"@"+itoa(e.Index))
		if strings.Contains(e.Detail, "张") {
			t.Fatalf("personal data in an event: %s", e.Detail)
		}
	}
	return kinds
}

func itoa(i uint64) string { return big.NewInt(int64(i)).String() }

func wantEvents(t *testing.T, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("security events %q, want %q", got, want)
	}
}

// An intact chain, sent in several batches, raises nothing; its checkpoints verify.
func TestIntactChain(t *testing.T) {
	s := openStore(t)
	v := journal.New(s, nil)
	k := enroll(t, s, "k-1")
	k.write(7)
	wantEvents(t, verify(t, s, v, k, k.batch("e1", 1, k.at(1, 2, 3)...)))
	wantEvents(t, verify(t, s, v, k, k.batch("e1", 4, k.at(4, 5, 6, 7)...)))
	h, err := s.JournalHead(context.Background(), "k-1")
	if err != nil || h.Index != 7 || h.Hash != k.es[6].Hash || h.Checkpoint != 6 || h.Entries != 7 || h.Events != 0 {
		t.Fatalf("head %+v, %v", h, err)
	}
}

// An entry altered on the kiosk (its counts changed after it was written) is flagged once.
func TestTamperedEntry(t *testing.T) {
	s := openStore(t)
	v := journal.New(s, nil)
	k := enroll(t, s, "k-1")
	k.write(5)
	bad := k.es[2]
	bad.Counts = map[string]int64{"pages": 200}
	wantEvents(t, verify(t, s, v, k, k.batch("e1", 1, k.es[0], k.es[1], bad, k.es[3], k.es[4])), journal.EventTampered+"@3")
	// An entry replaced by a consistent one (rehashed) breaks the link to the next.
	k2 := enroll(t, s, "k-2")
	k2.write(4)
	swapped := k2.es[1]
	swapped.Type = "scan"
	swapped.Seal()
	swapped.Sig = ""
	wantEvents(t, verify(t, s, v, k2, k2.batch("e1", 1, k2.es[0], swapped, k2.es[2], k2.es[3])), journal.EventBreak+"@3")
}

// Entries sent out of order, and an entry missing.
func TestReorderedAndMissing(t *testing.T) {
	s := openStore(t)
	v := journal.New(s, nil)
	k := enroll(t, s, "k-1")
	k.write(5)
	wantEvents(t, verify(t, s, v, k, k.batch("e1", 1, k.at(1, 2, 4, 3, 5)...)),
		journal.EventGap+"@4", journal.EventReordered+"@3")
	k2 := enroll(t, s, "k-2")
	k2.write(4)
	wantEvents(t, verify(t, s, v, k2, k2.batch("e1", 1, k2.at(1, 2, 4)...)), journal.EventGap+"@4")
	k3 := enroll(t, s, "k-3")
	k3.write(3)
	wantEvents(t, verify(t, s, v, k3, k3.batch("e1", 1, k3.at(2, 3)...)), journal.EventGap+"@2")
}

// A chain rewritten by someone without the kiosk's key: its checkpoints do not verify.
func TestForgedCheckpoint(t *testing.T) {
	s := openStore(t)
	v := journal.New(s, nil)
	k := enroll(t, s, "k-1")
	real := k.key
	k.key, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k.write(3)
	wantEvents(t, verify(t, s, v, k, k.batch("e1", 1, k.at(1, 2, 3)...)), journal.EventForged+"@3")
	k.key = real
	k.write(3)
	wantEvents(t, verify(t, s, v, k, k.batch("e1", 4, k.at(4, 5, 6)...)), journal.EventForged+"@3")
	if h, _ := s.JournalHead(context.Background(), "k-1"); h.Checkpoint != 6 {
		t.Fatalf("checkpoint %d, want 6", h.Checkpoint)
	}
	// A journal record that is not an entry at all.
	b := k.batch("e1", 7, k.es[0])
	b.Records[0].Body = []byte(`{"v":1,"note":"not an entry"}`)
	wantEvents(t, verify(t, s, v, k, b), journal.EventForged+"@3", journal.EventMalformed+"@0")
}

// A kiosk whose data was wiped starts a new chain in a new outbox epoch: noted, not a break; a new
// chain within the same epoch is a break.
func TestNewChain(t *testing.T) {
	s := openStore(t)
	v := journal.New(s, nil)
	k := enroll(t, s, "k-1")
	k.write(2)
	verify(t, s, v, k, k.batch("e1", 1, k.at(1, 2)...))
	k.chain, k.es = "fedcba9876543210", nil
	k.write(2)
	wantEvents(t, verify(t, s, v, k, k.batch("e2", 1, k.at(1, 2)...)), journal.EventRestarted+"@1")
	k.chain, k.es = "00000000000000aa", nil
	k.write(1)
	wantEvents(t, verify(t, s, v, k, k.batch("e2", 3, k.at(1)...)), journal.EventRestarted+"@1", journal.EventBreak+"@1")
}

// Hooked into ingest: batches published by the kiosk are verified as they commit; duplicates
// (a resent batch) and two verifiers on one store raise each event once.
func TestThroughIngest(t *testing.T) {
	s := openStore(t)
	bus := ingesttest.NewBus()
	g, err := ingest.New(ingest.Config{}, s, bus, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	v1, v2 := journal.New(s, nil), journal.New(s, nil)
	g.AddHook(v1)
	g.AddHook(v2)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	if err := g.Subscribe(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Go(func() { _ = g.Run(ctx) })
	wg.Go(func() { _ = v1.Run(ctx) })
	wg.Go(func() { _ = v2.Run(ctx) })
	k := enroll(t, s, "k-1")
	k.write(6)
	bus.SetConnected("k-1", true)
	send := func(from uint64, es ...wire.JournalEntry) {
		b := k.batch("e1", from, es...)
		recs := make([]wire.Record, len(b.Records))
		for i, r := range b.Records {
			recs[i] = r.Record
		}
		bus.Send("k-1", wire.ChUp, wire.Batch{V: wire.Version, Epoch: "e1", Records: recs})
	}
	send(1, k.at(1, 2)...)
	send(1, k.at(1, 2)...) // resent
	send(3, k.at(3, 5, 6)...)
	deadline := time.Now().Add(10 * time.Second)
	for {
		h, err := s.JournalHead(context.Background(), "k-1")
		if err == nil && h.Index == 6 {
			break
		}
		if time.Now().After(deadline) {
			recs, _ := s.ListRecords(context.Background(), store.RecordFilter{DeviceID: "k-1"})
			t.Fatalf("journal not verified: %+v, %v; %d records, stats %+v", h, err, len(recs), g.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	wantEvents(t, events(t, s, "k-1"), journal.EventGap+"@5")
}

// A verifier starting up verifies what was committed while none ran (JournalsBehind), and only
// that: a kiosk already verified to its end is not read again.
func TestRunCatchesUp(t *testing.T) {
	s := openStore(t)
	done, behind := enroll(t, s, "k-done"), enroll(t, s, "k-behind")
	done.write(2)
	behind.write(3)
	verify(t, s, journal.New(s, nil), done, done.batch("e1", 1, done.at(1, 2)...))
	if _, err := s.CommitBatches(context.Background(), []store.Batch{behind.batch("e1", 1, behind.at(1, 3)...)}); err != nil {
		t.Fatal(err)
	}
	before, _ := s.JournalHead(context.Background(), "k-done")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	wg.Go(func() { _ = journal.New(s, nil).Run(ctx) })
	polltest.Until(t, 10*time.Second, "the journal committed before the verifier started verified", func() bool {
		h, err := s.JournalHead(context.Background(), "k-behind")
		return err == nil && h.Index == 3
	})
	wantEvents(t, events(t, s, "k-behind"), journal.EventGap+"@3")
	if after, _ := s.JournalHead(context.Background(), "k-done"); after != before {
		t.Fatalf("a verified journal was written again: %+v -> %+v", before, after)
	}
}
