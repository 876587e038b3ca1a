package httpapi_test

import (
	"slices"
	"testing"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
)

// TestAudit: every staff action that is not a read is in the audit log with who, their roles,
// what, the path, where from and the result, refused ones too; reads and anonymous calls are
// not; the log is chained; only admins read it.
func TestAudit(t *testing.T) {
	e := newEnv(t)
	e.do(t, "POST", p+"/sites", adminTok, fleet.Site{ID: "nanshan", Name: "南山", Region: "440305"}, 201, nil)
	e.do(t, "POST", p+"/sites", adminTok, fleet.Site{ID: "futian", Name: "福田", Region: "440304"}, 201, nil)
	ours, theirs := e.enroll(t, "nanshan").DeviceID, e.enroll(t, "futian").DeviceID
	e.do(t, "GET", p+"/devices", countyTok, nil, 200, nil)
	e.do(t, "POST", p+"/devices/"+theirs+"/revoke", countyTok, nil, 403, nil)
	e.do(t, "POST", p+"/devices/"+ours+"/revoke", countyTok, nil, 200, nil)
	e.do(t, "POST", p+"/sites", countyTok, fleet.Site{ID: "x", Name: "x", Region: "440305"}, 403, nil)
	e.do(t, "POST", p+"/devices/"+ours+"/revoke", "bad-token", nil, 401, nil)

	var log api.StaffActions
	e.do(t, "GET", p+"/audit", countyTok, nil, 403, nil)
	e.do(t, "GET", p+"/audit?limit=1000", adminTok, nil, 200, &log)
	var got []string
	for _, en := range log.Entries {
		got = append(got, en.Actor+" "+en.Roles+" "+en.Action+" "+en.Target+" "+en.Result)
		if en.Source != "127.0.0.1" || en.At.IsZero() {
			t.Errorf("entry %+v", en)
		}
	}
	slices.Reverse(got)
	want := []string{
		"bootstrap-admin admin POST /sites /api/v1/sites ok",
		"bootstrap-admin admin POST /sites /api/v1/sites ok",
		"ops1 reviewer,fieldops POST /enrollment-tokens /api/v1/enrollment-tokens ok", // e.enroll
		"ops1 reviewer,fieldops POST /enrollment-tokens /api/v1/enrollment-tokens ok", // e.enroll
		"nanshan-eng fieldops POST /devices/{id}/revoke /api/v1/devices/" + theirs + "/revoke forbidden",
		"nanshan-eng fieldops POST /devices/{id}/revoke /api/v1/devices/" + ours + "/revoke ok",
		"nanshan-eng fieldops POST /sites /api/v1/sites forbidden",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("audit log:\n%q\nwant\n%q", got, want)
	}
	chain := make([]store.StaffAction, len(log.Entries))
	for i, en := range log.Entries {
		chain[len(chain)-1-i] = store.StaffAction{ID: en.ID, At: en.At, Actor: en.Actor, Roles: en.Roles, Action: en.Action, Target: en.Target,
			Source: en.Source, Status: en.Status, Result: en.Result, Prev: en.Prev, Hash: en.Hash}
	}
	if err := store.VerifyAudit(chain); err != nil {
		t.Fatal(err)
	}
	e.do(t, "GET", p+"/audit?actor=nanshan-eng&limit=1", adminTok, nil, 200, &log)
	if len(log.Entries) != 1 || log.Entries[0].Action != "POST /sites" || log.Entries[0].Status != 403 {
		t.Fatalf("filtered: %+v", log.Entries)
	}
}
