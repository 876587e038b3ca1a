package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kioskfleet/kioskfleet/drivers/escpos/escpossim"
	"github.com/kioskfleet/kioskfleet/drivers/idcard/idcardsim"
	"github.com/kioskfleet/kioskfleet/drivers/internal/ptypair"
	"github.com/kioskfleet/kioskfleet/drivers/qrscan"
	"github.com/kioskfleet/kioskfleet/drivers/qrscan/qrscansim"
)

var (
	errUnknownFault = errors.New("unknown fault")
	errUnplugged    = errors.New("device is unplugged")
)

// serialSim is a simulated serial device on a pseudo-terminal. It can be unplugged (its pty goes
// away, the driver's reads fail) and plugged in again (a new pty); Link, when set, is a symlink
// kept pointing at the current pty so that configuration can name a stable path, as
// /dev/serial/by-id does for real devices.
type serialSim interface {
	Plug() (path string, err error)
	Unplug()
	SetFault(name string, on bool) error
	Faults() []string // names of the faults this simulator knows
	Active() []string // faults that are on
}

// device is a serialSim with its bookkeeping.
type device struct {
	ID, Kind, Profile, Link string
	sim                     serialSim

	mu      sync.Mutex
	path    string // current pty; "" when unplugged
	plugged bool
}

func (d *device) plug() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.plugged {
		return nil
	}
	p, err := d.sim.Plug()
	if err != nil {
		return fmt.Errorf("%s: %w", d.ID, err)
	}
	if d.Link != "" {
		tmp := d.Link + ".new"
		os.Remove(tmp)
		if err := os.Symlink(p, tmp); err != nil {
			d.sim.Unplug()
			return err
		}
		if err := os.Rename(tmp, d.Link); err != nil {
			d.sim.Unplug()
			return err
		}
	}
	d.path, d.plugged = p, true
	return nil
}

func (d *device) unplug() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.plugged {
		return
	}
	if d.Link != "" {
		os.Remove(d.Link)
	}
	d.sim.Unplug()
	d.path, d.plugged = "", false
}

// info is a device as the control API shows it.
type info struct {
	ID      string   `json:"id"`
	Kind    string   `json:"kind"`
	Profile string   `json:"profile"`
	Path    string   `json:"path"`          // stable path (symlink) or the pty itself
	Pty     string   `json:"pty,omitempty"` // current pty
	Plugged bool     `json:"plugged"`
	Faults  []string `json:"faults"`      // faults that are on
	Known   []string `json:"knownFaults"` // faults that can be injected
}

func (d *device) info() info {
	d.mu.Lock()
	defer d.mu.Unlock()
	path := d.Link
	if path == "" {
		path = d.path
	}
	return info{ID: d.ID, Kind: d.Kind, Profile: d.Profile, Path: path, Pty: d.path, Plugged: d.plugged,
		Faults: d.sim.Active(), Known: d.sim.Faults()}
}

// faultSet remembers which faults are on, so that a replugged simulator gets them back.
type faultSet map[string]bool

func (f faultSet) active() []string {
	var out []string
	for k, on := range f {
		if on {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// escposSim is a receipt printer (drivers/escpos/escpossim).
type escposSim struct {
	mu     sync.Mutex
	pty    *escpossim.Pty
	faults faultSet
}

var escposFaults = map[string]escpossim.Fault{
	"paper-near-end": escpossim.PaperNearEnd,
	"paper-out":      escpossim.PaperOut,
	"cover-open":     escpossim.CoverOpen,
	"cutter-error":   escpossim.CutterError,
	"offline":        escpossim.Offline,
	"slow":           escpossim.Slow,
}

func newESCPOS() *escposSim { return &escposSim{faults: faultSet{}} }

func (s *escposSim) Plug() (string, error) {
	p, err := escpossim.NewPty()
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, on := range s.faults {
		p.SetFault(escposFaults[name], on)
	}
	s.pty = p
	return p.Path, nil
}

func (s *escposSim) Unplug() {
	s.mu.Lock()
	p := s.pty
	s.pty = nil
	s.mu.Unlock()
	if p != nil {
		p.Unplug()
	}
}

func (s *escposSim) SetFault(name string, on bool) error {
	f, ok := escposFaults[name]
	if !ok {
		return fmt.Errorf("%w %q for escpos (known: %s)", errUnknownFault, name, strings.Join(s.Faults(), ", "))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[name] = on
	if s.pty != nil {
		s.pty.SetFault(f, on)
	}
	return nil
}

func (s *escposSim) Faults() []string { return sortedKeys(escposFaults) }

func (s *escposSim) Active() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults.active()
}

// idcardSim is a GA 467 ID card reader (drivers/idcard/idcardsim). The simulator outlives its
// ptys: a replugged reader keeps its card and faults.
type idcardSim struct {
	sim  *idcardsim.Sim
	ctx  context.Context
	mu   sync.Mutex
	f    idcardsim.Faults
	card string
	done chan struct{} // closed when the current Run returns
}

var idcardFaults = []string{"no-card", "misread", "bad-checksum", "sam-fault", "slow"}

// idcardCards are the sample cards by name.
var idcardCards = map[string]func() *idcardsim.Card{
	"resident":    idcardsim.Resident,
	"hkmotw":      idcardsim.HKMOTW,
	"foreign2017": idcardsim.Foreigner2017,
	"foreign2023": idcardsim.Foreigner2023,
	"senior":      func() *idcardsim.Card { return idcardsim.Senior(time.Now()) }, // turns 60 in ten days
}

func newIDCard(ctx context.Context, card string) (*idcardSim, error) {
	s := &idcardSim{sim: idcardsim.New(nil), ctx: ctx}
	return s, s.SetCard(card)
}

// SetCard puts a sample card on the reader ("none" takes it off).
func (s *idcardSim) SetCard(name string) error {
	if name == "none" || name == "" {
		s.sim.SetCard(nil)
	} else if c, ok := idcardCards[name]; ok {
		s.sim.SetCard(c())
	} else {
		return fmt.Errorf("unknown card %q (known: none, %s)", name, strings.Join(sortedKeys(idcardCards), ", "))
	}
	s.mu.Lock()
	s.card = name
	s.mu.Unlock()
	return nil
}

func (s *idcardSim) Plug() (string, error) {
	master, slave, err := ptypair.Open()
	if err != nil {
		return "", err
	}
	done := make(chan struct{})
	s.mu.Lock()
	s.done = done
	s.mu.Unlock()
	go func() {
		defer close(done)
		s.sim.Run(s.ctx, master)
		master.Close()
		slave.Close()
	}()
	return slave.Name(), nil
}

func (s *idcardSim) Unplug() {
	s.mu.Lock()
	done := s.done
	s.done = nil
	s.mu.Unlock()
	if done != nil {
		s.sim.Unplug()
		<-done
	}
}

func (s *idcardSim) SetFault(name string, on bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch name {
	case "no-card":
		s.f.NoCard = on
	case "misread":
		s.f.Misread = on
	case "bad-checksum":
		s.f.BadChecksum = on
	case "sam-fault":
		s.f.SAMFault = on
	case "slow":
		s.f.Delay = 0
		if on {
			s.f.Delay = 2 * time.Second
		}
	default:
		return fmt.Errorf("%w %q for idcard (known: %s)", errUnknownFault, name, strings.Join(idcardFaults, ", "))
	}
	s.sim.SetFaults(s.f)
	return nil
}

func (s *idcardSim) Faults() []string { return idcardFaults }

func (s *idcardSim) Active() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := faultSet{"no-card": s.f.NoCard, "misread": s.f.Misread, "bad-checksum": s.f.BadChecksum,
		"sam-fault": s.f.SAMFault, "slow": s.f.Delay > 0}
	return append(f.active(), "card="+s.card)
}

func sortedKeys[V any](m map[string]V) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	slices.Sort(k)
	return k
}

// qrSim is a serial QR scanner (drivers/qrscan/qrscansim). It has no fault states; Scan sends a
// code as the scanner would.
type qrSim struct {
	suffix qrscan.Suffix
	mu     sync.Mutex
	sim    *qrscansim.Sim
}

func (s *qrSim) Plug() (string, error) {
	sim, err := qrscansim.New(s.suffix)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	s.sim = sim
	s.mu.Unlock()
	return sim.Path, nil
}

func (s *qrSim) Unplug() {
	s.mu.Lock()
	sim := s.sim
	s.sim = nil
	s.mu.Unlock()
	if sim != nil {
		sim.Close()
	}
}

func (s *qrSim) SetFault(name string, on bool) error {
	return fmt.Errorf("%w %q: the QR scanner has no fault states (scan codes or unplug it)", errUnknownFault, name)
}

func (s *qrSim) Faults() []string { return []string{} }
func (s *qrSim) Active() []string { return []string{} }

// Scan sends code followed by the suffix.
func (s *qrSim) Scan(code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sim == nil {
		return errUnplugged
	}
	return s.sim.Scan(code)
}
