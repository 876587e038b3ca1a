package broker

import (
	"errors"
	"os"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/kioskfleet/kioskfleet/pkg/fleet"
)

// SessionChange is a device's session starting (Online) or ending, as Config.OnSession is told.
type SessionChange struct {
	DeviceID string
	Online   bool
	At       time.Time // when it started or ended (hub clock)

	// For an end: when the session started, why it ended, and the error that ended it as the
	// broker saw it ("" for a clean DISCONNECT).
	Since  time.Time
	Reason fleet.DisconnectReason
	Detail string
}

// closeCause is why the broker itself closed a connection.
type closeCause struct {
	reason fleet.DisconnectReason
	err    error
}

// closeFor closes c, noting why (the first reason given wins): the session's end is then told
// with it, not with the read error the close causes in mochi.
func (c *guardConn) closeFor(r fleet.DisconnectReason, err error) {
	c.cause.CompareAndSwap(nil, &closeCause{r, err})
	c.Close()
}

// closedFor returns why the broker closed c, or nil. c may be nil.
func (c *guardConn) closedFor() *closeCause {
	if c == nil {
		return nil
	}
	return c.cause.Load()
}

// endReason says why a session ended, from what mochi v2.7.9 saw and what the broker did. mochi's
// attachClient ends a session when its read loop (Client.Read) returns: with nil after the client
// was stopped, or with the read error, after which it calls Client.Stop(err). The first Stop
// keeps its cause (StopCause):
//
//   - packets.CodeDisconnect: the device sent DISCONNECT (processDisconnect) [MQTT-3.14.4-2];
//   - ErrRevoked: the broker cut the session (cut);
//   - a *Violation: the ACL refused a PUBLISH (OnACLCheck);
//   - packets.ErrSessionTakenOver, packets.ErrServerShuttingDown: mochi's own takeover
//     [MQTT-3.1.4-3] and shutdown (the broker ends both itself first: claim, shutdown);
//   - else the read error: a deadline exceeded is the keep-alive, which mochi sets one and a half
//     keep-alives ahead before each packet [MQTT-3.1.2-24]; a *Violation, the framing guard; a
//     packets.Code, a packet mochi could not decode [MQTT-4.8.0-1]; EOF, a reset and any other
//     error, the network (a device killed: its kernel closes the socket, FIN or RST).
//
// When the broker closed the connection itself (closeFor: a takeover, shutdown, a failed write),
// the read error is only the echo of that close, and the broker's reason stands.
func endReason(stop error, closed *closeCause, readErr error) (fleet.DisconnectReason, error) {
	var v *Violation
	switch {
	case errors.Is(stop, packets.CodeDisconnect):
		return fleet.DisconnectClean, nil
	case errors.Is(stop, ErrRevoked):
		return fleet.DisconnectRevoked, stop
	case closed != nil:
		return closed.reason, closed.err
	case errors.Is(stop, packets.ErrSessionTakenOver):
		return fleet.DisconnectReplaced, stop
	case errors.Is(stop, packets.ErrServerShuttingDown):
		return fleet.DisconnectShutdown, stop
	}
	err := stop
	if err == nil {
		err = readErr
	}
	var code packets.Code
	switch {
	case err == nil:
		// Read returns nil only for a client already stopped, and every Stop of mochi's and the
		// broker's has a cause: not reached, but an ended session needs a reason.
		return fleet.DisconnectNetwork, errors.New("connection closed")
	case errors.As(err, &v):
		return fleet.DisconnectProtocol, err
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fleet.DisconnectKeepAlive, err
	case errors.As(err, &code):
		return fleet.DisconnectProtocol, err
	}
	// EOF, a reset, a broken pipe: the connection ended without DISCONNECT.
	return fleet.DisconnectNetwork, err
}
