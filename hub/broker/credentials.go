package broker

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"sync"

	"github.com/kioskfleet/kioskfleet/hub/ca"
)

// Credential is what the hub's registry says of a device's certificate.
type Credential struct {
	DeviceID string
	Serial   string // the device's current certificate (ca.Serial)
	Revoked  bool
}

// Check returns why a session of the device with the certificate of serial is refused (the
// device is revoked, or serial is not its current certificate), or nil. Serials compare without
// regard to the case of their hex digits.
func (c Credential) Check(serial string) error {
	switch {
	case c.Revoked:
		return fmt.Errorf("device %s is revoked", c.DeviceID)
	case !strings.EqualFold(c.Serial, serial):
		return fmt.Errorf("device %s: certificate %s is not its current one", c.DeviceID, serial)
	}
	return nil
}

// credentials is the broker's view of every device's Credential, loaded through
// Config.Credentials every RecheckInterval and after Disconnect. The recheck loop judges live
// sessions by it, and the TLS handshake refuses by it what it can refuse for sure from a view
// that may lag the registry by a recheck interval: a revoked device (revocation is for good) and
// a certificate the view has seen replaced. A device enrolled since the last load is not in the
// view yet, nor is a certificate issued since: those are left to Authorize at CONNECT.
type credentials struct {
	mu       sync.RWMutex
	devices  map[string]Credential
	replaced map[string]bool // lowercase serials that were a device's current one before another
}

// set replaces the view with all.
func (v *credentials) set(all []Credential) {
	devices := make(map[string]Credential, len(all))
	for _, c := range all {
		c.Serial = strings.ToLower(c.Serial)
		devices[c.DeviceID] = c
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.replaced == nil {
		v.replaced = map[string]bool{}
	}
	for id, old := range v.devices {
		if c, ok := devices[id]; ok && c.Serial != old.Serial {
			v.replaced[old.Serial] = true
		}
	}
	v.devices = devices
}

// check judges a live session: its device must be known, not revoked, and serial its current
// certificate.
func (v *credentials) check(id, serial string) error {
	v.mu.RLock()
	defer v.mu.RUnlock()
	c, known := v.devices[id]
	if !known {
		return fmt.Errorf("device %s is not registered", id)
	}
	return c.Check(serial)
}

// verifyConnection is the broker's tls.Config.VerifyConnection: it refuses, during the handshake
// and before any MQTT byte, the certificate of a revoked device or one that was replaced. It runs
// for resumed sessions too (the ticket holds the certificate).
func (b *Broker) verifyConnection(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return nil // RequireAndVerifyClientCert refuses it
	}
	cert := cs.PeerCertificates[0]
	id, err := ca.DeviceIDFromCert(cert)
	if err != nil {
		return err
	}
	serial := strings.ToLower(ca.Serial(cert))
	v := &b.creds
	v.mu.RLock()
	defer v.mu.RUnlock()
	switch c, known := v.devices[id]; {
	case known && c.Revoked:
		return violation(ReasonCertRefused, "device %s is revoked", id)
	case v.replaced[serial]:
		return violation(ReasonCertRefused, "certificate %s of device %s was replaced", serial, id)
	}
	return nil
}

// refresh loads the credentials and judges every live session by them; without
// Config.Credentials it calls Authorize for each. It also ends sessions whose connection closed
// without mochi's OnDisconnect (mochi skips it when writing CONNACK fails).
func (b *Broker) refresh() {
	b.mu.Lock()
	live := make(map[string]*session, len(b.sessions))
	for id, s := range b.sessions {
		live[id] = s
	}
	b.mu.Unlock()
	judge := b.authorize
	if b.cfg.Credentials != nil {
		ctx, cancel := context.WithTimeout(b.ctx, b.cfg.AuthorizeTimeout)
		all, err := b.cfg.Credentials(ctx)
		cancel()
		if err != nil {
			b.log.Warn("credentials not loaded: re-authorization skipped this round", "err", err)
			return
		}
		b.creds.set(all)
		judge = b.creds.check
	}
	for id, s := range live {
		if b.ctx.Err() != nil {
			return
		}
		if s.cl.Closed() {
			b.sessionEnded(s.cl, nil)
			continue
		}
		if err := judge(id, s.serial); err != nil {
			b.cut(id, s.cl, fmt.Sprintf("re-authorization refused: %v", err))
		}
	}
}
