package outbox_test

import (
	"path/filepath"
	"testing"

	"go.uber.org/goleak"

	"github.com/kioskfleet/kioskfleet/agent/outbox"
	"github.com/kioskfleet/kioskfleet/agent/outbox/outboxtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestMemory(t *testing.T) {
	outboxtest.Run(t, func(t *testing.T, opts outbox.Options) outbox.Outbox { return outbox.NewMemory(opts) })
}

func TestSQLite(t *testing.T) {
	outboxtest.Run(t, func(t *testing.T, opts outbox.Options) outbox.Outbox {
		ob, err := outbox.Open(t.Context(), filepath.Join(t.TempDir(), "outbox.db"), opts)
		if err != nil {
			t.Fatal(err)
		}
		return ob
	})
}
