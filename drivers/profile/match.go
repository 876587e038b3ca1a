package profile

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"
)

var (
	// ErrNoMatch is returned when no profile fits an attached device.
	ErrNoMatch = errors.New("profile: no profile matches")
	// ErrUnknownProfile is returned when a device is configured with a profile ID that is not loaded.
	ErrUnknownProfile = errors.New("profile: unknown profile")
)

// AmbiguousError is returned when several profiles fit a device equally well; configure the
// device's profile explicitly to settle it.
type AmbiguousError struct {
	Device     string
	Candidates []string // profile IDs
}

func (e *AmbiguousError) Error() string {
	return fmt.Sprintf("profile: %s matches %s equally well; name the profile in the device configuration", e.Device, strings.Join(e.Candidates, ", "))
}

// Attached describes a discovered or configured device. Set the fields that are known: a serial
// port has Path (and USB when it sits behind a USB-serial bridge), a USB device has USB, a network
// printer has URI (and MakeModel once asked), a SANE scanner has SANE.
type Attached struct {
	Path      string // serial port path
	USB       *USBIDs
	URI       string // network device URI, e.g. ipp://127.0.0.1:8631/ipp/print
	MakeModel string // as the network device reports it
	SANE      string // SANE device name, e.g. test:0
	Class     Class  // when set, only profiles of this class are considered
	Profile   string // when set, this profile is used (it must exist and fit the class)
}

// USBIDs is a USB vendor and product ID.
type USBIDs struct{ Vendor, Product uint16 }

func (a Attached) String() string {
	switch {
	case a.Path != "":
		return a.Path
	case a.URI != "":
		return a.URI
	case a.SANE != "":
		return "sane:" + a.SANE
	case a.USB != nil:
		return fmt.Sprintf("usb %04x:%04x", a.USB.Vendor, a.USB.Product)
	}
	return "device"
}

// Match picks the profile for an attached device. A USB vendor/product match beats a serial path
// glob; among globs the most specific (most literal characters) wins; a tie is an AmbiguousError.
func Match(profiles []*Profile, a Attached) (*Profile, error) {
	if a.Profile != "" {
		for _, p := range profiles {
			if p.ID == a.Profile {
				if a.Class != "" && p.Class != a.Class {
					return nil, fmt.Errorf("profile: %s is configured as %s but profile %s is a %s", a, a.Class, p.ID, p.Class)
				}
				return p, nil
			}
		}
		return nil, fmt.Errorf("%w %q for %s", ErrUnknownProfile, a.Profile, a)
	}
	best, bestScore := []*Profile(nil), 0
	for _, p := range profiles {
		if a.Class != "" && p.Class != a.Class {
			continue
		}
		s := score(p, a)
		switch {
		case s == 0 || s < bestScore:
		case s > bestScore:
			best, bestScore = []*Profile{p}, s
		default:
			best = append(best, p)
		}
	}
	switch len(best) {
	case 0:
		return nil, fmt.Errorf("%w %s", ErrNoMatch, a)
	case 1:
		return best[0], nil
	}
	e := &AmbiguousError{Device: a.String()}
	for _, p := range best {
		e.Candidates = append(e.Candidates, p.ID)
	}
	return nil, e
}

// score is 0 when p does not fit a, and higher the more specifically it fits.
func score(p *Profile, a Attached) int {
	const usbHit = 1000
	usb := func() bool {
		if a.USB == nil {
			return false
		}
		for _, u := range p.Match.USB {
			v, err1 := ParseUSBID(u.VID)
			d, err2 := ParseUSBID(u.PID)
			if err1 == nil && err2 == nil && v == a.USB.Vendor && d == a.USB.Product {
				return true
			}
		}
		return false
	}
	switch p.Transport.Kind {
	case TransportSerial:
		if a.Path == "" {
			return 0
		}
		g := bestGlob(p.Match.Serial, a.Path)
		if g == 0 {
			return 0
		}
		if usb() {
			g += usbHit
		} else if a.USB != nil && len(p.Match.USB) > 0 {
			return 0 // a bridge with other IDs: not this model
		}
		return g
	case TransportUSBBulk, TransportUSBPrinter:
		if a.Path == "" && usb() {
			return usbHit
		}
	case TransportIPP:
		n := p.Match.Network
		if a.URI == "" || n == nil {
			return 0
		}
		u, err := url.Parse(a.URI)
		if err != nil {
			return 0
		}
		for _, s := range n.Schemes {
			if s == u.Scheme {
				if n.MakeModel == "" {
					return 1
				}
				if a.MakeModel == "" {
					return 1 // not asked yet: as good as a generic profile
				}
				if ok, _ := path.Match(n.MakeModel, a.MakeModel); ok {
					return 1 + literal(n.MakeModel)
				}
				return 0
			}
		}
	case TransportSANE:
		if a.SANE != "" {
			return bestGlob(p.Match.SANE, a.SANE)
		}
	}
	return 0
}

// bestGlob returns 1 + the literal length of the most specific glob matching s, or 0.
func bestGlob(globs []string, s string) int {
	best := 0
	for _, g := range globs {
		if ok, _ := path.Match(g, s); ok && 1+literal(g) > best {
			best = 1 + literal(g)
		}
	}
	return best
}

func literal(g string) int {
	n := 0
	for _, c := range g {
		if !strings.ContainsRune("*?[]\\", c) {
			n++
		}
	}
	return n
}
