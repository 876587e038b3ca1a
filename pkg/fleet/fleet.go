// Package fleet holds the domain types of a kiosk fleet — sites, devices, records, commands and
// versioned state documents — as the hub's HTTP API shows them. The hub keeps its own record
// types (hub/store) and converts.
package fleet

import (
	"encoding/json"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// Site is a service hall or other place where kiosks stand.
type Site struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Region  string `json:"region"` // GB/T 2260 administrative division code, six digits
	Address string `json:"address,omitempty"`
}

// Device is an enrolled kiosk.
type Device struct {
	ID         string    `json:"id"`
	SiteID     string    `json:"siteId"`
	Region     string    `json:"region"` // copied from the site at enrollment
	Model      string    `json:"model,omitempty"`
	CertSerial string    `json:"certSerial"` // hex serial of the current client certificate
	CertExpiry time.Time `json:"certExpiry"`
	EnrolledAt time.Time `json:"enrolledAt"`
	Revoked    bool      `json:"revoked"`
	RevokedAt  time.Time `json:"revokedAt,omitzero"`
	RetiredAt  time.Time `json:"retiredAt,omitzero"` // taken out of service for good

	// Presence as seen by the hub (hub clock).
	Online       bool      `json:"online"`
	Replica      string    `json:"replica,omitempty"`   // the hub replica holding (or that last held) its session
	PresenceAt   time.Time `json:"presenceAt,omitzero"` // when Online last changed
	LastSeen     time.Time `json:"lastSeen,omitzero"`   // last message of any kind
	AgentVersion string    `json:"agentVersion,omitempty"`

	// Latest health and peripheral status, from heartbeat and peripherals records.
	Health      json.RawMessage `json:"health,omitempty"`
	HealthAt    time.Time       `json:"healthAt,omitzero"`
	Peripherals json.RawMessage `json:"peripherals,omitempty"`
	PeriphAt    time.Time       `json:"peripheralsAt,omitzero"`
}

// Record is an uplink record as stored by the hub.
type Record struct {
	ID       int64           `json:"id"` // hub-wide insertion order
	DeviceID string          `json:"deviceId"`
	Epoch    string          `json:"epoch"`
	Seq      uint64          `json:"seq"`
	Kind     string          `json:"kind"`
	Class    wire.Class      `json:"class"`
	DeviceTS time.Time       `json:"deviceTs"`
	RecvTS   time.Time       `json:"recvTs"` // hub clock
	Body     json.RawMessage `json:"body"`
}

// Command is a command to a device and its life cycle.
type Command struct {
	ID          string            `json:"id"`
	DeviceID    string            `json:"deviceId"`
	Name        string            `json:"name"`
	Args        json.RawMessage   `json:"args,omitempty"`
	State       wire.CommandState `json:"state"`
	CreatedAt   time.Time         `json:"createdAt"`
	ExpiresAt   time.Time         `json:"expiresAt"`
	DeliveredAt time.Time         `json:"deliveredAt,omitzero"`
	UpdatedAt   time.Time         `json:"updatedAt"`
	Output      json.RawMessage   `json:"output,omitempty"`
	Error       string            `json:"error,omitempty"`
}

// DocState is a versioned configuration document (desired or reported).
type DocState struct {
	DeviceID  string          `json:"deviceId"`
	Version   int64           `json:"version"`
	Doc       json.RawMessage `json:"doc"`
	Error     string          `json:"error,omitempty"`
	UpdatedAt time.Time       `json:"updatedAt"`
}
