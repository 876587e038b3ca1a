package transport

import (
	"errors"
	"fmt"
	"io"
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
	return &serialPort{p: p, path: path}, nil
}

// serialPort adapts serial.Port to Port and maps its errors onto ErrClosed.
type serialPort struct {
	p    serial.Port
	path string
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
