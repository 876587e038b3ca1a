package wire

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"slices"
	"strconv"
	"unicode/utf8"
)

// KindJournal is the record kind of a transaction journal entry (body: JournalEntry).
const KindJournal = "journal.entry"

// Limits of a journal entry.
const (
	MaxJournalFacts    = 32  // counts and refs, each
	MaxJournalRefBytes = 128 // one ref's value
)

// JournalEntry is one citizen-facing transaction at a kiosk (a login, a print, a scan, the wipe at
// the end of a session), as the agent's journal (agent/journal) records it and the hub's
// (hub/journal) verifies it. The entries of a kiosk form a hash chain: each carries the hash of
// the entry before it, so an entry altered, removed or moved shows as a break. Some entries are
// checkpoints, signed with the kiosk's enrolled device key (ECDSA P-256), so that a chain
// rewritten from some point on cannot be passed off as the kiosk's.
//
// No personal data: counts, hashes, kinds, document IDs and outcome codes only.
type JournalEntry struct {
	V       int               `json:"v"`
	Chain   string            `json:"chain"`             // the chain's ID (16 hex), new with a new journal
	Index   uint64            `json:"index"`             // 1, 2, ... within the chain
	Prev    string            `json:"prev"`              // Hash of entry Index-1; "" for the first
	TS      int64             `json:"ts"`                // device clock, Unix ms
	Type    string            `json:"type"`              // session.login, print, scan, session.wiped, ...
	Session string            `json:"session,omitempty"` // the citizen session's random ID
	Counts  map[string]int64  `json:"counts,omitempty"`  // pages: 2, files: 3, ...
	Refs    map[string]string `json:"refs,omitempty"`    // document IDs, SHA-256 digests (hex), outcome codes
	Hash    string            `json:"hash"`              // hex SHA-256 of the fields above (Digest)
	Sig     string            `json:"sig,omitempty"`     // a checkpoint's signature (SignCheckpoint)
}

var (
	// ErrJournalHash marks an entry whose hash is not the digest of its fields.
	ErrJournalHash = errors.New("wire: journal entry hash does not match its content")
	// ErrJournalSig marks a checkpoint whose signature does not verify with the kiosk's key.
	ErrJournalSig = errors.New("wire: journal checkpoint signature does not verify")
)

// Digest returns the hex SHA-256 of the entry's fields but Hash and Sig, over a length-prefixed
// binary encoding (never over JSON, whose spelling changes on the way: escaping, key order), so
// that agent and hub compute it the same way.
func (e *JournalEntry) Digest() string {
	h := sha256.New()
	h.Write([]byte("kioskfleet journal v1\n"))
	hashStr(h, e.Chain)
	hashU64(h, e.Index)
	hashStr(h, e.Prev)
	hashU64(h, uint64(e.TS))
	hashStr(h, e.Type)
	hashStr(h, e.Session)
	hashU64(h, uint64(len(e.Counts)))
	for _, k := range sortedKeys(e.Counts) {
		hashStr(h, k)
		hashU64(h, uint64(e.Counts[k]))
	}
	hashU64(h, uint64(len(e.Refs)))
	for _, k := range sortedKeys(e.Refs) {
		hashStr(h, k)
		hashStr(h, e.Refs[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

func hashStr(h hash.Hash, s string) {
	hashU64(h, uint64(len(s)))
	h.Write([]byte(s))
}

func hashU64(h hash.Hash, v uint64) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	h.Write(b[:])
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Seal sets the entry's Hash.
func (e *JournalEntry) Seal() { e.Hash = e.Digest() }

// checkpointDigest is what a checkpoint signs: the chain, the index and the hash of the entry,
// which covers every entry before it.
func (e *JournalEntry) checkpointDigest() []byte {
	d := sha256.Sum256([]byte("kioskfleet journal checkpoint v1\n" + e.Chain + "\n" +
		strconv.FormatUint(e.Index, 10) + "\n" + e.Hash))
	return d[:]
}

// SignCheckpoint makes a sealed entry a checkpoint: Sig is the ASN.1 ECDSA signature (base64)
// of its chain, index and hash with the kiosk's device key.
func (e *JournalEntry) SignCheckpoint(key *ecdsa.PrivateKey) error {
	if key == nil {
		return errors.New("wire: journal checkpoint: no device key")
	}
	sig, err := ecdsa.SignASN1(rand.Reader, key, e.checkpointDigest())
	if err != nil {
		return fmt.Errorf("wire: journal checkpoint: %w", err)
	}
	e.Sig = base64.StdEncoding.EncodeToString(sig)
	return nil
}

// VerifyCheckpoint checks a checkpoint's signature with the kiosk's public key (ErrJournalSig).
func (e *JournalEntry) VerifyCheckpoint(pub *ecdsa.PublicKey) error {
	sig, err := base64.StdEncoding.DecodeString(e.Sig)
	if err != nil || pub == nil || !ecdsa.VerifyASN1(pub, e.checkpointDigest(), sig) {
		return ErrJournalSig
	}
	return nil
}

// VerifyHash checks that Hash is the digest of the entry's fields (ErrJournalHash).
func (e *JournalEntry) VerifyHash() error {
	if e.Hash != e.Digest() {
		return ErrJournalHash
	}
	return nil
}

// DecodeJournalEntry decodes the body of a journal.entry record strictly and checks its shape
// (not its hash or signature: a verifier tells a tampered entry from a malformed one).
func DecodeJournalEntry(body []byte) (JournalEntry, error) {
	var e JournalEntry
	if err := strictBody(body, &e); err != nil {
		return JournalEntry{}, err
	}
	if e.V != Version {
		return JournalEntry{}, fmt.Errorf("%w: journal entry v %d (want %d)", ErrUnknownVersion, e.V, Version)
	}
	return e, e.check()
}

func (e *JournalEntry) check() error {
	switch {
	case len(e.Chain) != 16 || !isHex(e.Chain):
		return malformed("journal entry: chain must be 16 hex digits")
	case e.Index == 0 || e.Index > 1<<62:
		return malformed("journal entry: index %d out of range", e.Index)
	case e.Index == 1 && e.Prev != "":
		return malformed("journal entry: the first entry has no prev")
	case e.Index > 1 && !isDigest(e.Prev):
		return malformed("journal entry: prev must be 64 hex digits")
	case !isDigest(e.Hash):
		return malformed("journal entry: hash must be 64 hex digits")
	case !ValidKind(e.Type):
		return malformed("journal entry: type %q is not a kind", clip(e.Type))
	case len(e.Session) > 64 || !plainID(e.Session):
		return malformed("journal entry: session must be at most 64 of [a-z0-9-]")
	case len(e.Counts) > MaxJournalFacts || len(e.Refs) > MaxJournalFacts:
		return malformed("journal entry: at most %d counts and %d refs", MaxJournalFacts, MaxJournalFacts)
	case len(e.Sig) > 200:
		return malformed("journal entry: sig too long")
	}
	for k, v := range e.Counts {
		if !ValidKind(k) || v < 0 {
			return malformed("journal entry: count %q must be a kind with a value >= 0", clip(k))
		}
	}
	for k, v := range e.Refs {
		if !ValidKind(k) || len(v) > MaxJournalRefBytes || !utf8.ValidString(v) {
			return malformed("journal entry: ref %q must be a kind with a value of at most %d bytes", clip(k), MaxJournalRefBytes)
		}
	}
	return nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func isDigest(s string) bool { return len(s) == 64 && isHex(s) }

func plainID(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
