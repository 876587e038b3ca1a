package store

import (
	"context"
	"errors"
	"time"
)

// ErrMismatch marks a pinned value that differs from the one given (PinFingerprint).
var ErrMismatch = errors.New("store: differs from the pinned value")

// Replicas keeps what hub replicas sharing one database need to agree on: who holds each
// device's session, and the secrets all of them must be given.
//
// Presence across replicas works by leases. A replica records each session it holds (a presence
// update names the replica, see PresenceUpdate) and renews one lease for all of them; when a
// replica dies (kill -9, a lost machine) and its lease runs out, any replica's sweep marks its
// devices offline (ExpireLeases). A lease per replica costs one write per renewal however many
// kiosks the replica holds. A lone hub on SQLite is a cluster of one: the same calls, the same
// meaning.
type Replicas interface {
	// RenewLease extends replica's lease to until, noting now as its last renewal. lapsed is true
	// when the replica had no lease (its first renewal, or a sweep expired the lease meanwhile and
	// marked its devices offline): the replica then reports its live sessions online again.
	RenewLease(ctx context.Context, replica string, now, until time.Time) (lapsed bool, err error)
	// ExpireLeases drops every lease that ended before now and marks offline every online device
	// whose replica holds no lease (also devices of a replica that never had one, as written
	// before leases existed). A device's PresenceAt becomes the last renewal of its replica's
	// lease, when later than its own: the last time its replica vouched for the session. It
	// returns the devices marked offline, by ID.
	ExpireLeases(ctx context.Context, now time.Time) ([]string, error)
	// ReleaseReplica drops replica's lease and marks its devices offline at at: a replica does
	// it when it starts, since a new process holds no session yet. It returns the devices
	// marked offline, by ID.
	ReleaseReplica(ctx context.Context, replica string, at time.Time) ([]string, error)

	// PinFingerprint stores fp under name unless a value is pinned there already; it returns
	// an error wrapping ErrMismatch when the pinned value is another. Replicas pin a digest of
	// each secret they must share (the device CA, the identity secret), so that one given other
	// secrets is refused at start instead of issuing certificates and tokens the others reject.
	PinFingerprint(ctx context.Context, name string, fp []byte) error
}
