package server

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/sqlite"
	"github.com/kioskfleet/kioskfleet/hub/store/storetest"
)

// TestAuthorizers checks that the per-session and the bulk re-authorization agree: a current
// certificate passes, a superseded one, a revoked device and an unknown device are refused.
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
	sessions := map[string]string{"ok": "01", "renewed": "01", "revoked": "01", "ghost": "01"}
	refused, err := bulkAuthorizer(st)(ctx, sessions)
	if err != nil {
		t.Fatal(err)
	}
	one := authorizer(st)
	for id, serial := range sessions {
		single := one(ctx, id, serial)
		if (single == nil) != (refused[id] == nil) {
			t.Errorf("%s: Authorize says %v, AuthorizeAll says %v", id, single, refused[id])
		}
	}
	if len(refused) != 3 || refused["ok"] != nil {
		t.Errorf("refused %v, want renewed, revoked and ghost", refused)
	}
	if !errors.Is(refused["ghost"], store.ErrNotFound) {
		t.Errorf("ghost: %v, want ErrNotFound", refused["ghost"])
	}
	// The renewed certificate is accepted, whatever the case of its hex serial.
	if refused, _ := bulkAuthorizer(st)(ctx, map[string]string{"renewed": "0a"}); len(refused) != 0 {
		t.Errorf("current certificate refused: %v", refused)
	}
}
