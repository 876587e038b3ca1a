// Package sqlrow is the row encoding the hub's SQL stores share (hub/store/sqlite and
// hub/store/postgres keep the same tables, each in its own dialect): times as Unix nanoseconds, 0
// for none, and the columns of a device and of a command, with how to scan them from a row of
// either driver.
package sqlrow

import (
	"fmt"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// Scanner is a row: *sql.Row, *sql.Rows, pgx.Row, pgx.Rows.
type Scanner interface{ Scan(dest ...any) error }

// Nanos converts a time to the stored Unix nanoseconds, 0 for the zero time.
func Nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// Time is the inverse of Nanos; times come back in UTC.
func Time(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// DeviceCols are the columns of devices that Device scans.
const DeviceCols = `id, site_id, region, model, cert_serial, cert_expiry, cert_pem, enrolled_at, revoked_at,
	retired_at, online, replica, presence_at, last_seen, agent_version, health, health_at, periph, periph_at`

// Device scans a row of DeviceCols.
func Device(sc Scanner) (store.Device, error) {
	var d store.Device
	var certExp, enrolled, revoked, retired, presence, lastSeen, healthAt, periphAt int64
	var health, periph []byte
	err := sc.Scan(&d.ID, &d.SiteID, &d.Region, &d.Model, &d.CertSerial, &certExp, &d.CertPEM, &enrolled, &revoked,
		&retired, &d.Online, &d.Replica, &presence, &lastSeen, &d.AgentVersion, &health, &healthAt, &periph, &periphAt)
	d.Health, d.Peripherals = health, periph
	d.CertExpiry, d.EnrolledAt, d.RevokedAt = Time(certExp), Time(enrolled), Time(revoked)
	d.Revoked, d.RetiredAt = revoked != 0, Time(retired)
	d.PresenceAt, d.LastSeen, d.HealthAt, d.PeriphAt = Time(presence), Time(lastSeen), Time(healthAt), Time(periphAt)
	return d, err
}

// CommandCols are the columns of commands that Command scans.
const CommandCols = `id, device_id, name, args, state, created_at, expires_at, delivered_at, updated_at, output, error`

// Command scans a row of CommandCols.
func Command(sc Scanner) (store.Command, error) {
	var c store.Command
	var state string
	var created, expires, delivered, updated int64
	var args, output []byte
	err := sc.Scan(&c.ID, &c.DeviceID, &c.Name, &args, &state, &created, &expires, &delivered, &updated, &output, &c.Error)
	c.State = wire.CommandState(state)
	c.Args, c.Output = args, output
	c.CreatedAt, c.ExpiresAt, c.DeliveredAt, c.UpdatedAt = Time(created), Time(expires), Time(delivered), Time(updated)
	return c, err
}

// JournalHeadCols are the columns of journal_heads that JournalHead scans.
const JournalHeadCols = `device_id, last_record, epoch, chain, idx, hash, checkpoint, entries, events, updated_at`

// JournalHead scans a row of JournalHeadCols.
func JournalHead(sc Scanner) (store.JournalHead, error) {
	var h store.JournalHead
	var updated int64
	err := sc.Scan(&h.DeviceID, &h.Cursor, &h.Epoch, &h.Chain, &h.Index, &h.Hash, &h.Checkpoint, &h.Entries, &h.Events, &updated)
	h.UpdatedAt = Time(updated)
	return h, err
}

// JournalHeadArgs are h's values in the order of JournalHeadCols.
func JournalHeadArgs(h store.JournalHead) []any {
	return []any{h.DeviceID, h.Cursor, h.Epoch, h.Chain, int64(h.Index), h.Hash, int64(h.Checkpoint), h.Entries, h.Events, Nanos(h.UpdatedAt)}
}

// SecurityEventCols are the columns of security_events that SecurityEvent scans.
const SecurityEventCols = `id, device_id, kind, record_id, idx, detail, at`

// SecurityEvent scans a row of SecurityEventCols.
func SecurityEvent(sc Scanner) (store.SecurityEvent, error) {
	var e store.SecurityEvent
	var at int64
	err := sc.Scan(&e.ID, &e.DeviceID, &e.Kind, &e.RecordID, &e.Index, &e.Detail, &at)
	e.At = Time(at)
	return e, err
}

// CheckJournal reports what AdvanceJournal must refuse (store.ErrInvalid).
func CheckJournal(h store.JournalHead, events []store.SecurityEvent) error {
	if h.DeviceID == "" || h.Cursor <= 0 {
		return fmt.Errorf("%w: journal head needs a device and a cursor", store.ErrInvalid)
	}
	for _, e := range events {
		if e.Kind == "" {
			return fmt.Errorf("%w: security event without a kind", store.ErrInvalid)
		}
	}
	return nil
}
