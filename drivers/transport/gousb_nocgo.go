//go:build !cgo

package transport

import (
	"context"
	"errors"
)

// GoUSB stands for the libusb bus in a build without cgo: it cannot be created.
type GoUSB struct{}

var _ USBBus = (*GoUSB)(nil)

// ErrNoLibUSB is returned by NewGoUSB in a build without cgo.
var ErrNoLibUSB = errors.New("transport: built without cgo: no libusb, no USB devices")

// NewGoUSB fails: libusb needs cgo.
func NewGoUSB() (*GoUSB, error) { return nil, ErrNoLibUSB }

// Close does nothing.
func (g *GoUSB) Close() error { return nil }

// List fails.
func (g *GoUSB) List(context.Context) ([]USBID, error) { return nil, ErrNoLibUSB }

// Open fails.
func (g *GoUSB) Open(context.Context, USBID, int) (USBDevice, error) { return nil, ErrNoLibUSB }
