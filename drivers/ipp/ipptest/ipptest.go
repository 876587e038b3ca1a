// Package ipptest starts a real IPP Everywhere printer for tests: ippeve's ippeveprinter with its
// private dbus and avahi daemons, in a test temp folder, stopped by t.Cleanup.
package ipptest

import (
	"errors"
	"testing"

	"github.com/kioskfleet/kioskfleet/drivers/ipp/ippeve"
)

// Printer is a running ippeveprinter.
type Printer = ippeve.Printer

// Options configure Start; an empty Dir means a test temp folder.
type Options = ippeve.Options

// FaultMediaEmpty is a job command that reports media-empty and fails the job.
const FaultMediaEmpty = "echo 'STATE: +media-empty' >&2\nexit 1\n"

// Quick is a job command that completes the job at once and clears media-empty.
const Quick = "echo 'STATE: -media-empty' >&2\nexit 0\n"

// Start starts the printer and its daemons; they are stopped by t.Cleanup. It skips the test if
// ippeveprinter, avahi-daemon or dbus-daemon is not installed (.ci/install-peers installs them).
func Start(t testing.TB, opt Options) *Printer {
	t.Helper()
	if opt.Dir == "" {
		opt.Dir = t.TempDir()
	}
	p, err := ippeve.Start(t.Context(), opt)
	if errors.Is(err, ippeve.ErrNotInstalled) {
		t.Skipf("ipptest: %v", err)
	} else if err != nil {
		t.Fatalf("ipptest: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Logf("ipptest: %v", err)
		}
	})
	return p
}
