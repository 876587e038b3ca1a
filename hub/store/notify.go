package store

import "context"

// Change says what changed in the database, as a Notifier tells it.
type Change struct {
	Kind ChangeKind
	ID   string // the device or client concerned; empty for ChangeSigningKeys
}

// ChangeKind is what a Change is about.
type ChangeKind string

// The changes a Notifier tells, with what the replica holding the device (or every replica)
// does about them.
const (
	ChangeCommand     ChangeKind = "command"      // a command was created for device ID: send pending commands
	ChangeDesired     ChangeKind = "desired"      // device ID's desired state changed: send it
	ChangeRevoked     ChangeKind = "revoked"      // device ID was revoked (or retired): end its session
	ChangeClient      ChangeKind = "client"       // OpenID client ID was changed or deleted: forget a cached copy
	ChangeSigningKeys ChangeKind = "signing-keys" // a signing key was added: reload the keys
)

// Notifier is an optional capability of a Store that several hub replicas share: it tells every
// replica, within moments, what any replica changed that others must act on (found by type
// assertion; the SQLite store, with its single hub, has none). The database stays the truth: a
// replica acts on a change by reading it, and heals what it may have missed by a sweep.
type Notifier interface {
	// Listen calls onChange for each change committed while it listens, in commit order, until
	// ctx ends; then it returns ctx's error. It reconnects by itself when the connection it
	// listens on is lost, waiting between attempts with backoff, and calls onListen each time it
	// (re)starts listening: changes committed while it did not listen are lost, so onListen
	// sweeps. Both callbacks run on Listen's goroutine and should return quickly.
	Listen(ctx context.Context, onListen func(), onChange func(Change)) error
}
