package sqlrow

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

// Where appends "WHERE col = ? AND ..." to q for every non-empty value of eq, in column order,
// with placeholders "?" (SQLite) or "$1", "$2", ... (PostgreSQL, placeholder "$"), and returns
// the query and its arguments.
func Where(q, placeholder string, eq map[string]string) (string, []any) {
	cols := make([]string, 0, len(eq))
	for c, v := range eq {
		if v != "" {
			cols = append(cols, c)
		}
	}
	slices.Sort(cols)
	var args []any
	for i, c := range cols {
		q += map[bool]string{true: " WHERE ", false: " AND "}[i == 0] + c + " = " + Placeholder(placeholder, i+1)
		args = append(args, eq[c])
	}
	return q, args
}

// Placeholder is the n-th bind parameter: "?" (SQLite) or "$n" (PostgreSQL, placeholder "$").
func Placeholder(placeholder string, n int) string {
	if placeholder == "$" {
		return "$" + strconv.Itoa(n)
	}
	return "?"
}

// DepartmentCols are the columns of catalog_departments that Department scans.
const DepartmentCols = `id, name, created_at`

// Department scans a row of DepartmentCols.
func Department(sc Scanner) (store.Department, error) {
	var d store.Department
	var created int64
	err := sc.Scan(&d.ID, &d.Name, &created)
	d.CreatedAt = Time(created)
	return d, err
}

// AppCols are the columns of catalog_apps that App scans.
const AppCols = `id, department_id, kind, name, description, created_at, created_by`

// App scans a row of AppCols.
func App(sc Scanner) (store.App, error) {
	var a store.App
	var created int64
	err := sc.Scan(&a.ID, &a.DepartmentID, &a.Kind, &a.Name, &a.Description, &created, &a.CreatedBy)
	a.CreatedAt = Time(created)
	return a, err
}

// VersionCols are the columns of catalog_versions that Version scans.
const VersionCols = `app_id, version, state, spec, guide_id, guide_version, created_at, created_by, updated_at`

// Version scans a row of VersionCols (without releases).
func Version(sc Scanner) (store.AppVersion, error) {
	var v store.AppVersion
	var created, updated int64
	var spec []byte
	err := sc.Scan(&v.AppID, &v.Version, &v.State, &spec, &v.GuideID, &v.GuideVersion, &created, &v.CreatedBy, &updated)
	v.Spec, v.CreatedAt, v.UpdatedAt = spec, Time(created), Time(updated)
	return v, err
}

// Spec is how a version's spec is stored: {} when it has none.
func Spec(b []byte) []byte {
	if len(b) == 0 {
		return []byte(`{}`)
	}
	return b
}

// ReleaseCols are the columns of catalog_releases that Release scans.
const ReleaseCols = `app_id, version, channel, state, updated_at`

// Release scans a row of ReleaseCols.
func Release(sc Scanner) (store.Release, error) {
	var r store.Release
	var updated int64
	err := sc.Scan(&r.AppID, &r.Version, &r.Channel, &r.State, &updated)
	r.UpdatedAt = Time(updated)
	return r, err
}

// AttachReleases fills each version's Releases from rs (of the same app).
func AttachReleases(vs []store.AppVersion, rs []store.Release) {
	for i := range vs {
		vs[i].Releases = map[string]string{}
		for _, r := range rs {
			if r.AppID == vs[i].AppID && r.Version == vs[i].Version {
				vs[i].Releases[r.Channel] = r.State
			}
		}
	}
}

// AuditCols are the columns of catalog_audit that Audit scans.
const AuditCols = `n, app_id, version, channel, from_state, to_state, actor, reason, at`

// Audit scans a row of AuditCols.
func Audit(sc Scanner) (store.AuditEntry, error) {
	var e store.AuditEntry
	var at int64
	err := sc.Scan(&e.N, &e.AppID, &e.Version, &e.Channel, &e.From, &e.To, &e.Actor, &e.Reason, &at)
	e.At = Time(at)
	return e, err
}

// CheckChange checks a change against the version's state and its release's state on the
// change's channel ("" when it has none there): a version's state on a channel is its release's,
// or its own while it has none.
func CheckChange(c store.AppChange, versionState, releaseState string) error {
	if c.To == "" {
		return fmt.Errorf("%w: change of %s@%s without a new state", store.ErrInvalid, c.AppID, c.Version)
	}
	cur := versionState
	if c.Channel != "" && releaseState != "" {
		cur = releaseState
	}
	if cur != c.From {
		where := ""
		if c.Channel != "" {
			where = " on " + c.Channel
		}
		return fmt.Errorf("%w: %s@%s%s is %s, not %s", store.ErrStale, c.AppID, c.Version, where, cur, c.From)
	}
	return nil
}

// ChangeEntry is the audit entry of a change (N not yet known).
func ChangeEntry(c store.AppChange) store.AuditEntry {
	return store.AuditEntry{AppID: c.AppID, Version: c.Version, Channel: c.Channel, From: c.From, To: c.To,
		Actor: c.Actor, Reason: c.Reason, At: Time(Nanos(c.At))}
}

// GuideCols are the columns of catalog_guides that Guide scans.
const GuideCols = `id, department_id, title, created_at, latest`

// Guide scans a row of GuideCols.
func Guide(sc Scanner) (store.Guide, error) {
	var g store.Guide
	var created int64
	err := sc.Scan(&g.ID, &g.DepartmentID, &g.Title, &created, &g.Latest)
	g.CreatedAt = Time(created)
	return g, err
}

// GuideVersionCols are the columns of catalog_guide_versions that GuideVersion scans, without
// the document (withDoc: followed by doc).
const GuideVersionCols = `guide_id, version, created_at, created_by`

// GuideVersion scans a row of GuideVersionCols, and doc after them if withDoc.
func GuideVersion(sc Scanner, withDoc bool) (store.GuideVersion, error) {
	var v store.GuideVersion
	var created int64
	dest := []any{&v.GuideID, &v.Version, &created, &v.CreatedBy}
	var doc []byte
	if withDoc {
		dest = append(dest, &doc)
	}
	err := sc.Scan(dest...)
	v.CreatedAt, v.Doc = Time(created), doc
	return v, err
}

// RolloutCols are the columns of rollouts that Rollout scans.
const RolloutCols = `id, rev, kind, app, version, state, wave, spec, progress, reason, created_by, created_at, updated_at`

// Rollout scans a row of RolloutCols.
func Rollout(sc Scanner) (store.Rollout, error) {
	var r store.Rollout
	var spec, progress []byte
	var created, updated int64
	err := sc.Scan(&r.ID, &r.Rev, &r.Kind, &r.App, &r.Version, &r.State, &r.Wave, &spec, &progress, &r.Reason, &r.CreatedBy, &created, &updated)
	r.Spec, r.Progress, r.CreatedAt, r.UpdatedAt = spec, progress, Time(created), Time(updated)
	return r, err
}

// RolloutDeviceCols are the columns of rollout_devices that RolloutDevice scans.
const RolloutDeviceCols = `device_id, wave, previous, state, error, updated_at`

// RolloutDevice scans a row of RolloutDeviceCols.
func RolloutDevice(sc Scanner) (store.RolloutDevice, error) {
	var d store.RolloutDevice
	var updated int64
	err := sc.Scan(&d.DeviceID, &d.Wave, &d.Previous, &d.State, &d.Error, &updated)
	d.UpdatedAt = Time(updated)
	return d, err
}

// Tags folds rows of (device_id, tag) into a map.
func Tags(rows []DeviceTag) map[string][]string {
	out := map[string][]string{}
	for _, r := range rows {
		out[r.DeviceID] = append(out[r.DeviceID], r.Tag)
	}
	return out
}

// DeviceTag is a row of device_tags.
type DeviceTag struct{ DeviceID, Tag string }

// ScanTag scans a row of (device_id, tag).
func ScanTag(sc Scanner) (DeviceTag, error) {
	var t DeviceTag
	err := sc.Scan(&t.DeviceID, &t.Tag)
	return t, err
}
