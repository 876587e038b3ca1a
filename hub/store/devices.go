package store

import (
	"context"
	"encoding/json"
	"time"
)

// Devices keeps sites, enrollment tokens and the devices enrolled with them.
type Devices interface {
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
	// RetireDevices takes out of service, in one transaction, every device in service that f
	// selects (f.Retired is ignored): each is revoked (keeping an earlier revocation time), marked
	// offline at at, and listed from then on only when a filter asks for retired devices. Its
	// records stay. It returns the IDs retired, in ID order; a retired device never comes back.
	RetireDevices(ctx context.Context, f DeviceFilter, at time.Time) ([]string, error)
}

// Site is a service hall or other place where kiosks stand.
type Site struct {
	ID      string
	Name    string
	Region  string // GB/T 2260 administrative division code, six digits
	Address string
}

// Device is an enrolled kiosk.
type Device struct {
	ID         string
	SiteID     string
	Region     string // copied from the site at enrollment
	Model      string
	CertSerial string // hex serial of the current client certificate
	CertExpiry time.Time
	CertPEM    []byte // current client certificate; its key signs kiosk assertions
	EnrolledAt time.Time
	Revoked    bool
	RevokedAt  time.Time
	RetiredAt  time.Time // zero while in service

	// Presence as seen by the hub (hub clock), kept by Presence.
	Online       bool
	Replica      string    // the hub replica holding (or that last held) its session
	PresenceAt   time.Time // when Online last changed
	LastSeen     time.Time // last message of any kind
	AgentVersion string

	// Latest health and peripheral status, from heartbeat and peripherals records.
	Health      json.RawMessage
	HealthAt    time.Time
	Peripherals json.RawMessage
	PeriphAt    time.Time
}

// DeviceCredential is a device's current certificate serial (lowercase hex) and whether it is
// revoked.
type DeviceCredential struct {
	ID         string
	CertSerial string
	Revoked    bool
}

// DeviceFilter selects devices; zero fields match everything in service.
type DeviceFilter struct {
	IDs    []string // only these devices
	SiteID string
	Region string // prefix match: "44" is Guangdong, "4403" Shenzhen
	Model  string
	Online *bool
	// SeenBefore, when set, selects devices offline and not heard from since that time (a
	// device never heard from at all counts as unseen since it enrolled).
	SeenBefore time.Time
	// Retired selects the retired devices instead of those in service.
	Retired bool
}

// EnrollmentToken is a one-time, expiring permission to enroll one kiosk at a site. Only the
// SHA-256 hash of the secret is stored.
type EnrollmentToken struct {
	ID        string
	Hash      []byte
	SiteID    string
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    time.Time
	DeviceID  string // set when used
}
