// Package transporttest provides stand-ins for the transports in tests: a pseudo-terminal pair for
// serial devices and a fake USB device for vendor bulk interfaces.
package transporttest

import (
	"os"
	"testing"

	"github.com/kioskfleet/kioskfleet/drivers/internal/ptypair"
)

// PtyPair opens a pseudo-terminal. The master is for a simulator (it supports deadlines, and Close
// unblocks a pending Read); slavePath is for the driver to open with transport.Serial. The slave
// is put in raw mode and held open until the test ends, so the master does not see EIO before the
// driver opens it. Closing the master hangs up the slave: the driver's reads fail as on an unplug.
// Both ends are closed by t.Cleanup.
func PtyPair(t testing.TB) (master *os.File, slavePath string) {
	t.Helper()
	m, s, err := ptypair.Open()
	if err != nil {
		t.Fatalf("transporttest: %v", err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s.Name()
}
