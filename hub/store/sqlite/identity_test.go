package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/kioskfleet/kioskfleet/hub/identity"
	"github.com/kioskfleet/kioskfleet/hub/store/sqlite"
	"github.com/kioskfleet/kioskfleet/hub/store/storetest"
)

func TestIdentityConformance(t *testing.T) {
	storetest.RunIdentity(t, func(t *testing.T) identity.Storage {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "hub.db"), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s.Identity()
	})
}
