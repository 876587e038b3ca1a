// Package sqlrow is the row encoding the hub's SQL stores share (hub/store/sqlite and
// hub/store/postgres keep the same tables, each in its own dialect): times as Unix nanoseconds, 0
// for none, and the columns of a device and of a command, with how to scan them from a row of
// either driver.
package sqlrow

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
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

// SessionCols are the columns of presence_history that Session scans.
const SessionCols = `id, device_id, replica, started_at, ended_at, reason, detail`

// Session scans a row of SessionCols.
func Session(sc Scanner) (store.Session, error) {
	var s store.Session
	var started, ended int64
	var reason string
	err := sc.Scan(&s.ID, &s.DeviceID, &s.Replica, &started, &ended, &reason, &s.Detail)
	s.StartedAt, s.EndedAt, s.Reason = Time(started), Time(ended), fleet.DisconnectReason(reason)
	return s, err
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

// EventCols are the columns of events that Event scans, and EventArgs gives, in order.
const EventCols = `seq, client_id, id, v, type, channel, pseudonym, session, service, region, kiosk_id, site_id,
	device_ts, recv_ts, props`

// EventArgs returns the values of e for the columns of EventCols after seq.
func EventArgs(e *store.Event) []any {
	return []any{e.ClientID, e.ID, e.Version, e.Type, e.Channel, e.Pseudonym, e.Session, e.Service, e.Region,
		e.KioskID, e.SiteID, Nanos(e.DeviceTS), Nanos(e.RecvTS), Props(e.Props)}
}

// Props encodes an event's properties as a JSON object, nil for none.
func Props(p map[string]string) []byte {
	if len(p) == 0 {
		return nil
	}
	b, _ := json.Marshal(p) // a map of strings always marshals
	return b
}

// Event scans a row of EventCols.
func Event(sc Scanner) (store.Event, error) {
	var e store.Event
	var dev, recv int64
	var props []byte
	err := sc.Scan(&e.Seq, &e.ClientID, &e.ID, &e.Version, &e.Type, &e.Channel, &e.Pseudonym, &e.Session, &e.Service,
		&e.Region, &e.KioskID, &e.SiteID, &dev, &recv, &props)
	if err != nil {
		return e, err
	}
	e.DeviceTS, e.RecvTS = Time(dev), Time(recv)
	if len(props) > 0 {
		err = json.Unmarshal(props, &e.Props)
	}
	return e, err
}

// Rows is *sql.Rows or pgx.Rows.
type Rows interface {
	Scanner
	Next() bool
	Err() error
}

// Events scans every row of EventCols (never nil).
func Events(rows Rows) ([]store.Event, error) {
	out := []store.Event{}
	for rows.Next() {
		e, err := Event(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// CaseCols are the columns of cases that Case scans and CaseArgs gives.
const CaseCols = `id, client_id, ref, account, service, department, title, channel, site_id, status, created_at, updated_at`

// CaseArgs returns the values of c for CaseCols.
func CaseArgs(c *store.Case) []any {
	return []any{c.ID, c.ClientID, c.Ref, c.Account, c.Service, c.Department, c.Title, c.Channel, c.SiteID, c.Status,
		Nanos(c.CreatedAt), Nanos(c.UpdatedAt)}
}

// Case scans a row of CaseCols.
func Case(sc Scanner) (store.Case, error) {
	var c store.Case
	var created, updated int64
	err := sc.Scan(&c.ID, &c.ClientID, &c.Ref, &c.Account, &c.Service, &c.Department, &c.Title, &c.Channel, &c.SiteID,
		&c.Status, &created, &updated)
	c.CreatedAt, c.UpdatedAt = Time(created), Time(updated)
	return c, err
}

// CaseEventCols are the columns of case_events that CaseEvents scans.
const CaseEventCols = `seq, case_id, account, status, note, document_id, at`

// CaseEvents scans every row of CaseEventCols (never nil).
func CaseEvents(rows Rows) ([]store.CaseEvent, error) {
	out := []store.CaseEvent{}
	for rows.Next() {
		var e store.CaseEvent
		var at int64
		if err := rows.Scan(&e.Seq, &e.CaseID, &e.Account, &e.Status, &e.Note, &e.DocumentID, &at); err != nil {
			return nil, err
		}
		e.At = Time(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// CaseDocCols are the columns of case_documents that CaseDocuments scans, before the content
// (which a query selects, or NULL in its place).
const CaseDocCols = `id, case_id, kind, name, content_type, size, encrypted, created_at`

// CaseDocuments scans every row of CaseDocCols and a content column (never nil).
func CaseDocuments(rows Rows) ([]store.CaseDocument, error) {
	out := []store.CaseDocument{}
	for rows.Next() {
		var d store.CaseDocument
		var created int64
		if err := rows.Scan(&d.ID, &d.CaseID, &d.Kind, &d.Name, &d.ContentType, &d.Size, &d.Encrypted, &created, &d.Content); err != nil {
			return nil, err
		}
		d.CreatedAt = Time(created)
		out = append(out, d)
	}
	return out, rows.Err()
}

// RatingCols are the columns of ratings that Rating scans and RatingArgs gives.
const RatingCols = `id, account, case_id, service, department, channel, site_id, score, tags, comment, created_at`

// RatingArgs returns the values of r for RatingCols.
func RatingArgs(r *store.Rating) []any {
	tags, _ := json.Marshal(append([]string{}, r.Tags...))
	return []any{r.ID, r.Account, r.CaseID, r.Service, r.Department, r.Channel, r.SiteID, r.Score, string(tags), r.Comment,
		Nanos(r.CreatedAt)}
}

// FollowUpCols are the columns of a follow-up joined with its rating that FollowUps scans.
const FollowUpCols = `r.id, r.account, r.case_id, r.service, r.department, r.channel, r.site_id, r.score, r.tags, r.comment,
	r.created_at, f.due, f.resolved_at, f.resolved_by, f.note`

// FollowUps scans every row of FollowUpCols (never nil).
func FollowUps(rows Rows) ([]store.FollowUp, error) {
	out := []store.FollowUp{}
	for rows.Next() {
		var f store.FollowUp
		r := &f.Rating
		var tags string
		var created, due, resolved int64
		if err := rows.Scan(&r.ID, &r.Account, &r.CaseID, &r.Service, &r.Department, &r.Channel, &r.SiteID, &r.Score, &tags,
			&r.Comment, &created, &due, &resolved, &f.ResolvedBy, &f.Note); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(tags), &r.Tags); err != nil {
			return nil, err
		}
		f.ID, r.CreatedAt, f.Due, f.ResolvedAt = r.ID, Time(created), Time(due), Time(resolved)
		out = append(out, f)
	}
	return out, rows.Err()
}

// RatingDimension returns the column of a rating dimension ("" for an unknown one).
func RatingDimension(by string) string {
	switch by {
	case store.RateByService:
		return "service"
	case store.RateByDepartment:
		return "department"
	case store.RateByChannel:
		return "channel"
	case store.RateBySite:
		return "site_id"
	}
	return ""
}

// RatingSummarySQL is the aggregate query of a dimension's column, with placeholders from, to
// and the least citizens, in the dialect's placeholder style (ph returns the n-th, from 1), and
// its average as a double precision number (avg, given the dialect's expression of it).
func RatingSummarySQL(col, avg string, ph func(n int) string) string {
	return `SELECT ` + col + `, count(*), count(DISTINCT account), ` + avg + `, sum(CASE WHEN score <= 2 THEN 1 ELSE 0 END),
		sum(CASE WHEN score = 1 THEN 1 ELSE 0 END), sum(CASE WHEN score = 2 THEN 1 ELSE 0 END), sum(CASE WHEN score = 3 THEN 1 ELSE 0 END),
		sum(CASE WHEN score = 4 THEN 1 ELSE 0 END), sum(CASE WHEN score = 5 THEN 1 ELSE 0 END)
		FROM ratings WHERE created_at >= ` + ph(1) + ` AND created_at < ` + ph(2) + `
		GROUP BY ` + col + ` HAVING count(DISTINCT account) >= ` + ph(3) + ` ORDER BY ` + col
}

// RatingGroups scans the rows of RatingSummarySQL (never nil).
func RatingGroups(rows Rows) ([]store.RatingGroup, error) {
	out := []store.RatingGroup{}
	for rows.Next() {
		var g store.RatingGroup
		if err := rows.Scan(&g.Key, &g.Ratings, &g.Citizens, &g.Average, &g.Bad, &g.Scores[0], &g.Scores[1], &g.Scores[2],
			&g.Scores[3], &g.Scores[4]); err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, rows.Err()
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
const SecurityEventCols = `id, device_id, kind, record_id, idx, detail, at, staff, source, hits, last_at`

// SecurityEvent scans a row of SecurityEventCols.
func SecurityEvent(sc Scanner) (store.SecurityEvent, error) {
	var e store.SecurityEvent
	var at, last int64
	err := sc.Scan(&e.ID, &e.DeviceID, &e.Kind, &e.RecordID, &e.Index, &e.Detail, &at, &e.Staff, &e.Source, &e.Count, &last)
	e.At, e.Last = Time(at), Time(last)
	return e, err
}

// CheckSecurityEvents reports what AddSecurityEvents must refuse (store.ErrInvalid), and
// returns a copy of events with their defaults set: a Count of 1, Last at least At.
func CheckSecurityEvents(events []store.SecurityEvent) ([]store.SecurityEvent, error) {
	out := slices.Clone(events)
	for i := range out {
		e := &out[i]
		if e.Kind == "" || e.At.IsZero() {
			return nil, fmt.Errorf("%w: security event needs a kind and a time", store.ErrInvalid)
		}
		e.Count = max(e.Count, 1)
		if e.Last.Before(e.At) {
			e.Last = e.At
		}
	}
	return out, nil
}

// SecurityKindLike is the LIKE pattern of a kind's family ("login" selects "login.failed"):
// kinds are lowercase letters, digits, dots and dashes, so it holds no wildcard but its own.
func SecurityKindLike(kind string) string { return kind + ".%" }

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

// AlertCols are the columns of alerts that Alert scans.
const AlertCols = `id, device_id, rule, subject, detail, state, opened_at, ack_by, ack_at, resolved_by, resolved_at`

// Alert scans a row of AlertCols.
func Alert(sc Scanner) (store.Alert, error) {
	var a store.Alert
	var opened, ack, resolved int64
	err := sc.Scan(&a.ID, &a.DeviceID, &a.Rule, &a.Subject, &a.Detail, &a.State, &opened, &a.AckBy, &ack, &a.ResolvedBy, &resolved)
	a.OpenedAt, a.AckAt, a.ResolvedAt = Time(opened), Time(ack), Time(resolved)
	return a, err
}

// AlertNotices scans rows of (id, alert_id, state, at) of alert_notices, the alert's ID in
// Alert.ID until JoinNotices fills in the rest.
func AlertNotices(rows Rows) ([]store.AlertNotice, error) {
	var out []store.AlertNotice
	for rows.Next() {
		var n store.AlertNotice
		var at int64
		if err := rows.Scan(&n.ID, &n.Alert.ID, &n.State, &at); err != nil {
			return nil, err
		}
		n.At = Time(at)
		out = append(out, n)
	}
	return out, rows.Err()
}

// NoticeAlertIDs returns the IDs of the alerts of ns.
func NoticeAlertIDs(ns []store.AlertNotice) []int64 {
	ids := make([]int64, len(ns))
	for i, n := range ns {
		ids[i] = n.Alert.ID
	}
	return ids
}

// JoinNotices gives each of ns its alert from as, as of the notice's state, and sorts ns by ID.
func JoinNotices(ns []store.AlertNotice, as []store.Alert) error {
	byID := make(map[int64]store.Alert, len(as))
	for _, a := range as {
		byID[a.ID] = a
	}
	for i := range ns {
		a, ok := byID[ns[i].Alert.ID]
		if !ok {
			return fmt.Errorf("alert notice %d: alert %d not found", ns[i].ID, ns[i].Alert.ID)
		}
		ns[i].Alert = a.AsOf(ns[i].State)
	}
	slices.SortFunc(ns, func(a, b store.AlertNotice) int { return cmp.Compare(a.ID, b.ID) })
	return nil
}

// CheckAlert reports what RaiseAlert must refuse (store.ErrInvalid).
func CheckAlert(a store.Alert) error {
	if a.DeviceID == "" || a.Rule == "" || a.OpenedAt.IsZero() {
		return fmt.Errorf("%w: alert needs a device, a rule and a time", store.ErrInvalid)
	}
	return nil
}

// CheckAlertMove reports an alert an acknowledgment or resolution did not move (moved: the
// update changed its row) because it was resolved before: store.ErrConflict.
func CheckAlertMove(a store.Alert, moved bool) error {
	if !moved && a.State == store.AlertResolved {
		return fmt.Errorf("%w: alert %d was resolved at %s", store.ErrConflict, a.ID, a.ResolvedAt.Format(time.RFC3339))
	}
	return nil
}

// StaffActionCols are the columns of staff_audit that StaffAction scans.
const StaffActionCols = `id, at, actor, roles, action, target, source, status, result, prev, hash`

// StaffAction scans a row of StaffActionCols.
func StaffAction(sc Scanner) (store.StaffAction, error) {
	var e store.StaffAction
	var at int64
	err := sc.Scan(&e.ID, &at, &e.Actor, &e.Roles, &e.Action, &e.Target, &e.Source, &e.Status, &e.Result, &e.Prev, &e.Hash)
	e.At = Time(at)
	return e, err
}

// StaffActionArgs are the values of a staff action for StaffActionCols without id.
func StaffActionArgs(e store.StaffAction) []any {
	return []any{Nanos(e.At), e.Actor, e.Roles, e.Action, e.Target, e.Source, e.Status, e.Result, e.Prev, e.Hash}
}

// ChainStaffAction sets e's Prev and Hash after prev, with its time as the store keeps it.
func ChainStaffAction(e store.StaffAction, prev string) (store.StaffAction, error) {
	if e.Actor == "" || e.Action == "" || e.At.IsZero() {
		return e, fmt.Errorf("%w: audit entry needs an actor, an action and a time", store.ErrInvalid)
	}
	e.At = Time(Nanos(e.At))
	e.Prev = prev
	e.Hash = store.AuditHash(prev, e)
	return e, nil
}
