// Package qrscansim simulates a serial QR/barcode scanner on a pseudo-terminal: Scan writes a
// code followed by the configured suffix, exactly as a USB CDC scanner does; Write sends raw
// bytes (garbage, oversize input, a scan cut short); Unplug hangs the line up.
package qrscansim

import (
	"fmt"
	"os"
	"sync"

	"github.com/kioskfleet/kioskfleet/drivers/internal/ptypair"
	"github.com/kioskfleet/kioskfleet/drivers/qrscan"
)

// Sim is a simulated scanner. The driver opens Path.
type Sim struct {
	Path   string
	Suffix qrscan.Suffix

	mu            sync.Mutex
	master, slave *os.File
}

// New starts a scanner that ends scans with suffix.
func New(suffix qrscan.Suffix) (*Sim, error) {
	m, s, err := ptypair.Open()
	if err != nil {
		return nil, fmt.Errorf("qrscansim: open pty: %w", err)
	}
	return &Sim{Path: s.Name(), Suffix: suffix, master: m, slave: s}, nil
}

// Scan sends code and the suffix in one write.
func (s *Sim) Scan(code string) error {
	return s.Write(append([]byte(code), s.Suffix.Bytes()...))
}

// Write sends raw bytes.
func (s *Sim) Write(p []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.master == nil {
		return fmt.Errorf("qrscansim: unplugged")
	}
	_, err := s.master.Write(p)
	return err
}

// Unplug hangs up: the driver's reads fail.
func (s *Sim) Unplug() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.master != nil {
		s.master.Close()
		s.slave.Close()
		s.master, s.slave = nil, nil
	}
}

// Close releases the pseudo-terminal.
func (s *Sim) Close() error { s.Unplug(); return nil }
