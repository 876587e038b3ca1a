package broker

import (
	"errors"
	"net"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/kioskfleet/kioskfleet/pkg/fleet"
)

// One device's sessions go through mochi one at a time.
//
// mochi v2.7.9 keeps a session under its client ID in its clients map and topic trie, and its
// attachClient changes them without holding anything per ID: inheritClientSession looks the ID
// up and ends the existing client, Clients.Add stores the new one, and when a clean session ends
// it unsubscribes and deletes by ID unless it was taken over. Two CONNECTs of one device in
// flight together (an attempt the kiosk gave up on, still processed by the hub, and its next
// one) can both look the ID up before either adds itself, and the one added last, maybe the
// stale one, holds the ID; a session ending late can delete the ID under the next one. The live
// session's subscriptions then resolve to another client or none: every ack to it is lost, a
// deaf session (TestTakeoverRaceLeavesNoDeafSession).
//
// So a CONNECT of a device whose previous connection is still in mochi ends that connection
// [MQTT-3.1.4-3] and waits until mochi is done with it (its attachClient returned, cleanup
// included) before mochi sees the new one; and a CONNECT older, in accept order, than another
// CONNECT of the same device is refused: the kiosk has given up on it.
//
// And a device holds at most one connection past its TLS handshake and not yet admitted to a
// session: a newer one that finishes its handshake closes it. With the session mochi holds, a
// device certificate holds at most two connections, the live one and the one replacing it,
// however many its holder opens (issue 16: one certificate made the hub hold 1,000 half-sent
// CONNECTs).

var (
	errSuperseded = errors.New("a newer connection of the device has connected")
	errTakeover   = errors.New("the device's previous session did not end within the connect timeout")
	errReplaced   = errors.New("a newer connection of the device replaced this one")
	errTookOver   = errors.New("a newer connection of the device took the session over")
)

// handshaken records gc, past its TLS handshake, as its device's connection waiting to be
// admitted, unless a newer one (in accept order) waits already; the older of the two is closed.
func (b *Broker) handshaken(gc *guardConn) {
	b.mu.Lock()
	old := b.waiting[gc.deviceID]
	if old == nil || old.seq < gc.seq {
		b.waiting[gc.deviceID] = gc
	} else {
		old, gc = gc, old
	}
	b.mu.Unlock()
	if old != nil {
		b.reject(ReasonReplaced, errReplaced.Error(), "device", gc.deviceID, "remote", old.RemoteAddr().String())
		old.Close()
	}
}

// admitted is told that gc got its session, or was closed: it waits no more, and gives its
// slot in b.pending back.
func (b *Broker) admitted(gc *guardConn) {
	b.mu.Lock()
	if b.waiting[gc.deviceID] == gc {
		delete(b.waiting, gc.deviceID)
	}
	b.mu.Unlock()
	gc.unpend()
}

// device is the connect state of a device with a connection past CONNECT, in Broker.devices.
type device struct {
	newest uint64        // accept order of the device's newest connection that sent CONNECT
	owner  *guardConn    // the connection mochi holds the device's session for, until it is done
	refs   int           // connections past CONNECT that mochi is not done with
	wake   chan struct{} // closed when owner or newest changes, for claims waiting
}

func (d *device) changed() {
	if d.wake != nil {
		close(d.wake)
		d.wake = nil
	}
}

// connecting records that gc sent a CONNECT for its device.
func (b *Broker) connecting(gc *guardConn) {
	b.mu.Lock()
	defer b.mu.Unlock()
	d := b.devices[gc.deviceID]
	if d == nil {
		d = &device{}
		b.devices[gc.deviceID] = d
	}
	d.refs++
	gc.counted = true
	if gc.seq > d.newest {
		d.newest = gc.seq
		d.changed()
	}
}

// claim makes gc the connection whose session mochi holds for its device, once the previous
// one is ended and mochi is done with it. It fails when a newer connection of the device sent
// a CONNECT meanwhile, or the previous one does not end within the connect timeout.
func (b *Broker) claim(gc *guardConn) error {
	timeout := time.NewTimer(b.cfg.ConnectTimeout)
	defer timeout.Stop()
	b.mu.Lock()
	defer b.mu.Unlock()
	for {
		d := b.devices[gc.deviceID]
		switch {
		case gc.closed.Load():
			return errReplaced
		case gc.seq < d.newest:
			return errSuperseded
		case d.owner == nil:
			d.owner = gc
			return nil
		}
		old := d.owner
		if d.wake == nil {
			d.wake = make(chan struct{})
		}
		wake := d.wake
		b.mu.Unlock()
		old.closeFor(fleet.DisconnectReplaced, errTookOver)
		var err error
		select {
		case <-wake:
		case <-timeout.C:
			err = errTakeover
		case <-b.ctx.Done():
			err = ErrClosed
		}
		b.mu.Lock()
		if err != nil {
			return err
		}
	}
}

// detached is told that mochi is done with gc: its attachClient returned.
func (b *Broker) detached(gc *guardConn) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !gc.counted {
		return
	}
	d := b.devices[gc.deviceID]
	if d.owner == gc {
		d.owner = nil
		d.changed()
	}
	if d.refs--; d.refs == 0 {
		delete(b.devices, gc.deviceID)
	}
}

// mqttListener is mochi's TCP listener, telling the broker when mochi is done with a connection.
type mqttListener struct {
	*listeners.Net
	b *Broker
}

func (l mqttListener) Serve(establish listeners.EstablishFn) {
	l.Net.Serve(func(id string, c net.Conn) error {
		defer l.b.detached(c.(*guardConn)) // listener.Accept returns only guardConns
		return establish(id, c)
	})
}
