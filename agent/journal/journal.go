// Package journal is the kiosk's transaction journal: every citizen-facing transaction (a login,
// a print, a scan, the wipe at the end of a session) becomes a wire.JournalEntry in a hash chain,
// each entry carrying the hash of the one before, with periodic checkpoints signed by the kiosk's
// enrolled device key. The hub (hub/journal) verifies the chain and flags a break, a gap or a
// forged checkpoint.
//
// The journal lives in the outbox's SQLite database and writes through the outbox's writer: the
// chain's head and the entry's journal.entry record commit in one transaction, so each entry is
// carried by the outbox exactly once, across crashes (no entry twice, no index skipped).
//
// Entries hold no personal data: kinds, counts, SHA-256 digests, document IDs, outcome codes.
package journal

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/kioskfleet/kioskfleet/agent/outbox"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// DefaultCheckpointEvery is how many entries may pass between two signed checkpoints.
const DefaultCheckpointEvery = 16

const schema = `
CREATE TABLE IF NOT EXISTS journal_head (
	id      INTEGER PRIMARY KEY CHECK (id = 1),
	chain   TEXT    NOT NULL,
	idx     INTEGER NOT NULL, -- index of the last entry (0: none yet)
	hash    TEXT    NOT NULL, -- its hash ('' before the first)
	signed  INTEGER NOT NULL  -- index of the last checkpoint
);
`

// Options configure a Journal.
type Options struct {
	// Key signs checkpoints (the enrolled device key, enroll.Identity.Signer). Required.
	Key *ecdsa.PrivateKey
	// CheckpointEvery: an entry is a checkpoint when this many entries passed since the last
	// one (default DefaultCheckpointEvery); Entry.Checkpoint forces one.
	CheckpointEvery uint64
	Now             func() time.Time // device clock; default time.Now
}

// Journal appends entries to the chain. It is safe for concurrent use.
type Journal struct {
	ob   *outbox.SQLite
	opts Options
}

// Open creates the journal's table in ob's database if needed.
func Open(ctx context.Context, ob *outbox.SQLite, opts Options) (*Journal, error) {
	if opts.Key == nil {
		return nil, errors.New("journal: a device key is required to sign checkpoints")
	}
	if opts.CheckpointEvery == 0 {
		opts.CheckpointEvery = DefaultCheckpointEvery
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := ob.Update(ctx, func(tx *outbox.Tx) error {
		_, err := tx.Exec(schema)
		return err
	}); err != nil {
		return nil, fmt.Errorf("journal: create schema: %w", err)
	}
	return &Journal{ob: ob, opts: opts}, nil
}

// Entry is a transaction to record.
type Entry struct {
	Type       string            // a kind: session.login, print, scan, session.wiped, ...
	Session    string            // the citizen session's random ID ("" outside a session)
	Counts     map[string]int64  // pages, files, bytes, ...
	Refs       map[string]string // document IDs, digests, outcome codes: never personal data
	Checkpoint bool              // sign this entry whatever the count (e.g. the end of a session)
}

// Append records e as the chain's next entry, durably and in the outbox, and returns it.
func (j *Journal) Append(ctx context.Context, e Entry) (wire.JournalEntry, error) {
	var out wire.JournalEntry
	err := j.ob.Update(ctx, func(tx *outbox.Tx) error {
		var h head
		err := tx.QueryRow(`SELECT chain, idx, hash, signed FROM journal_head WHERE id = 1`).Scan(&h.chain, &h.idx, &h.hash, &h.signed)
		if errors.Is(err, sql.ErrNoRows) {
			h = head{chain: newChain()}
			if _, err := tx.Exec(`INSERT INTO journal_head (id, chain, idx, hash, signed) VALUES (1, ?, 0, '', 0)`, h.chain); err != nil {
				return err
			}
		} else if err != nil {
			return err
		}
		out = wire.JournalEntry{V: wire.Version, Chain: h.chain, Index: h.idx + 1, Prev: h.hash, TS: j.opts.Now().UnixMilli(),
			Type: e.Type, Session: e.Session, Counts: e.Counts, Refs: e.Refs}
		out.Seal()
		signed := h.signed
		if e.Checkpoint || out.Index-h.signed >= j.opts.CheckpointEvery {
			if err := out.SignCheckpoint(j.opts.Key); err != nil {
				return err
			}
			signed = out.Index
		}
		body := wire.Encode(out)
		if _, err := wire.DecodeJournalEntry(body); err != nil {
			return fmt.Errorf("%w: %v", outbox.ErrInvalid, err)
		}
		if _, err := tx.Append(wire.KindJournal, wire.Business, body); err != nil {
			return err
		}
		_, err = tx.Exec(`UPDATE journal_head SET idx = ?, hash = ?, signed = ? WHERE id = 1`, out.Index, out.Hash, signed)
		return err
	})
	if err != nil {
		return wire.JournalEntry{}, fmt.Errorf("journal: %s: %w", e.Type, err)
	}
	return out, nil
}

// Head returns the chain's ID and the index and hash of its last entry (0 and "" before the first).
func (j *Journal) Head(ctx context.Context) (chain string, index uint64, hash string, err error) {
	err = j.ob.Update(ctx, func(tx *outbox.Tx) error {
		err := tx.QueryRow(`SELECT chain, idx, hash FROM journal_head WHERE id = 1`).Scan(&chain, &index, &hash)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		return err
	})
	return chain, index, hash, err
}

type head struct {
	chain  string
	idx    uint64
	hash   string
	signed uint64
}

func newChain() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
