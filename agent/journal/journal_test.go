package journal_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"github.com/kioskfleet/kioskfleet/agent/journal"
	"github.com/kioskfleet/kioskfleet/agent/outbox"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

func open(t *testing.T, path string, key *ecdsa.PrivateKey, opts outbox.Options) (*outbox.SQLite, *journal.Journal) {
	t.Helper()
	ob, err := outbox.Open(context.Background(), path, opts)
	if err != nil {
		t.Fatal(err)
	}
	j, err := journal.Open(context.Background(), ob, journal.Options{Key: key, CheckpointEvery: 4})
	if err != nil {
		ob.Close()
		t.Fatal(err)
	}
	return ob, j
}

// entries returns the journal entries in the outbox, in order.
func entries(t *testing.T, ob outbox.Outbox) []wire.JournalEntry {
	t.Helper()
	recs, err := ob.Pending(context.Background(), 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	var out []wire.JournalEntry
	for _, r := range recs {
		if r.Kind != wire.KindJournal {
			continue
		}
		if r.Class != wire.Business {
			t.Fatalf("journal entry of class %q", r.Class)
		}
		e, err := wire.DecodeJournalEntry(r.Body)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// checkChain checks what the hub checks: consecutive indices, each entry's prev the hash of the
// one before, every hash the digest of its entry, checkpoints signed with the key.
func checkChain(t *testing.T, es []wire.JournalEntry, key *ecdsa.PrivateKey) (checkpoints int) {
	t.Helper()
	for i, e := range es {
		if e.Index != uint64(i+1) || e.Chain != es[0].Chain {
			t.Fatalf("entry %d: chain %s index %d", i, e.Chain, e.Index)
		}
		if i > 0 && e.Prev != es[i-1].Hash {
			t.Fatalf("entry %d: prev %s, want %s", i, e.Prev, es[i-1].Hash)
		}
		if err := e.VerifyHash(); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if e.Sig != "" {
			checkpoints++
			if err := e.VerifyCheckpoint(&key.PublicKey); err != nil {
				t.Fatalf("entry %d: %v", i, err)
			}
		}
	}
	return checkpoints
}

// Concurrent appends make one chain without gaps; checkpoints come every 4 entries and when
// asked for; the chain goes on after a reopen.
func TestChain(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	path := filepath.Join(t.TempDir(), "outbox.db")
	ob, j := open(t, path, key, outbox.Options{})
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			if _, err := j.Append(ctx, journal.Entry{Type: "print", Session: "s-1", Counts: map[string]int64{"pages": int64(i)}}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	last, err := j.Append(ctx, journal.Entry{Type: "session.wiped", Session: "s-1", Checkpoint: true})
	if err != nil || last.Index != 11 || last.Sig == "" {
		t.Fatalf("wipe entry %+v, %v", last, err)
	}
	es := entries(t, ob)
	if n := checkChain(t, es, key); len(es) != 11 || n != 3 { // 4, 8 and the wipe
		t.Fatalf("%d entries, %d checkpoints", len(es), n)
	}
	ob.Close()

	ob, j = open(t, path, key, outbox.Options{})
	defer ob.Close()
	if _, err := j.Append(ctx, journal.Entry{Type: "scan", Refs: map[string]string{"sha256": es[0].Hash}}); err != nil {
		t.Fatal(err)
	}
	es = entries(t, ob)
	checkChain(t, es, key)
	if chain, idx, hash, err := j.Head(ctx); err != nil || chain != es[0].Chain || idx != 12 || hash != es[11].Hash {
		t.Fatalf("head %s %d %s %v", chain, idx, hash, err)
	}
}

// An entry the outbox refuses (full, or invalid) leaves the chain as it was: no index is skipped.
func TestRefusedLeavesNoGap(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ob, j := open(t, filepath.Join(t.TempDir(), "outbox.db"), key, outbox.Options{MaxBytes: 4096})
	defer ob.Close()
	ctx := context.Background()
	if _, err := j.Append(ctx, journal.Entry{Type: "Not A Kind"}); err == nil {
		t.Fatal("an entry with a bad type was accepted")
	}
	var full error
	for range 100 {
		if _, full = j.Append(ctx, journal.Entry{Type: "print", Refs: map[string]string{"document": "form-apply-for-a-residence-permit"}}); full != nil {
			break
		}
	}
	if !errors.Is(full, outbox.ErrFull) {
		t.Fatalf("outbox never full: %v", full)
	}
	es := entries(t, ob)
	checkChain(t, es, key)
	if _, idx, _, _ := j.Head(ctx); idx != uint64(len(es)) {
		t.Fatalf("head at %d after %d entries", idx, len(es))
	}
}

func TestOpenNeedsKey(t *testing.T) {
	ob, err := outbox.Open(context.Background(), filepath.Join(t.TempDir(), "o.db"), outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	if _, err := journal.Open(context.Background(), ob, journal.Options{}); err == nil {
		t.Fatal("opened without a key")
	}
}
