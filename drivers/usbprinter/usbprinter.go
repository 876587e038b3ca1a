// Package usbprinter speaks the USB printer class (interface class 07, subclass 01; USB Device
// Class Definition for Printing Devices 1.1): the GET_DEVICE_ID, GET_PORT_STATUS and SOFT_RESET
// class requests and the bulk OUT/IN data pipes. A *Printer is an escpos.Link, so ESC/POS receipt
// printers on USB use drivers/escpos unchanged.
package usbprinter

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kioskfleet/kioskfleet/drivers/transport"
)

var (
	// ErrBadDeviceID: a GET_DEVICE_ID reply is malformed.
	ErrBadDeviceID = errors.New("usbprinter: malformed device id")
	// ErrPaperEmpty: GET_PORT_STATUS reports paper empty.
	ErrPaperEmpty = errors.New("usbprinter: paper empty")
	// ErrNotSelected: GET_PORT_STATUS reports the printer not selected (offline).
	ErrNotSelected = errors.New("usbprinter: printer not selected")
	// ErrPortError: GET_PORT_STATUS reports an error.
	ErrPortError = errors.New("usbprinter: printer error")
)

// Class requests (Printer Class 1.1 §4.2).
const (
	ReqGetDeviceID   = 0
	ReqGetPortStatus = 1
	ReqSoftReset     = 2

	reqTypeClassIn  = 0xA1 // device-to-host, class, interface
	reqTypeClassOut = 0x21 // host-to-device, class, interface
)

// MaxDeviceID is the largest device ID we ask for (the length field is 16 bits; real ones are
// a few hundred bytes).
const MaxDeviceID = 1024

// DeviceID is an IEEE 1284 device ID as returned by GET_DEVICE_ID.
type DeviceID struct {
	Manufacturer string   // MFG or MANUFACTURER
	Model        string   // MDL or MODEL
	CommandSet   []string // CMD or COMMAND SET, comma separated
	Class        string   // CLS or CLASS
	Description  string   // DES or DESCRIPTION
	Fields       map[string]string
}

// ParseDeviceID decodes a GET_DEVICE_ID reply: a 2-byte big-endian length counting itself, then
// "KEY:value;" pairs. MFG and MDL are required (IEEE 1284-2000 §7.6).
func ParseDeviceID(b []byte) (DeviceID, error) {
	if len(b) < 2 {
		return DeviceID{}, fmt.Errorf("%w: %d bytes, want a 2-byte length", ErrBadDeviceID, len(b))
	}
	n := int(binary.BigEndian.Uint16(b))
	if n < 2 || n > len(b) {
		return DeviceID{}, fmt.Errorf("%w: length field %d but %d bytes received", ErrBadDeviceID, n, len(b))
	}
	s := string(b[2:n])
	id := DeviceID{Fields: map[string]string{}}
	for i, part := range strings.Split(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, ":")
		if !ok {
			return DeviceID{}, fmt.Errorf("%w: field %d %q has no colon", ErrBadDeviceID, i+1, part)
		}
		for _, c := range part {
			if c < 0x20 || c == 0x7F {
				return DeviceID{}, fmt.Errorf("%w: control character in field %d", ErrBadDeviceID, i+1)
			}
		}
		k = strings.ToUpper(strings.TrimSpace(k))
		v = strings.TrimSpace(v)
		id.Fields[k] = v
		switch k {
		case "MFG", "MANUFACTURER":
			id.Manufacturer = v
		case "MDL", "MODEL":
			id.Model = v
		case "CMD", "COMMAND SET":
			id.CommandSet = nil
			for _, c := range strings.Split(v, ",") {
				if c = strings.TrimSpace(c); c != "" {
					id.CommandSet = append(id.CommandSet, c)
				}
			}
		case "CLS", "CLASS":
			id.Class = v
		case "DES", "DESCRIPTION":
			id.Description = v
		}
	}
	if id.Manufacturer == "" || id.Model == "" {
		return DeviceID{}, fmt.Errorf("%w: MFG and MDL are required in %q", ErrBadDeviceID, s)
	}
	return id, nil
}

// EncodeDeviceID frames s ("MFG:..;MDL:..;") as a GET_DEVICE_ID reply (for fakes).
func EncodeDeviceID(s string) []byte {
	b := make([]byte, 2, 2+len(s))
	binary.BigEndian.PutUint16(b, uint16(2+len(s)))
	return append(b, s...)
}

// Speaks reports whether the command set lists cmd (case-insensitive), e.g. "ESC/POS".
func (id DeviceID) Speaks(cmd string) bool {
	for _, c := range id.CommandSet {
		if strings.EqualFold(c, cmd) {
			return true
		}
	}
	return false
}

// PortStatus is the GET_PORT_STATUS byte (Printer Class 1.1 §4.2.2).
type PortStatus byte

// Port status bits.
const (
	PortNoError    PortStatus = 0x08 // 1 = no error
	PortSelected   PortStatus = 0x10 // 1 = selected (online)
	PortPaperEmpty PortStatus = 0x20 // 1 = paper empty
	PortOK                    = PortNoError | PortSelected
)

// Err returns ErrPaperEmpty, ErrPortError or ErrNotSelected (in that order), or nil.
func (s PortStatus) Err() error {
	switch {
	case s&PortPaperEmpty != 0:
		return ErrPaperEmpty
	case s&PortNoError == 0:
		return ErrPortError
	case s&PortSelected == 0:
		return ErrNotSelected
	}
	return nil
}

func (s PortStatus) String() string {
	if err := s.Err(); err != nil {
		return fmt.Sprintf("%#02x (%s)", byte(s), strings.TrimPrefix(err.Error(), "usbprinter: "))
	}
	return fmt.Sprintf("%#02x (ready)", byte(s))
}

// Config says where the printer interface is.
type Config struct {
	Interface uint8         // interface number
	Alt       uint8         // alternate setting
	Out       uint8         // bulk OUT endpoint, e.g. 0x01
	In        uint8         // bulk IN endpoint (bidirectional printers), e.g. 0x82; 0 if none
	Timeout   time.Duration // deadline for control requests; default 1 s
	Chunk     int           // bulk OUT transfer size; default 4096
}

// Printer is an opened USB printer-class interface.
type Printer struct {
	dev transport.USBDevice
	cfg Config
}

// New wraps an opened device.
func New(dev transport.USBDevice, cfg Config) *Printer {
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Second
	}
	if cfg.Chunk <= 0 {
		cfg.Chunk = 4096
	}
	return &Printer{dev: dev, cfg: cfg}
}

func (p *Printer) control(ctx context.Context, rt, req uint8, value, index uint16, b []byte) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	return p.dev.Control(ctx, rt, req, value, index, b)
}

// DeviceID issues GET_DEVICE_ID (wValue config index 0, wIndex interface<<8 | alternate).
func (p *Printer) DeviceID(ctx context.Context) (DeviceID, error) {
	b := make([]byte, MaxDeviceID)
	n, err := p.control(ctx, reqTypeClassIn, ReqGetDeviceID, 0, uint16(p.cfg.Interface)<<8|uint16(p.cfg.Alt), b)
	if err != nil {
		return DeviceID{}, fmt.Errorf("usbprinter: GET_DEVICE_ID: %w", err)
	}
	return ParseDeviceID(b[:n])
}

// PortStatus issues GET_PORT_STATUS.
func (p *Printer) PortStatus(ctx context.Context) (PortStatus, error) {
	var b [1]byte
	n, err := p.control(ctx, reqTypeClassIn, ReqGetPortStatus, 0, uint16(p.cfg.Interface), b[:])
	if err != nil {
		return 0, fmt.Errorf("usbprinter: GET_PORT_STATUS: %w", err)
	}
	if n != 1 {
		return 0, fmt.Errorf("usbprinter: GET_PORT_STATUS returned %d bytes, want 1", n)
	}
	return PortStatus(b[0]), nil
}

// CheckReady reads GET_PORT_STATUS and returns its error (ErrPaperEmpty, ErrPortError,
// ErrNotSelected) or nil. It makes a Printer an escpos.ReadyChecker, so one-way printers (no
// bulk IN, no DLE EOT replies) still refuse jobs when out of paper.
func (p *Printer) CheckReady(ctx context.Context) error {
	ps, err := p.PortStatus(ctx)
	if err != nil {
		return err
	}
	if err := ps.Err(); err != nil {
		return fmt.Errorf("%w (port status %#02x)", err, byte(ps))
	}
	return nil
}

// SoftReset issues SOFT_RESET: the printer flushes its buffers and resets the pipes.
func (p *Printer) SoftReset(ctx context.Context) error {
	if _, err := p.control(ctx, reqTypeClassOut, ReqSoftReset, 0, uint16(p.cfg.Interface), nil); err != nil {
		return fmt.Errorf("usbprinter: SOFT_RESET: %w", err)
	}
	return nil
}

// Send writes data on the bulk OUT pipe in Chunk-sized transfers.
func (p *Printer) Send(ctx context.Context, b []byte) error {
	for len(b) > 0 {
		c := b[:min(len(b), p.cfg.Chunk)]
		n, err := p.dev.BulkOut(ctx, p.cfg.Out, c)
		if err != nil {
			return fmt.Errorf("usbprinter: bulk out: %w", err)
		}
		b = b[n:]
	}
	return nil
}

// Recv reads from the bulk IN pipe (bidirectional printers), until ctx is done.
func (p *Printer) Recv(ctx context.Context, b []byte) (int, error) {
	if p.cfg.In == 0 {
		return 0, fmt.Errorf("usbprinter: printer is one-way (no bulk IN endpoint): %w", transport.ErrTimeout)
	}
	n, err := p.dev.BulkIn(ctx, p.cfg.In, b)
	if err != nil {
		return n, fmt.Errorf("usbprinter: bulk in: %w", err)
	}
	return n, nil
}
