package store

import (
	"context"
	"time"
)

// Journal keeps what the hub's journal verifier (hub/journal) knows of each kiosk's transaction
// journal (wire.JournalEntry): how far it has verified the hash chain, and the security events it
// raised (a tampered, missing or reordered entry, a forged checkpoint).
type Journal interface {
	// JournalHead returns a device's verification state; ErrNotFound before its first entry.
	JournalHead(ctx context.Context, deviceID string) (JournalHead, error)
	// AdvanceJournal stores h as its device's state and adds events (their IDs and device are
	// set by the store), in one transaction, if the stored state's Cursor is still from (0: no
	// state yet); otherwise it writes nothing and returns ErrConflict (another verifier, say on
	// another replica, got there first). ErrNotFound for an unknown device.
	AdvanceJournal(ctx context.Context, h JournalHead, from int64, events []SecurityEvent) error
	// JournalsBehind lists, in ID order, the devices with journal records (wire.KindJournal)
	// committed past their verified cursor: what a verifier starting up has to catch up on,
	// found in one query rather than two per device of the fleet.
	JournalsBehind(ctx context.Context) ([]string, error)
	// ListSecurityEvents lists security events, oldest first.
	ListSecurityEvents(ctx context.Context, f SecurityEventFilter) ([]SecurityEvent, error)
}

// JournalHead is how far the hub has verified a device's journal.
type JournalHead struct {
	DeviceID   string
	Cursor     int64  // Record.ID of the last journal record verified
	Epoch      string // its outbox epoch
	Chain      string // the chain's ID
	Index      uint64 // index of the last entry
	Hash       string // its hash: the next entry's prev
	Checkpoint uint64 // index of the last checkpoint whose signature verified
	Entries    int64  // entries verified
	Events     int64  // security events raised
	UpdatedAt  time.Time
}

// SecurityEvent is something a person watching the fleet's security should see, in plain words,
// without personal data: something wrong in a kiosk's journal (written by AdvanceJournal, one
// row per event), or a refusal at the hub's doors (written by AddSecurityEvents, counted per
// minute).
type SecurityEvent struct {
	ID       int64
	DeviceID string // "" when no kiosk is known (a TLS refusal, a staff login)
	// Kind is journal.tampered, journal.break, journal.gap, journal.reordered,
	// journal.forged-checkpoint, journal.malformed or journal.restarted from the journal
	// verifier; or one of the refusals hub/security names (login.failed, mqtt.acl-denied,
	// tls.refused, device.revoked, ...).
	Kind     string
	RecordID int64     // the record that showed it (journal events)
	Index    uint64    // the entry's index (0: unknown)
	Detail   string    // the latest occurrence's
	At       time.Time // hub clock; of a counted row, its first occurrence
	Staff    string    // the staff member it concerns (username), or ""
	Source   string    // the client address it came from, or ""
	Count    int64     // occurrences in the row (1 for a journal event)
	Last     time.Time // the last occurrence (At for a single event)
}

// SecurityEventFilter selects security events: of one device, one staff member, one kind (or
// a family: "login" selects login.*), still happening at or after Since, after an ID; the
// oldest first, or the newest first with Newest.
type SecurityEventFilter struct {
	DeviceID string
	Staff    string
	Kind     string
	Since    time.Time
	AfterID  int64
	Newest   bool
	Limit    int // 0: 1000
}

// SecurityEvents keeps the hub's security events of every source in one list: the journal
// verifier's (Journal.AdvanceJournal) and the refusals hub/security counts (logins, the
// broker's ACL and TLS refusals, revocations, staff denied by the API).
type SecurityEvents interface {
	// AddSecurityEvents adds counted events in one transaction: each is merged into the row of
	// its kind, device, staff and source in the minute of its At (Count added, Last moved on,
	// Detail the latest), or opens that row. A flood of refusals is thus one row per key and
	// minute, whatever its rate. ErrInvalid for an event without a kind or a time.
	AddSecurityEvents(ctx context.Context, events []SecurityEvent) error
	// ListSecurityEvents lists security events, oldest first (newest first with f.Newest).
	ListSecurityEvents(ctx context.Context, f SecurityEventFilter) ([]SecurityEvent, error)
	// PruneSecurityEvents deletes the counted rows (never a journal event) last seen before
	// before, and all but the newest keep of them (keep <= 0: no such bound); it returns how
	// many it deleted.
	PruneSecurityEvents(ctx context.Context, before time.Time, keep int) (int64, error)
}

// SecurityMinute is the minute a counted security event is merged into (AddSecurityEvents).
func SecurityMinute(at time.Time) int64 { return at.Truncate(time.Minute).UnixNano() }
