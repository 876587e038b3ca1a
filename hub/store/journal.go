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

// SecurityEvent is something wrong in a kiosk's journal, in plain words, without personal data.
type SecurityEvent struct {
	ID       int64
	DeviceID string
	Kind     string // journal.tampered, journal.break, journal.gap, journal.reordered, journal.forged-checkpoint, journal.malformed, journal.restarted
	RecordID int64  // the record that showed it
	Index    uint64 // the entry's index (0: unknown)
	Detail   string
	At       time.Time // hub clock
}

// SecurityEventFilter selects security events: of one device (or all), after an ID.
type SecurityEventFilter struct {
	DeviceID string
	AfterID  int64
	Limit    int // 0: 1000
}
