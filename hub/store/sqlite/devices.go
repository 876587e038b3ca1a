package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/internal/sqlrow"
)

// CreateSite stores a new site.
func (s *Store) CreateSite(ctx context.Context, st store.Site) error {
	if st.ID == "" {
		return invalid("site without an id")
	}
	_, err := s.db.W.ExecContext(ctx, `INSERT INTO sites (id, name, region, address) VALUES (?, ?, ?, ?)`,
		st.ID, st.Name, st.Region, st.Address)
	if err != nil {
		return exists(err, "site", st.ID)
	}
	return nil
}

// GetSite returns a site.
func (s *Store) GetSite(ctx context.Context, id string) (store.Site, error) {
	var st store.Site
	err := s.db.R.QueryRowContext(ctx, `SELECT id, name, region, address FROM sites WHERE id = ?`, id).
		Scan(&st.ID, &st.Name, &st.Region, &st.Address)
	if err != nil {
		return store.Site{}, notFound(err, "site", id)
	}
	return st, nil
}

// ListSites returns all sites by id.
func (s *Store) ListSites(ctx context.Context) ([]store.Site, error) {
	rows, err := s.db.R.QueryContext(ctx, `SELECT id, name, region, address FROM sites ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("store: list sites: %w", err)
	}
	defer rows.Close()
	var out []store.Site
	for rows.Next() {
		var st store.Site
		if err := rows.Scan(&st.ID, &st.Name, &st.Region, &st.Address); err != nil {
			return nil, fmt.Errorf("store: list sites: %w", err)
		}
		out = append(out, st)
	}
	return out, rows.Err()
}

// CreateEnrollmentToken stores a new token.
func (s *Store) CreateEnrollmentToken(ctx context.Context, t store.EnrollmentToken) error {
	if t.ID == "" || len(t.Hash) == 0 || t.SiteID == "" || t.ExpiresAt.IsZero() {
		return invalid("enrollment token needs an id, a hash, a site and an expiry")
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM sites WHERE id = ?`, t.SiteID).Scan(&one); err != nil {
			return notFound(err, "site", t.SiteID)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO enrollment_tokens (id, hash, site_id, created_at, expires_at)
			VALUES (?, ?, ?, ?, ?)`, t.ID, t.Hash, t.SiteID, ts(t.CreatedAt), ts(t.ExpiresAt))
		if err != nil {
			return exists(err, "enrollment token", t.ID)
		}
		return nil
	})
	return err
}

// EnrollDevice redeems a token and creates the device in one transaction. The device gets the
// token's site, that site's region and, if d.EnrolledAt is zero, now as its enrollment time.
func (s *Store) EnrollDevice(ctx context.Context, tokenHash []byte, d store.Device, now time.Time) (store.Device, error) {
	if d.ID == "" {
		return store.Device{}, invalid("device without an id")
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var id, siteID string
		var expires, used int64
		err := tx.QueryRowContext(ctx, `SELECT id, site_id, expires_at, used_at FROM enrollment_tokens WHERE hash = ?`,
			tokenHash).Scan(&id, &siteID, &expires, &used)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: enrollment token", store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("store: enroll: %w", err)
		}
		if used != 0 {
			return fmt.Errorf("%w: token %s", store.ErrTokenUsed, id)
		}
		if ts(now) >= expires {
			return fmt.Errorf("%w: token %s expired at %s", store.ErrTokenExpired, id, fromTS(expires).Format(time.RFC3339))
		}
		if err := tx.QueryRowContext(ctx, `SELECT region FROM sites WHERE id = ?`, siteID).Scan(&d.Region); err != nil {
			return notFound(err, "site", siteID)
		}
		d.SiteID = siteID
		if d.EnrolledAt.IsZero() {
			d.EnrolledAt = now
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO devices (id, site_id, region, model, cert_serial, cert_expiry, cert_pem, enrolled_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			d.ID, d.SiteID, d.Region, d.Model, d.CertSerial, ts(d.CertExpiry), orNull(d.CertPEM), ts(d.EnrolledAt))
		if err != nil {
			return exists(err, "device", d.ID)
		}
		_, err = tx.ExecContext(ctx, `UPDATE enrollment_tokens SET used_at = ?, device_id = ? WHERE id = ?`, ts(now), d.ID, id)
		return err
	})
	if err != nil {
		return store.Device{}, err
	}
	return s.GetDevice(ctx, d.ID)
}

// GetDevice returns a device.
func (s *Store) GetDevice(ctx context.Context, id string) (store.Device, error) {
	d, err := sqlrow.Device(s.db.R.QueryRowContext(ctx, `SELECT `+sqlrow.DeviceCols+` FROM devices WHERE id = ?`, id))
	if err != nil {
		return store.Device{}, notFound(err, "device", id)
	}
	return d, nil
}

// DeviceCredentials lists every device's certificate serial and revocation.
func (s *Store) DeviceCredentials(ctx context.Context) ([]store.DeviceCredential, error) {
	rows, err := s.db.R.QueryContext(ctx, `SELECT id, cert_serial, revoked_at != 0 FROM devices ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("store: device credentials: %w", err)
	}
	defer rows.Close()
	var out []store.DeviceCredential
	for rows.Next() {
		var c store.DeviceCredential
		if err := rows.Scan(&c.ID, &c.CertSerial, &c.Revoked); err != nil {
			return nil, fmt.Errorf("store: device credentials: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// ListDevices returns the devices matching f, by id.
func (s *Store) ListDevices(ctx context.Context, f store.DeviceFilter) ([]store.Device, error) {
	where, args := deviceWhere(f)
	rows, err := s.db.R.QueryContext(ctx, `SELECT `+sqlrow.DeviceCols+` FROM devices WHERE `+where+` ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list devices: %w", err)
	}
	defer rows.Close()
	var out []store.Device
	for rows.Next() {
		d, err := sqlrow.Device(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list devices: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// deviceWhere is the WHERE clause (never empty) and its arguments that select f's devices.
func deviceWhere(f store.DeviceFilter) (string, []any) {
	where, args := []string{"retired_at = 0"}, []any{}
	if f.Retired {
		where[0] = "retired_at != 0"
	}
	if len(f.IDs) > 0 {
		where = append(where, "id IN (SELECT value FROM json_each(?))")
		args = append(args, jsonArg(f.IDs))
	}
	if f.SiteID != "" {
		where, args = append(where, "site_id = ?"), append(args, f.SiteID)
	}
	if f.Region != "" {
		where, args = append(where, "substr(region, 1, ?) = ?"), append(args, len(f.Region), f.Region)
	}
	if len(f.Scope) > 0 {
		ors := make([]string, len(f.Scope))
		for i, p := range f.Scope {
			ors[i] = "substr(region, 1, ?) = ?"
			args = append(args, len(p), p)
		}
		where = append(where, "("+strings.Join(ors, " OR ")+")")
	}
	if f.Model != "" {
		where, args = append(where, "model = ?"), append(args, f.Model)
	}
	if f.Online != nil {
		where, args = append(where, "online = ?"), append(args, *f.Online)
	}
	if !f.SeenBefore.IsZero() {
		where = append(where, "online = 0 AND max(last_seen, enrolled_at) < ?")
		args = append(args, ts(f.SeenBefore))
	}
	return strings.Join(where, " AND "), args
}

// RetireDevices retires the devices in service that f selects, in one transaction.
func (s *Store) RetireDevices(ctx context.Context, f store.DeviceFilter, at time.Time) ([]string, error) {
	if at.IsZero() {
		return nil, invalid("retirement without a time")
	}
	f.Retired = false
	where, args := deviceWhere(f)
	var ids []string
	err := s.tx(ctx, func(tx *sql.Tx) error {
		ids = ids[:0]
		rows, err := tx.QueryContext(ctx, `UPDATE devices SET retired_at = ?,
				revoked_at = CASE WHEN revoked_at = 0 THEN ? ELSE revoked_at END,
				online = 0, presence_at = max(presence_at, ?)
			WHERE `+where+` RETURNING id`, append([]any{ts(at), ts(at), ts(at)}, args...)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("store: retire devices: %w", err)
	}
	slices.Sort(ids)
	return ids, nil
}

// updateDevice runs an UPDATE of one device row and maps "no row" to ErrNotFound.
func (s *Store) updateDevice(ctx context.Context, id, q string, args ...any) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM devices WHERE id = ?`, id).Scan(&one); err != nil {
			return notFound(err, "device", id)
		}
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("store: device %s: %w", id, err)
		}
		return nil
	})
}

// RenewCertificate records a device's new certificate.
func (s *Store) RenewCertificate(ctx context.Context, id, serial string, expiry time.Time, certPEM []byte) error {
	return s.updateDevice(ctx, id, `UPDATE devices SET cert_serial = ?, cert_expiry = ?, cert_pem = ? WHERE id = ?`,
		serial, ts(expiry), orNull(certPEM), id)
}

// RevokeDevice marks a device revoked; revoking again keeps the first time.
func (s *Store) RevokeDevice(ctx context.Context, id string, at time.Time) error {
	if at.IsZero() {
		return invalid("revocation without a time")
	}
	return s.updateDevice(ctx, id, `UPDATE devices SET revoked_at = ? WHERE id = ? AND revoked_at = 0`, ts(at), id)
}

// SetPresence records a presence change unless a later one is recorded already; it also advances
// last-seen, and sets the agent version when online.
func (s *Store) SetPresence(ctx context.Context, id string, online bool, agentVersion string, at time.Time) error {
	return s.updateDevice(ctx, id, setPresenceSQL, presenceArgs(store.PresenceUpdate{DeviceID: id, Online: online,
		AgentVersion: agentVersion, At: at})...)
}

// setPresenceSQL records a presence change unless a later one is recorded already, or it is an
// offline change reported by another replica than the one holding the device; when online it
// sets the agent version and the replica. Its arguments: presenceArgs.
const setPresenceSQL = `UPDATE devices SET online = ?1, presence_at = ?2,
		agent_version = CASE WHEN ?1 AND ?3 <> '' THEN ?3 ELSE agent_version END,
		replica = CASE WHEN ?1 THEN ?4 ELSE replica END,
		last_seen = max(last_seen, ?2)
	WHERE id = ?5 AND presence_at <= ?2 AND (?1 OR ?4 = '' OR replica = ?4)`

func presenceArgs(u store.PresenceUpdate) []any {
	return []any{u.Online, ts(u.At), u.AgentVersion, u.Replica, u.DeviceID}
}

// SetPresences records presence changes in one transaction; unknown devices are skipped. It runs
// a few statements whatever the batch's size: one UPDATE for each round of changes (round k holds
// each device's k-th change of the batch, so a device's changes apply in their order, as one by
// one), one INSERT for the ended sessions and one DELETE to trim their devices' histories. Not one
// per change: in a reconnect storm the hub's cores are saturated, and each call into SQLite (cgo)
// costs the writer a trip through the Go scheduler's queue; one statement per change made a batch
// of 2,000 take 1.5-5 s, and the fleet's presence on the console seconds stale.
func (s *Store) SetPresences(ctx context.Context, us []store.PresenceUpdate) error {
	if len(us) == 0 {
		return nil
	}
	var rounds [][]presenceRow
	var ended []sessionRow
	var endedIDs []string
	nth := map[string]int{}
	for _, u := range us {
		k := nth[u.DeviceID]
		nth[u.DeviceID] = k + 1
		if k == len(rounds) {
			rounds = append(rounds, nil)
		}
		rounds[k] = append(rounds[k], presenceRow{ID: u.DeviceID, Online: u.Online, At: ts(u.At), Version: u.AgentVersion, Replica: u.Replica})
		if u.End != nil {
			ended = append(ended, sessionRow{ID: u.DeviceID, Replica: u.Replica, Started: ts(u.End.StartedAt), Ended: ts(u.At),
				Reason: string(u.End.Reason), Detail: store.CutDetail(u.End.Detail)})
			endedIDs = append(endedIDs, u.DeviceID)
		}
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		for _, r := range rounds {
			if _, err := tx.ExecContext(ctx, setPresencesSQL, jsonArg(r)); err != nil {
				return fmt.Errorf("store: presence of %d devices: %w", len(r), err)
			}
		}
		if len(ended) == 0 {
			return nil
		}
		if _, err := tx.ExecContext(ctx, addSessionsSQL, jsonArg(ended)); err != nil {
			return fmt.Errorf("store: presence history of %d sessions: %w", len(ended), err)
		}
		return trimHistory(ctx, tx, endedIDs)
	})
}

// presenceRow is one presence change as setPresencesSQL reads it from its JSON argument.
type presenceRow struct {
	ID      string `json:"id"`
	Online  bool   `json:"online"`
	At      int64  `json:"at"`
	Version string `json:"version"`
	Replica string `json:"replica"`
}

// setPresencesSQL is setPresenceSQL for a JSON array of presenceRow, each device at most once
// (UPDATE ... FROM applies one source row per target row).
const setPresencesSQL = `UPDATE devices SET online = u.online, presence_at = u.at,
		agent_version = CASE WHEN u.online AND u.version <> '' THEN u.version ELSE devices.agent_version END,
		replica = CASE WHEN u.online THEN u.replica ELSE devices.replica END,
		last_seen = max(devices.last_seen, u.at)
	FROM (SELECT value->>'id' AS id, value->>'online' AS online, value->>'at' AS at, value->>'version' AS version,
		value->>'replica' AS replica FROM json_each(?1)) AS u
	WHERE devices.id = u.id AND devices.presence_at <= u.at AND (u.online OR u.replica = '' OR devices.replica = u.replica)`

// sessionRow is one ended session as addSessionsSQL reads it from its JSON argument.
type sessionRow struct {
	ID      string `json:"id"`
	Replica string `json:"replica"`
	Started int64  `json:"started"`
	Ended   int64  `json:"ended"`
	Reason  string `json:"reason"`
	Detail  string `json:"detail"`
}

// addSessionsSQL adds the ended sessions of a JSON array of sessionRow, in its order, to their
// known devices' presence histories.
const addSessionsSQL = `INSERT INTO presence_history (device_id, replica, started_at, ended_at, reason, detail)
	SELECT value->>'id', value->>'replica', value->>'started', value->>'ended', value->>'reason', value->>'detail'
	FROM json_each(?1) WHERE EXISTS (SELECT 1 FROM devices WHERE id = value->>'id') ORDER BY key`

// jsonArg encodes v (rows of plain fields, which cannot fail to encode) as a statement argument,
// for json_each: one argument for any number of rows (no variable limit, one call into SQLite).
func jsonArg(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("sqlite: encode %T: %v", v, err))
	}
	return string(b)
}

// trimHistory drops all but the newest store.HistoryKeep sessions of each device in ids, in one
// statement: each device's cut-off found once (a subquery correlated with the rows to delete
// would walk a device's history once per row of it: quadratic), then its older rows by the
// (device_id, id) index.
func trimHistory(ctx context.Context, tx *sql.Tx, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if _, err := tx.ExecContext(ctx, `WITH cut AS MATERIALIZED (SELECT value AS device_id, (SELECT id FROM presence_history
				WHERE device_id = value ORDER BY id DESC LIMIT 1 OFFSET ?2) AS upto FROM json_each(?1))
			DELETE FROM presence_history WHERE id IN (SELECT h.id FROM cut JOIN presence_history AS h
				ON h.device_id = cut.device_id AND h.id <= cut.upto)`, jsonArg(ids), store.HistoryKeep); err != nil {
		return fmt.Errorf("store: trim presence history of %d devices: %w", len(ids), err)
	}
	return nil
}

// PresenceHistory returns a device's ended sessions, newest first.
func (s *Store) PresenceHistory(ctx context.Context, id string, limit int) ([]store.Session, error) {
	if limit <= 0 || limit > store.HistoryKeep {
		limit = store.HistoryKeep
	}
	rows, err := s.db.R.QueryContext(ctx, `SELECT `+sqlrow.SessionCols+` FROM presence_history
		WHERE device_id = ? ORDER BY id DESC LIMIT ?`, id, limit)
	if err != nil {
		return nil, fmt.Errorf("store: presence history of %s: %w", id, err)
	}
	defer rows.Close()
	out := []store.Session{}
	for rows.Next() {
		ss, err := sqlrow.Session(rows)
		if err != nil {
			return nil, fmt.Errorf("store: presence history of %s: %w", id, err)
		}
		out = append(out, ss)
	}
	return out, rows.Err()
}
