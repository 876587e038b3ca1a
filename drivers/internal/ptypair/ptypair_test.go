package ptypair

import (
	"testing"

	"golang.org/x/sys/unix"
)

// A child process must not inherit the master: devsim starts dbus-daemon and ippeveprinter, and a
// master they hold keeps the pty open after the simulator closes it to unplug the device.
func TestMasterIsCloseOnExec(t *testing.T) {
	m, s, err := Open()
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	defer m.Close()
	defer s.Close()
	flags, err := unix.FcntlInt(m.Fd(), unix.F_GETFD, 0)
	if err != nil {
		t.Fatal(err)
	}
	if flags&unix.FD_CLOEXEC == 0 {
		t.Fatal("the master is inherited by child processes (FD_CLOEXEC not set)")
	}
}
