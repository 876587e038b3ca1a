// Package ptypair opens pseudo-terminal pairs for the serial peripheral simulators (devsim and
// the *sim packages) and the tests of the serial drivers: the simulator speaks the device's bytes
// on the master, the driver opens the slave as it would a serial port. It is not test code:
// devsim ships with it.
package ptypair

import (
	"os"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// Open opens a pseudo-terminal pair: the master, for a simulator, is non-blocking (pollable: it
// supports deadlines, and Close unblocks a pending Read); the slave is in raw mode, for a driver
// to open by its name with transport.Serial. The caller closes both.
func Open() (master, slave *os.File, err error) {
	m, s, err := pty.Open()
	if err != nil {
		return nil, nil, err
	}
	// creack/pty leaves the master in blocking mode (it calls Fd()); give the runtime poller a
	// non-blocking duplicate so that deadlines and Close work on it. The duplicate is
	// close-on-exec, like every descriptor Go opens: a child the simulator starts (devsim's
	// dbus-daemon, ippeveprinter) must not inherit the master, or closing it on an unplug would
	// leave the pty open and the driver would never see the hangup.
	fd, err := unix.FcntlInt(m.Fd(), unix.F_DUPFD_CLOEXEC, 0)
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
