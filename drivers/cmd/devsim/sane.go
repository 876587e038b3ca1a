package main

import (
	"os"
	"path/filepath"
	"sync"

	"github.com/kioskfleet/kioskfleet/pkg/atomicfile"
)

// saneDevice is the SANE name of the simulated document scanner.
const saneDevice = "test:1"

// saneScanner is SANE's test backend behind a private SANE_CONFIG_DIR whose dll.conf lists only
// it. The backend simulates number_of_devices scanners (test.conf); the kiosk's is the second,
// test:1, so that unplugging it is simulating one scanner fewer: scanimage then fails to open it,
// as it does a scanner whose cable was pulled. (dll.conf cannot do it: SANE's dll backend loads
// a backend named in a device name even when dll.conf does not list it.)
type saneScanner struct {
	dir string // SANE_CONFIG_DIR

	mu      sync.Mutex
	plugged bool
}

func newSANE(dir string) (*saneScanner, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// Only the test backend: probing every backend is slow and broadcasts on the network.
	if err := os.WriteFile(filepath.Join(dir, "dll.conf"), []byte("test\n"), 0o644); err != nil {
		return nil, err
	}
	s := &saneScanner{dir: dir}
	return s, s.plug()
}

func (s *saneScanner) plug() error { return s.set(true) }

func (s *saneScanner) unplug() { s.set(false) }

func (s *saneScanner) set(plugged bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	conf := "number_of_devices 1\n"
	if plugged {
		conf = "number_of_devices 2\n"
	}
	if err := atomicfile.WriteFile(filepath.Join(s.dir, "test.conf"), []byte(conf), 0o644); err != nil {
		return err
	}
	s.plugged = plugged
	return nil
}

func (s *saneScanner) info() info {
	s.mu.Lock()
	defer s.mu.Unlock()
	return info{ID: "scan0", Kind: "sane", Profile: profSANE, Path: saneDevice, Plugged: s.plugged, Faults: []string{}, Known: []string{}}
}
