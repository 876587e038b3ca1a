// Package transport is the seam between peripheral drivers and the wires they talk over: a serial
// byte stream (native serial, USB-serial bridges such as CH340/CP2102, or a pseudo-terminal in
// tests) and a USB device with bulk endpoints and control transfers. Drivers depend only on these
// small interfaces; go.bug.st/serial and gousb sit behind them, and simulators stand in for them.
package transport

import (
	"context"
	"errors"
	"io"
	"time"
)

var (
	// ErrTimeout is returned when a read or transfer does not complete before its deadline.
	ErrTimeout = errors.New("transport: timeout")
	// ErrClosed is returned after Close or when the device went away (unplugged).
	ErrClosed = errors.New("transport: closed")
)

// Port is a serial byte stream.
type Port interface {
	io.ReadWriteCloser
	// SetReadTimeout bounds each Read: a Read that sees no byte for d returns 0, nil (as
	// go.bug.st/serial does). d <= 0 blocks.
	SetReadTimeout(d time.Duration) error
	// ResetInputBuffer discards bytes received but not yet read.
	ResetInputBuffer() error
}

// SerialMode is how a serial port is opened: 8 data bits, no parity, one stop bit, at Baud.
type SerialMode struct {
	Baud int
}

// SerialOpener opens a serial port by path (/dev/ttyUSB0, /dev/pts/3).
type SerialOpener interface {
	OpenSerial(path string, mode SerialMode) (Port, error)
}

// USBDevice is an opened USB device. Endpoint addresses carry the direction bit (0x81 is IN 1).
type USBDevice interface {
	BulkOut(ctx context.Context, ep uint8, p []byte) (int, error)
	BulkIn(ctx context.Context, ep uint8, p []byte) (int, error)
	// Control performs a control transfer (USB 2.0 §9.3). For IN requests p receives the data.
	Control(ctx context.Context, requestType, request uint8, value, index uint16, p []byte) (int, error)
	Close() error
}

// USBID identifies a USB device on the bus.
type USBID struct {
	Vendor, Product uint16
	Bus, Address    int
	Serial          string
}

// USBBus lists and opens USB devices.
type USBBus interface {
	List(ctx context.Context) ([]USBID, error)
	Open(ctx context.Context, id USBID, iface int) (USBDevice, error)
}
