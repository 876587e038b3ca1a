package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Audit keeps the audit log of staff and admin actions: append-only, each entry chained to the
// one before by its hash, so that an entry changed or removed afterwards breaks the chain
// (VerifyAudit).
type StaffAudit interface {
	// AppendAudit appends e; the store sets its ID, Prev (the last entry's Hash, "" for the
	// first) and Hash (AuditHash), appending one at a time.
	AppendAudit(ctx context.Context, e StaffAction) (StaffAction, error)
	// ListAudit lists entries, newest first.
	ListAudit(ctx context.Context, f StaffActionFilter) ([]StaffAction, error)
}

// StaffAction is one action: who (with their roles), what, on which target, from where, and the
// result.
type StaffAction struct {
	ID     int64
	At     time.Time
	Actor  string // username, or the token's subject (bootstrap-admin)
	Roles  string // comma-separated
	Action string // "POST /devices/{id}/revoke"
	Target string // the path acted on: "/api/v1/devices/k-1/revoke"
	Source string // the client's address
	Status int    // the HTTP status answered
	Result string // ok, or the error code (forbidden, conflict, ...)
	Prev   string // hex SHA-256 of the entry before ("" for the first)
	Hash   string // AuditHash(Prev, the entry)
}

// StaffActionFilter selects audit entries: by actor, by target (exact path), before an ID.
type StaffActionFilter struct {
	Actor    string
	Target   string
	BeforeID int64 // 0: from the newest
	Limit    int   // 0: 100
}

// AuditHash is the hash of an entry in the chain: SHA-256 over prev and the entry's fields
// (not its ID), as a JSON array, in hex.
func AuditHash(prev string, e StaffAction) string {
	b, _ := json.Marshal([]any{prev, e.At.UnixNano(), e.Actor, e.Roles, e.Action, e.Target, e.Source, e.Status, e.Result})
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// VerifyAudit checks a run of consecutive entries, oldest first: each Hash matches its fields
// and each Prev is the Hash before it. It returns the ID of the first entry that does not.
func VerifyAudit(entries []StaffAction) error {
	for i, e := range entries {
		if i > 0 && e.Prev != entries[i-1].Hash {
			return fmt.Errorf("%w: audit entry %d does not follow entry %d", ErrInvalid, e.ID, entries[i-1].ID)
		}
		if AuditHash(e.Prev, e) != e.Hash {
			return fmt.Errorf("%w: audit entry %d was changed", ErrInvalid, e.ID)
		}
	}
	return nil
}
