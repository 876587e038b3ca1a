package server

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/broker"
	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/sqlite"
	"github.com/kioskfleet/kioskfleet/hub/store/storetest"
)

// TestAuthorizers checks that the per-session authorizer and the credentials the broker judges
// live sessions and handshakes by agree: a current certificate passes, a superseded one, a
// revoked device and an unknown device are refused.
func TestAuthorizers(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "hub.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, id := range []string{"ok", "renewed", "revoked"} {
		storetest.Enroll(t, st, "sz", id) // certificate serial "01"
	}
	if err := st.RenewCertificate(ctx, "renewed", "0A", time.Now().AddDate(1, 0, 0), nil); err != nil {
		t.Fatal(err)
	}
	if err := st.RevokeDevice(ctx, "revoked", time.Now()); err != nil {
		t.Fatal(err)
	}
	all, err := credentials(st)(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]broker.Credential{}
	for _, c := range all {
		byID[c.DeviceID] = c
	}
	one := authorizer(st)
	for _, tc := range []struct {
		id, serial string
		ok         bool
	}{{"ok", "01", true}, {"renewed", "01", false}, {"renewed", "0a", true}, {"revoked", "01", false}, {"ghost", "01", false}} {
		single := one(ctx, tc.id, tc.serial)
		c, known := byID[tc.id]
		bulk := known && c.Check(tc.serial) == nil
		if (single == nil) != tc.ok || bulk != tc.ok {
			t.Errorf("%s with %s: authorizer says %v, credentials say ok=%v; want ok=%v", tc.id, tc.serial, single, bulk, tc.ok)
		}
	}
	if err := one(ctx, "ghost", "01"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ghost: %v, want ErrNotFound", err)
	}
}
