package api

import "github.com/kioskfleet/kioskfleet/pkg/wire"

// The bodies a kiosk sends that the hub keeps and shows as they came, in fleet.Device: Health is
// its latest heartbeat and Peripherals its latest peripherals body. They are defined once, in
// pkg/wire, where the agent makes them and the hub checks them; fleetctl and the console read them
// through here.
type (
	Heartbeat       = wire.Heartbeat
	Peripherals     = wire.Peripherals
	Peripheral      = wire.Peripheral
	PeripheralState = wire.PeripheralState
	Consumable      = wire.Consumable
)

// Peripheral states.
const (
	PeripheralOK       = wire.PeripheralOK
	PeripheralDegraded = wire.PeripheralDegraded
	PeripheralFault    = wire.PeripheralFault
	PeripheralUnknown  = wire.PeripheralUnknown
)

// Consumable levels.
const (
	ConsumableOK      = wire.LevelOK
	ConsumableLow     = wire.LevelLow
	ConsumableEmpty   = wire.LevelEmpty
	ConsumableUnknown = wire.LevelUnknown
)

// DecodeHeartbeat decodes a device's Health.
func DecodeHeartbeat(body []byte) (Heartbeat, error) { return wire.DecodeHeartbeat(body) }

// DecodePeripherals decodes a device's Peripherals.
func DecodePeripherals(body []byte) (Peripherals, error) { return wire.DecodePeripherals(body) }
