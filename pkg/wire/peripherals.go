package wire

import "unicode/utf8"

// Peripherals is the body of a peripherals record: the kiosk's whole peripheral inventory with
// each device's status. The agent's device manager (agent/devices) sends one whenever a status
// changes and every few minutes; the hub keeps the latest per kiosk and its HTTP API shows it
// (fleet.Device.Peripherals), where fleetctl and the console read it with DecodePeripherals.
type Peripherals struct {
	Devices []Peripheral `json:"devices"`
}

// Peripheral is one device of a Peripherals body.
type Peripheral struct {
	ID           string          `json:"id"`    // local name from the kiosk's device configuration
	Class        string          `json:"class"` // id-reader, receipt-printer, document-printer, qr-scanner, document-scanner
	Manufacturer string          `json:"manufacturer,omitempty"`
	Model        string          `json:"model,omitempty"`
	Profile      string          `json:"profile,omitempty"` // firmware profile ID
	Connected    bool            `json:"connected"`
	Status       PeripheralState `json:"status"`
	Reasons      []string        `json:"reasons,omitempty"` // paper-out, cover-open, disconnected, ...
	Consumables  []Consumable    `json:"consumables,omitempty"`
	Since        int64           `json:"since"`           // device clock, Unix ms: when Status or Reasons last changed
	Error        string          `json:"error,omitempty"` // last open or status error, if any
}

// PeripheralState is a peripheral's overall condition.
type PeripheralState string

// Peripheral states. Unknown is only seen before the agent's first open attempt has finished.
const (
	PeripheralOK       PeripheralState = "ok"
	PeripheralDegraded PeripheralState = "degraded" // works, but needs attention soon (paper near end)
	PeripheralFault    PeripheralState = "fault"    // cannot serve citizens (paper out, cover open, unplugged)
	PeripheralUnknown  PeripheralState = "unknown"
)

// Consumable is paper, toner, ribbon...: Level is one of the Level constants.
type Consumable struct {
	Name  string `json:"name"`
	Level string `json:"level"`
}

// Consumable levels.
const (
	LevelOK      = "ok"
	LevelLow     = "low"
	LevelEmpty   = "empty"
	LevelUnknown = "unknown"
)

// Limits of a Peripherals body beyond MaxRecordBytes.
const (
	MaxPeripherals = 64  // devices in one body
	MaxNameLen     = 128 // an ID, class, reason, consumable name or level
)

// DecodePeripherals decodes and validates the body of a peripherals record. Unknown fields are
// refused, as in every body of this package: a kiosk that sends something else is told so (the
// hub counts it) rather than shown half-read.
func DecodePeripherals(body []byte) (Peripherals, error) {
	var m Peripherals
	if len(body) > MaxRecordBytes {
		return Peripherals{}, malformed("peripherals: body of %d bytes > %d", len(body), MaxRecordBytes)
	}
	if err := strictBody(body, &m); err != nil {
		return Peripherals{}, err
	}
	if !isObject(body) {
		return Peripherals{}, malformed("peripherals: body must be a JSON object")
	}
	if len(m.Devices) > MaxPeripherals {
		return Peripherals{}, malformed("peripherals: %d devices, want at most %d", len(m.Devices), MaxPeripherals)
	}
	for i, d := range m.Devices {
		if !name(d.ID) || !name(d.Class) {
			return Peripherals{}, malformed("peripherals: device %d: id and class must be 1..%d bytes of UTF-8", i, MaxNameLen)
		}
		switch d.Status {
		case PeripheralOK, PeripheralDegraded, PeripheralFault, PeripheralUnknown:
		default:
			return Peripherals{}, malformed("peripherals: device %s: status %q is not ok, degraded, fault or unknown", d.ID, d.Status)
		}
		for _, r := range d.Reasons {
			if !name(r) {
				return Peripherals{}, malformed("peripherals: device %s: a reason must be 1..%d bytes of UTF-8", d.ID, MaxNameLen)
			}
		}
		for _, c := range d.Consumables {
			if !name(c.Name) {
				return Peripherals{}, malformed("peripherals: device %s: a consumable name must be 1..%d bytes of UTF-8", d.ID, MaxNameLen)
			}
			switch c.Level {
			case LevelOK, LevelLow, LevelEmpty, LevelUnknown:
			default:
				return Peripherals{}, malformed("peripherals: device %s: consumable %s: level %q is not ok, low, empty or unknown", d.ID, c.Name, c.Level)
			}
		}
		if d.Since < 0 {
			return Peripherals{}, malformed("peripherals: device %s: since %d is negative", d.ID, d.Since)
		}
	}
	return m, nil
}

// name reports whether s is a valid short name: 1..MaxNameLen bytes of UTF-8.
func name(s string) bool { return s != "" && len(s) <= MaxNameLen && utf8.ValidString(s) }
