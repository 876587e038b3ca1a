package fleet

import "time"

// DisconnectReason says why a kiosk's session with the hub ended, as the hub saw it.
type DisconnectReason string

// The reasons a session ends.
const (
	// DisconnectClean: the kiosk sent DISCONNECT before closing [MQTT-3.14.4-1] (an agent
	// stopped cleanly).
	DisconnectClean DisconnectReason = "clean"
	// DisconnectKeepAlive: nothing arrived from the kiosk within one and a half keep-alive
	// periods [MQTT-3.1.2-24]: its host or the network between went silent (power lost, a
	// cut that leaves the connection open).
	DisconnectKeepAlive DisconnectReason = "keepalive_timeout"
	// DisconnectNetwork: the connection was closed or reset without DISCONNECT, or a read or
	// write on it failed (a killed agent, whose kernel closes its socket; a reset by a router).
	DisconnectNetwork DisconnectReason = "network_reset"
	// DisconnectRevoked: the hub cut the session because the kiosk was revoked or its
	// certificate superseded.
	DisconnectRevoked DisconnectReason = "revoked"
	// DisconnectReplaced: a newer connection of the same kiosk took the session over
	// [MQTT-3.1.4-3].
	DisconnectReplaced DisconnectReason = "replaced"
	// DisconnectShutdown: the hub (replica) holding the session shut down.
	DisconnectShutdown DisconnectReason = "shutdown"
	// DisconnectProtocol: the kiosk broke the protocol (a malformed or oversized packet, a
	// publish the ACL refuses) and the hub closed the connection [MQTT-4.8.0-1].
	DisconnectProtocol DisconnectReason = "protocol_error"
	// DisconnectHubLost: the hub replica holding the session stopped without seeing it end
	// (killed, its machine lost); recorded when the replica restarts or its lease runs out.
	DisconnectHubLost DisconnectReason = "hub_lost"
)

// DisconnectReasons lists every reason, in the order above.
var DisconnectReasons = [...]DisconnectReason{DisconnectClean, DisconnectKeepAlive, DisconnectNetwork, DisconnectRevoked,
	DisconnectReplaced, DisconnectShutdown, DisconnectProtocol, DisconnectHubLost}

// Session is an ended session of a kiosk with the hub, in its presence history (hub clock).
type Session struct {
	Replica    string           `json:"replica,omitempty"` // the hub replica that held it
	StartedAt  time.Time        `json:"startedAt"`
	EndedAt    time.Time        `json:"endedAt"`
	DurationMs int64            `json:"durationMs"`
	Reason     DisconnectReason `json:"reason"`
	Detail     string           `json:"detail,omitempty"` // the error that ended it, as the hub saw it
}
