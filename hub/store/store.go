// Package store defines the hub's storage: the Store interface every backend implements, its
// types and its sentinel errors. Backends live in subpackages (sqlite, later postgres) and all run
// the same conformance suite in storetest.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/fleet"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

var (
	ErrNotFound      = errors.New("store: not found")
	ErrExists        = errors.New("store: already exists")
	ErrTokenUsed     = errors.New("store: enrollment token already used")
	ErrTokenExpired  = errors.New("store: enrollment token expired")
	ErrBadTransition = errors.New("store: command state transition not allowed")
	ErrInvalid       = errors.New("store: invalid value")
)

// Domain types shared with the HTTP API live in pkg/fleet.
type (
	Site     = fleet.Site
	Device   = fleet.Device
	Record   = fleet.Record
	Command  = fleet.Command
	DocState = fleet.DocState
)

// PresenceUpdate is a presence change seen by the hub (hub clock).
type PresenceUpdate struct {
	DeviceID     string
	Online       bool
	AgentVersion string
	At           time.Time
}

// DeviceCredential is a device's current certificate serial (lowercase hex) and whether it is
// revoked.
type DeviceCredential struct {
	ID         string
	CertSerial string
	Revoked    bool
}

// DeviceFilter selects devices; zero fields match everything.
type DeviceFilter struct {
	SiteID string
	Region string // prefix match: "44" is Guangdong, "4403" Shenzhen
	Online *bool
}

// EnrollmentToken is a one-time, expiring permission to enroll one kiosk at a site. Only the
// SHA-256 hash of the secret is stored.
type EnrollmentToken struct {
	ID        string    `json:"id"`
	Hash      []byte    `json:"-"`
	SiteID    string    `json:"siteId"`
	CreatedAt time.Time `json:"createdAt"`
	ExpiresAt time.Time `json:"expiresAt"`
	UsedAt    time.Time `json:"usedAt,omitzero"`
	DeviceID  string    `json:"deviceId,omitempty"` // set when used
}

// RecordFilter selects records. Only records of the contiguous prefix of each epoch are listed
// (records parked beyond a gap appear once it is filled). Without DeviceID, records come in
// hub-wide insertion (ID) order; with DeviceID, in (epoch first seen, seq) order, and AfterID is
// the ID of the last record of the previous page.
type RecordFilter struct {
	DeviceID string
	Kind     string
	AfterID  int64
	Limit    int // 0: backend default (1000)
}

// Effect is a change to device state that a record carries. A backend applies a record's effect in
// the same transaction that first stores the record, and never for a duplicate.
type Effect struct {
	Command     *wire.CommandResult
	Reported    *wire.Reported
	Health      json.RawMessage // heartbeat body
	Peripherals json.RawMessage // peripherals body
}

// IncomingRecord is a record to commit, with the effect decoded from its body.
type IncomingRecord struct {
	wire.Record
	Effect Effect
}

// Batch is one decoded uplink batch to commit.
type Batch struct {
	DeviceID string
	Epoch    string
	RecvTS   time.Time
	Records  []IncomingRecord
}

// Watermark is the highest contiguous sequence committed for a device and epoch: every record
// 1..UpTo is durable, and UpTo+1 is not. It is what the hub acks.
type Watermark struct {
	DeviceID string
	Epoch    string
	UpTo     uint64
}

// Store is the hub's storage. All methods are safe for concurrent use.
type Store interface {
	// Sites and devices.
	CreateSite(ctx context.Context, s Site) error
	GetSite(ctx context.Context, id string) (Site, error)
	ListSites(ctx context.Context) ([]Site, error)

	// CreateEnrollmentToken stores a new token (ErrExists on a duplicate ID or hash).
	CreateEnrollmentToken(ctx context.Context, t EnrollmentToken) error
	// EnrollDevice atomically redeems the token with the given hash and creates the device:
	// ErrNotFound for an unknown hash, ErrTokenUsed, ErrTokenExpired (at now).
	EnrollDevice(ctx context.Context, tokenHash []byte, d Device, now time.Time) (Device, error)
	GetDevice(ctx context.Context, id string) (Device, error)
	ListDevices(ctx context.Context, f DeviceFilter) ([]Device, error)
	// DeviceCredentials lists every device's current certificate serial and revocation, in ID
	// order: what the broker's periodic re-authorization of live sessions needs, without the
	// rest of each device.
	DeviceCredentials(ctx context.Context) ([]DeviceCredential, error)
	// RenewCertificate records a new certificate for a device.
	RenewCertificate(ctx context.Context, id, serial string, expiry time.Time, certPEM []byte) error
	RevokeDevice(ctx context.Context, id string, at time.Time) error
	// SetPresence records a presence change (hub clock) and, when online, the agent version.
	SetPresence(ctx context.Context, id string, online bool, agentVersion string, at time.Time) error
	// SetPresences records many presence changes in one transaction, in order, with the same
	// rules as SetPresence; unknown devices are skipped. The hub batches presence this way so that
	// a fleet reconnecting at once costs a few commits, not one per kiosk.
	SetPresences(ctx context.Context, us []PresenceUpdate) error

	// CommitBatches commits all batches in one transaction: each record is inserted unless
	// (device, epoch, seq) exists already, the effects of newly inserted records are applied, and
	// the contiguous watermark of every touched (device, epoch) is returned, in input order of
	// first appearance. Each batch's device's last-seen advances to the batch's RecvTS. Nothing is
	// visible until all of it is durable.
	CommitBatches(ctx context.Context, batches []Batch) ([]Watermark, error)
	// Watermark returns the contiguous watermark of a device and epoch (0 if none).
	Watermark(ctx context.Context, deviceID, epoch string) (uint64, error)
	ListRecords(ctx context.Context, f RecordFilter) ([]Record, error)

	// Commands. CreateCommand stores a new command in state queued.
	CreateCommand(ctx context.Context, c Command) error
	GetCommand(ctx context.Context, id string) (Command, error)
	// ListCommands returns a device's latest commands, newest first (limit 0: backend default).
	ListCommands(ctx context.Context, deviceID string, limit int) ([]Command, error)
	// PendingCommands returns the device's commands that are queued or delivered and not expired
	// at now, oldest first: what must be (re)sent when the device connects.
	PendingCommands(ctx context.Context, deviceID string, now time.Time) ([]Command, error)
	// MarkDelivered moves queued commands to delivered (others are left alone).
	MarkDelivered(ctx context.Context, ids []string, at time.Time) error
	// ExpireCommands moves every queued or delivered command whose expiry is <= now to expired
	// and returns them.
	ExpireCommands(ctx context.Context, now time.Time) ([]Command, error)

	// Desired and reported state. SetDesired stores a new desired document with the next version
	// (1 for the first; ErrNotFound for an unknown device). GetDesired and GetReported return
	// ErrNotFound while the device has no such document.
	SetDesired(ctx context.Context, deviceID string, doc json.RawMessage, at time.Time) (DocState, error)
	GetDesired(ctx context.Context, deviceID string) (DocState, error)
	GetReported(ctx context.Context, deviceID string) (DocState, error)

	// Ping checks cheaply that the backend answers (health endpoints).
	Ping(ctx context.Context) error
	// Check runs the backend's full integrity check (slow on a large database: start-up and ops).
	Check(ctx context.Context) error
	Close() error
}

// CommandTransitionAllowed reports whether a command may move from one state to another. The life
// cycle is queued -> delivered -> accepted -> succeeded | failed; queued or delivered -> expired.
// An agent may report a later state directly (a result may arrive before its acceptance is seen).
// An agent may also report expired for a command it received too late.
func CommandTransitionAllowed(from, to wire.CommandState) bool {
	if from.Terminal() || from == to {
		return false
	}
	rank := map[wire.CommandState]int{wire.CmdQueued: 0, wire.CmdDelivered: 1, wire.CmdAccepted: 2}
	switch to {
	case wire.CmdDelivered, wire.CmdAccepted:
		return rank[to] > rank[from]
	case wire.CmdSucceeded, wire.CmdFailed:
		return true
	case wire.CmdExpired:
		return from == wire.CmdQueued || from == wire.CmdDelivered
	}
	return false
}
