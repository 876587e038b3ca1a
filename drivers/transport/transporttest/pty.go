// Package transporttest provides stand-ins for the transports in tests and simulators: a
// pseudo-terminal pair for serial devices and a fake USB device for vendor bulk interfaces.
package transporttest

import (
	"os"
	"testing"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// PtyPair opens a pseudo-terminal. The master is for a simulator (it supports deadlines, and Close
// unblocks a pending Read); slavePath is for the driver to open with transport.Serial. The slave
// is put in raw mode and held open until the test ends, so the master does not see EIO before the
// driver opens it. Closing the master hangs up the slave: the driver's reads fail as on an unplug.
// Both ends are closed by t.Cleanup.
func PtyPair(t testing.TB) (master *os.File, slavePath string) {
	t.Helper()
	m, s, err := Pty()
	if err != nil {
		t.Fatalf("transporttest: %v", err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s.Name()
}

// Pty opens a pseudo-terminal pair without a testing.TB (for the devsim command): the master is
// non-blocking (pollable), the slave is in raw mode. The caller closes both.
func Pty() (master, slave *os.File, err error) {
	m, s, err := pty.Open()
	if err != nil {
		return nil, nil, err
	}
	// creack/pty leaves the master in blocking mode (it calls Fd()); give the runtime poller a
	// non-blocking duplicate so that deadlines and Close work on it.
	fd, err := unix.Dup(int(m.Fd()))
	m.Close()
	if err == nil {
		err = unix.SetNonblock(fd, true)
	}
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	m = os.NewFile(uintptr(fd), "/dev/ptmx")
	if err := makeRaw(int(s.Fd())); err != nil {
		m.Close()
		s.Close()
		return nil, nil, err
	}
	return m, s, nil
}

// makeRaw is cfmakeraw(3): no echo, no line editing, no CR/NL or XON/XOFF translation.
func makeRaw(fd int) error {
	tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return err
	}
	tio.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	tio.Oflag &^= unix.OPOST
	tio.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	tio.Cflag &^= unix.CSIZE | unix.PARENB
	tio.Cflag |= unix.CS8
	tio.Cc[unix.VMIN] = 1
	tio.Cc[unix.VTIME] = 0
	return unix.IoctlSetTermios(fd, unix.TCSETS, tio)
}
