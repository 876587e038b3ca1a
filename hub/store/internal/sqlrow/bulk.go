package sqlrow

import (
	"strings"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

// BulkJobCols are the columns of bulk_jobs that BulkJob scans and BulkJobArgs gives, in order.
const BulkJobCols = `id, idem_key, action, request, scope, created_by, roles, source, n_devices, created_at, expires_at, done_at`

// BulkJobArgs returns the values of j for BulkJobCols.
func BulkJobArgs(j store.BulkJob) []any {
	return []any{j.ID, j.Key, j.Action, Spec(j.Request), strings.Join(j.Scope, ","), j.CreatedBy, j.Roles, j.Source, j.Count,
		Nanos(j.CreatedAt), Nanos(j.ExpiresAt), Nanos(j.DoneAt)}
}

// BulkJob scans a row of BulkJobCols.
func BulkJob(sc Scanner) (store.BulkJob, error) {
	var j store.BulkJob
	var req []byte
	var scope string
	var created, expires, done int64
	err := sc.Scan(&j.ID, &j.Key, &j.Action, &req, &scope, &j.CreatedBy, &j.Roles, &j.Source, &j.Count, &created, &expires, &done)
	j.Request, j.CreatedAt, j.ExpiresAt, j.DoneAt = req, Time(created), Time(expires), Time(done)
	if scope != "" {
		j.Scope = strings.Split(scope, ",")
	}
	return j, err
}

// BulkItemCols are the columns of bulk_items that BulkItem scans.
const BulkItemCols = `device_id, state, ref, error, updated_at`

// BulkItem scans a row of BulkItemCols.
func BulkItem(sc Scanner) (store.BulkItem, error) {
	var it store.BulkItem
	var updated int64
	err := sc.Scan(&it.DeviceID, &it.State, &it.Ref, &it.Error, &updated)
	it.UpdatedAt = Time(updated)
	return it, err
}
