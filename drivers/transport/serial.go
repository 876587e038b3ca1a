package transport

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"go.bug.st/serial"
)

// DefaultBaud is used when SerialMode.Baud is zero.
const DefaultBaud = 115200

// Serial opens serial ports with go.bug.st/serial. It sets 8N1 and the baud rate and never touches
// the modem lines (DTR/RTS, modem status): on a pseudo-terminal those ioctls fail, and none of the
// supported devices needs them.
type Serial struct{}

var _ SerialOpener = Serial{}

// OpenSerial opens path at mode.Baud (DefaultBaud if zero), 8 data bits, no parity, one stop bit.
// The port it returns also has Present() error: see serialPort.Present.
func (Serial) OpenSerial(path string, mode SerialMode) (Port, error) {
	if mode.Baud == 0 {
		mode.Baud = DefaultBaud
	}
	if mode.Baud < 0 {
		return nil, fmt.Errorf("transport: open %s: invalid baud rate %d", path, mode.Baud)
	}
	p, err := serial.Open(path, &serial.Mode{
		BaudRate: mode.Baud,
		DataBits: 8,
		Parity:   serial.NoParity,
		StopBits: serial.OneStopBit,
		// InitialStatusBits stays nil: setting it would issue TIOCMSET, which a pty rejects.
	})
	if err != nil {
		return nil, fmt.Errorf("transport: open %s: %w", path, err)
	}
	node, _ := os.Stat(path) // nil if it cannot be read: Present then cannot tell
	return &serialPort{p: p, path: path, node: node}, nil
}

// serialPort adapts serial.Port to Port and maps its errors onto ErrClosed.
type serialPort struct {
	p    serial.Port
	path string
	node os.FileInfo // the device node behind path when it was opened
}

// Present tells, without a byte on the wire, whether the device is still attached: its path
// must still name the device node that was opened. An unplugged USB-serial bridge or CDC-ACM
// device loses its node and its /dev/serial/by-id link; a pty whose simulator went away loses
// the link that stood for it. This matters for devices that only ever talk first (QR scanners):
// the kernel's hangup reaches an open port only if nothing else holds the other end, and a
// native RS-232 port shows a pulled cable in no way at all. The error wraps ErrClosed.
func (s *serialPort) Present() error {
	if s.node == nil {
		return nil
	}
	now, err := os.Stat(s.path)
	switch {
	case err != nil:
		return fmt.Errorf("transport: %s: device gone: %w (%v)", s.path, ErrClosed, err)
	case !os.SameFile(s.node, now):
		return fmt.Errorf("transport: %s: now names another device: %w", s.path, ErrClosed)
	}
	return nil
}

func (s *serialPort) Read(b []byte) (int, error) {
	n, err := s.p.Read(b)
	return n, s.wrap("read", err)
}

func (s *serialPort) Write(b []byte) (int, error) {
	n, err := s.p.Write(b)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	return n, s.wrap("write", err)
}

func (s *serialPort) Close() error { return s.wrap("close", s.p.Close()) }

func (s *serialPort) SetReadTimeout(d time.Duration) error {
	if d <= 0 {
		d = serial.NoTimeout
	}
	return s.wrap("set read timeout", s.p.SetReadTimeout(d))
}

func (s *serialPort) ResetInputBuffer() error {
	return s.wrap("reset input buffer", s.p.ResetInputBuffer())
}

// wrap maps a closed port and a vanished device (EIO after a USB-serial bridge is unplugged or
// a pty master is closed; EBADF after Close) onto ErrClosed.
func (s *serialPort) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var pe *serial.PortError
	if (errors.As(err, &pe) && pe.Code() == serial.PortClosed) ||
		errors.Is(err, syscall.EIO) || errors.Is(err, syscall.EBADF) || errors.Is(err, syscall.ENXIO) ||
		errors.Is(err, syscall.ENODEV) {
		return fmt.Errorf("transport: %s %s: %w (%v)", op, s.path, ErrClosed, err)
	}
	return fmt.Errorf("transport: %s %s: %w", op, s.path, err)
}
