package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/internal/sqlrow"
)

// CreateSite stores a new site.
func (s *Store) CreateSite(ctx context.Context, st store.Site) error {
	if st.ID == "" {
		return invalid("site without an id")
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO sites (id, name, region, address) VALUES ($1, $2, $3, $4)`,
		st.ID, st.Name, st.Region, st.Address)
	if err != nil {
		return exists(err, "site", st.ID)
	}
	return nil
}

// GetSite returns a site.
func (s *Store) GetSite(ctx context.Context, id string) (store.Site, error) {
	var st store.Site
	err := s.pool.QueryRow(ctx, `SELECT id, name, region, address FROM sites WHERE id = $1`, id).
		Scan(&st.ID, &st.Name, &st.Region, &st.Address)
	if err != nil {
		return store.Site{}, notFound(err, "site", id)
	}
	return st, nil
}

// ListSites returns all sites by id.
func (s *Store) ListSites(ctx context.Context) ([]store.Site, error) {
	rows, _ := s.pool.Query(ctx, `SELECT id, name, region, address FROM sites ORDER BY id`)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Site, error) {
		var st store.Site
		return st, r.Scan(&st.ID, &st.Name, &st.Region, &st.Address)
	})
	if err != nil {
		return nil, fmt.Errorf("store: list sites: %w", err)
	}
	return out, nil
}

// CreateEnrollmentToken stores a new token.
func (s *Store) CreateEnrollmentToken(ctx context.Context, t store.EnrollmentToken) error {
	if t.ID == "" || len(t.Hash) == 0 || t.SiteID == "" || t.ExpiresAt.IsZero() {
		return invalid("enrollment token needs an id, a hash, a site and an expiry")
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO enrollment_tokens (id, hash, site_id, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5)`, t.ID, t.Hash, t.SiteID, ts(t.CreatedAt), ts(t.ExpiresAt))
	if sqlState(err) == foreignKeyViolation {
		return fmt.Errorf("%w: site %s", store.ErrNotFound, t.SiteID)
	}
	if err != nil {
		return exists(err, "enrollment token", t.ID)
	}
	return nil
}

// EnrollDevice redeems a token and creates the device in one transaction. The device gets the
// token's site, that site's region and, if d.EnrolledAt is zero, now as its enrollment time.
// Concurrent redeems of one token take turns on the token's row: one wins, the others find it
// used.
func (s *Store) EnrollDevice(ctx context.Context, tokenHash []byte, d store.Device, now time.Time) (store.Device, error) {
	if d.ID == "" {
		return store.Device{}, invalid("device without an id")
	}
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var id, siteID string
		var expires, used int64
		err := tx.QueryRow(ctx, `SELECT id, site_id, expires_at, used_at FROM enrollment_tokens WHERE hash = $1 FOR UPDATE`,
			tokenHash).Scan(&id, &siteID, &expires, &used)
		if errors.Is(err, pgx.ErrNoRows) {
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
		if d.EnrolledAt.IsZero() {
			d.EnrolledAt = now
		}
		tag, err := tx.Exec(ctx, `INSERT INTO devices (id, site_id, region, model, cert_serial, cert_expiry, cert_pem, enrolled_at)
			SELECT $1, id, region, $3, $4, $5, $6, $7 FROM sites WHERE id = $2`,
			d.ID, siteID, d.Model, d.CertSerial, ts(d.CertExpiry), orNull(d.CertPEM), ts(d.EnrolledAt))
		if err != nil {
			return exists(err, "device", d.ID)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("%w: site %s", store.ErrNotFound, siteID)
		}
		_, err = tx.Exec(ctx, `UPDATE enrollment_tokens SET used_at = $1, device_id = $2 WHERE id = $3`, ts(now), d.ID, id)
		return err
	})
	if err != nil {
		return store.Device{}, err
	}
	return s.GetDevice(ctx, d.ID)
}

// GetDevice returns a device.
func (s *Store) GetDevice(ctx context.Context, id string) (store.Device, error) {
	d, err := sqlrow.Device(s.pool.QueryRow(ctx, `SELECT `+sqlrow.DeviceCols+` FROM devices WHERE id = $1`, id))
	if err != nil {
		return store.Device{}, notFound(err, "device", id)
	}
	return d, nil
}

// ListDevices returns the devices matching f, by id.
func (s *Store) ListDevices(ctx context.Context, f store.DeviceFilter) ([]store.Device, error) {
	where, args := deviceWhere(f)
	rows, _ := s.pool.Query(ctx, `SELECT `+sqlrow.DeviceCols+` FROM devices WHERE `+where+` ORDER BY id`, args...)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Device, error) { return sqlrow.Device(r) })
	if err != nil {
		return nil, fmt.Errorf("store: list devices: %w", err)
	}
	return out, nil
}

// deviceWhere is the WHERE clause (never empty) that selects f's devices, with its arguments as
// $1, $2...
func deviceWhere(f store.DeviceFilter) (string, []any) {
	var args []any
	arg := func(v any) string { args = append(args, v); return "$" + strconv.Itoa(len(args)) }
	where := []string{"retired_at = 0"}
	if f.Retired {
		where[0] = "retired_at <> 0"
	}
	if len(f.IDs) > 0 {
		where = append(where, "id = ANY("+arg(f.IDs)+")")
	}
	if f.SiteID != "" {
		where = append(where, "site_id = "+arg(f.SiteID))
	}
	if f.Region != "" {
		where = append(where, "starts_with(region, "+arg(f.Region)+")")
	}
	if len(f.Scope) > 0 {
		where = append(where, "EXISTS (SELECT 1 FROM unnest("+arg(f.Scope)+"::text[]) p WHERE starts_with(region, p))")
	}
	if f.Model != "" {
		where = append(where, "model = "+arg(f.Model))
	}
	if f.Online != nil {
		where = append(where, "online = "+arg(*f.Online))
	}
	if !f.SeenBefore.IsZero() {
		where = append(where, "NOT online AND greatest(last_seen, enrolled_at) < "+arg(ts(f.SeenBefore)))
	}
	return strings.Join(where, " AND "), args
}

// RetireDevices retires the devices in service that f selects, in one statement.
func (s *Store) RetireDevices(ctx context.Context, f store.DeviceFilter, at time.Time) ([]string, error) {
	if at.IsZero() {
		return nil, invalid("retirement without a time")
	}
	f.Retired = false
	where, args := deviceWhere(f)
	n := strconv.Itoa(len(args) + 1)
	rows, _ := s.pool.Query(ctx, `UPDATE devices SET retired_at = $`+n+`,
			revoked_at = CASE WHEN revoked_at = 0 THEN $`+n+` ELSE revoked_at END,
			online = false, presence_at = greatest(presence_at, $`+n+`)
		WHERE `+where+` RETURNING id`, append(args, ts(at))...)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("store: retire devices: %w", err)
	}
	slices.Sort(ids)
	return ids, nil
}

// DeviceCredentials lists every device's certificate serial and revocation.
func (s *Store) DeviceCredentials(ctx context.Context) ([]store.DeviceCredential, error) {
	rows, _ := s.pool.Query(ctx, `SELECT id, cert_serial, revoked_at <> 0 FROM devices ORDER BY id`)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.DeviceCredential, error) {
		var c store.DeviceCredential
		return c, r.Scan(&c.ID, &c.CertSerial, &c.Revoked)
	})
	if err != nil {
		return nil, fmt.Errorf("store: device credentials: %w", err)
	}
	return out, nil
}

// updateDevice runs an UPDATE of one device row that names it as $1 and maps "no such device"
// to ErrNotFound (the UPDATE may match no row for other reasons: it must not be an error then).
func (s *Store) updateDevice(ctx context.Context, id, q string, args ...any) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM devices WHERE id = $1`, id).Scan(&one); err != nil {
			return notFound(err, "device", id)
		}
		if _, err := tx.Exec(ctx, q, append([]any{id}, args...)...); err != nil {
			return fmt.Errorf("store: device %s: %w", id, err)
		}
		return nil
	})
}

// RenewCertificate records a device's new certificate.
func (s *Store) RenewCertificate(ctx context.Context, id, serial string, expiry time.Time, certPEM []byte) error {
	return s.updateDevice(ctx, id, `UPDATE devices SET cert_serial = $2, cert_expiry = $3, cert_pem = $4 WHERE id = $1`,
		serial, ts(expiry), orNull(certPEM))
}

// RevokeDevice marks a device revoked; revoking again keeps the first time.
func (s *Store) RevokeDevice(ctx context.Context, id string, at time.Time) error {
	if at.IsZero() {
		return invalid("revocation without a time")
	}
	return s.updateDevice(ctx, id, `UPDATE devices SET revoked_at = $2 WHERE id = $1 AND revoked_at = 0`, ts(at))
}

// setPresenceSQL records a presence change ($2 online, $3 at, $4 agent version, $5 replica) unless
// a later one is recorded already, or it is an offline change reported by another replica than
// the one holding the device; it also advances last-seen, and when online sets the agent version
// and the replica.
const setPresenceSQL = `UPDATE devices SET online = $2, presence_at = $3,
		agent_version = CASE WHEN $2 AND $4 <> '' THEN $4 ELSE agent_version END,
		replica = CASE WHEN $2 THEN $5 ELSE replica END,
		last_seen = greatest(last_seen, $3)
	WHERE id = $1 AND presence_at <= $3 AND ($2 OR $5 = '' OR replica = $5)`

// SetPresence records a presence change unless a later one is recorded already.
func (s *Store) SetPresence(ctx context.Context, id string, online bool, agentVersion string, at time.Time) error {
	return s.updateDevice(ctx, id, setPresenceSQL, online, ts(at), agentVersion, "")
}

// SetPresences records presence changes in one transaction; unknown devices are skipped. The rows
// are updated in device order (each device's changes in their given order), the order in which
// CommitBatches updates devices too, so that the two never deadlock.
func (s *Store) SetPresences(ctx context.Context, us []store.PresenceUpdate) error {
	if len(us) == 0 {
		return nil
	}
	us = slices.Clone(us)
	slices.SortStableFunc(us, func(a, b store.PresenceUpdate) int { return cmp.Compare(a.DeviceID, b.DeviceID) })
	return s.tx(ctx, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for i, u := range us {
			b.Queue(setPresenceSQL, u.DeviceID, u.Online, ts(u.At), u.AgentVersion, u.Replica)
			if u.End != nil {
				b.Queue(addSessionSQL, u.DeviceID, u.Replica, ts(u.End.StartedAt), ts(u.At), string(u.End.Reason), store.CutDetail(u.End.Detail))
			}
			if u.End != nil && (i == len(us)-1 || us[i+1].DeviceID != u.DeviceID) {
				b.Queue(trimHistorySQL, u.DeviceID, store.HistoryKeep)
			}
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("store: presence: %w", err)
		}
		return nil
	})
}

// addSessionSQL adds an ended session to a known device's presence history.
const addSessionSQL = `INSERT INTO presence_history (device_id, replica, started_at, ended_at, reason, detail)
	SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM devices WHERE id = $1)`

// trimHistorySQL drops all but the newest $2 sessions of device $1.
const trimHistorySQL = `DELETE FROM presence_history WHERE device_id = $1
	AND id <= (SELECT id FROM presence_history WHERE device_id = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)`

// PresenceHistory returns a device's ended sessions, newest first.
func (s *Store) PresenceHistory(ctx context.Context, id string, limit int) ([]store.Session, error) {
	if limit <= 0 || limit > store.HistoryKeep {
		limit = store.HistoryKeep
	}
	rows, _ := s.pool.Query(ctx, `SELECT `+sqlrow.SessionCols+` FROM presence_history
		WHERE device_id = $1 ORDER BY id DESC LIMIT $2`, id, limit)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Session, error) { return sqlrow.Session(r) })
	if err != nil {
		return nil, fmt.Errorf("store: presence history of %s: %w", id, err)
	}
	if out == nil {
		out = []store.Session{}
	}
	return out, nil
}
