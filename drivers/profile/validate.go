package profile

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// What each driver accepts. The tables are the schema: docs/firmware-profiles.md lists them.
var (
	driverClass = map[Driver]Class{
		DriverIDCard:  ClassIDReader,
		DriverESCPOS:  ClassReceiptPrinter,
		DriverIPP:     ClassDocumentPrinter,
		DriverQRScan:  ClassQRScanner,
		DriverDocScan: ClassDocumentScanner,
	}
	driverTransports = map[Driver][]TransportKind{
		DriverIDCard:  {TransportSerial, TransportUSBBulk},
		DriverESCPOS:  {TransportSerial, TransportUSBPrinter},
		DriverIPP:     {TransportIPP},
		DriverQRScan:  {TransportSerial},
		DriverDocScan: {TransportSANE},
	}
	driverProtocols = map[Driver][]string{
		DriverIDCard:  {"ga467"},
		DriverESCPOS:  {"escpos"},
		DriverIPP:     {"ipp-everywhere", "ipp-2.0"},
		DriverQRScan:  {"serial-text"},
		DriverDocScan: {"sane"},
	}
	classCapabilities = map[Class][]string{
		ClassIDReader:        {"read-text", "read-photo", "read-fingerprint", "read-new-address", "hmt-permit", "foreign-permanent-2017", "foreign-permanent-2023", "read-sam-id"},
		ClassReceiptPrinter:  {"text", "cut", "partial-cut", "realtime-status", "auto-status-back", "drawer", "qrcode", "barcode", "raster-image", "paper-near-end"},
		ClassDocumentPrinter: {"pdf", "pwg-raster", "urf", "duplex", "color", "monochrome"},
		ClassQRScanner:       {"qr", "code128", "ean13", "pdf417", "datamatrix"},
		ClassDocumentScanner: {"flatbed", "adf", "color", "gray", "lineart"},
	}
	standardBauds = []int{1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400}
	suffixes      = []string{"cr", "lf", "crlf", "none"}
	netSchemes    = []string{"ipp", "ipps", "http", "https"}
)

func names[T ~string, V any](m map[T]V) string {
	var s []string
	for k := range m {
		s = append(s, string(k))
	}
	slices.Sort(s)
	return strings.Join(s, ", ")
}

func joinAny[T any](xs []T) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ", ")
}

func validID(id string) bool {
	if id == "" || len(id) > 64 || id[0] == '-' {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// ParseUSBID parses a 16-bit USB vendor or product ID written as four hex digits, optionally
// prefixed with 0x.
func ParseUSBID(s string) (uint16, error) {
	h := strings.TrimPrefix(strings.ToLower(s), "0x")
	if len(h) != 4 {
		return 0, fmt.Errorf("%q is not four hex digits", s)
	}
	v, err := strconv.ParseUint(h, 16, 16)
	if err != nil {
		return 0, fmt.Errorf("%q is not four hex digits", s)
	}
	return uint16(v), nil
}

// Validate checks profiles one by one and together (duplicate IDs, clashing USB IDs) and returns
// every problem found, sorted by file and line; nil when all is well.
func Validate(profiles []*Profile) Problems {
	var ps Problems
	seen := map[string]*Profile{}
	usbSeen := map[string]*Profile{}
	for _, p := range profiles {
		ps = append(ps, p.validate()...)
		if p.ID != "" {
			if q, dup := seen[p.ID]; dup {
				ps = append(ps, p.problem("id", "duplicate model id %q (also in %s:%d)", p.ID, q.File, q.line("id")))
			} else {
				seen[p.ID] = p
			}
		}
		for i, u := range p.Match.USB {
			v, err1 := ParseUSBID(u.VID)
			d, err2 := ParseUSBID(u.PID)
			if err1 != nil || err2 != nil {
				continue
			}
			key := fmt.Sprintf("%04x:%04x/%s", v, d, p.Class)
			if q, dup := usbSeen[key]; dup && q != p {
				ps = append(ps, p.problem(fmt.Sprintf("match.usb[%d]", i), "USB ID %04x:%04x of class %s is also matched by %s (%s:%d); give one of them a serial path rule or remove it", v, d, p.Class, q.ID, q.File, q.line("match.usb")))
			} else {
				usbSeen[key] = p
			}
		}
	}
	ps.sort()
	if len(ps) == 0 {
		return nil
	}
	return ps
}

func (p *Profile) problem(path, format string, a ...any) Problem {
	return Problem{File: p.File, Line: p.line(path), Path: path, Msg: fmt.Sprintf(format, a...)}
}

func (p *Profile) validate() Problems {
	var ps Problems
	bad := func(path, format string, a ...any) { ps = append(ps, p.problem(path, format, a...)) }
	required := func(path, v string) bool {
		if strings.TrimSpace(v) == "" {
			bad(path, "missing")
			return false
		}
		return true
	}

	if required("id", p.ID) && !validID(p.ID) {
		bad("id", "%q must be 1..64 characters of [a-z0-9-], not starting with '-'", p.ID)
	}
	required("manufacturer", p.Manufacturer)
	required("model", p.Model)

	classOK := false
	if required("class", string(p.Class)) {
		if _, ok := classCapabilities[p.Class]; !ok {
			bad("class", "unknown class %q (want one of %s)", p.Class, names(classCapabilities))
		} else {
			classOK = true
		}
	}
	drv, driverOK := Driver(""), false
	if required("driver", string(p.Driver)) {
		if want, ok := driverClass[p.Driver]; !ok {
			bad("driver", "unknown driver %q (want one of %s)", p.Driver, names(driverClass))
		} else {
			drv, driverOK = p.Driver, true
			if classOK && want != p.Class {
				bad("driver", "driver %s drives class %s, not %s", p.Driver, want, p.Class)
			}
		}
	}
	if required("protocol", p.Protocol) && driverOK && !slices.Contains(driverProtocols[drv], p.Protocol) {
		bad("protocol", "driver %s does not speak protocol %q (want one of %s)", drv, p.Protocol, joinAny(driverProtocols[drv]))
	}

	// Capabilities.
	if len(p.Capabilities) == 0 {
		bad("capabilities", "missing: list at least one capability")
	}
	capSeen := map[string]bool{}
	for i, c := range p.Capabilities {
		at := fmt.Sprintf("capabilities[%d]", i)
		if capSeen[c] {
			bad(at, "duplicate capability %q", c)
		}
		capSeen[c] = true
		if classOK && !slices.Contains(classCapabilities[p.Class], c) {
			bad(at, "unknown capability %q for class %s (want one of %s)", c, p.Class, joinAny(classCapabilities[p.Class]))
		}
	}

	ps = append(ps, p.validateTransport(drv, driverOK)...)
	ps = append(ps, p.validateMatch()...)

	// Class-specific sections.
	isPrinter := p.Class == ClassReceiptPrinter || p.Class == ClassDocumentPrinter
	isScanner := p.Class == ClassQRScanner || p.Class == ClassDocumentScanner
	if p.Printer != nil && classOK && !isPrinter {
		bad("printer", "only printers have a printer section (class is %s)", p.Class)
	}
	if p.Scanner != nil && classOK && !isScanner {
		bad("scanner", "only scanners have a scanner section (class is %s)", p.Class)
	}
	switch p.Class {
	case ClassReceiptPrinter:
		if p.Printer == nil {
			bad("printer", "missing: a receipt printer needs paperWidthMM and columns")
			break
		}
		if p.Printer.PaperWidthMM != 58 && p.Printer.PaperWidthMM != 80 {
			bad("printer.paperWidthMM", "%d mm is not a receipt paper width (want 58 or 80)", p.Printer.PaperWidthMM)
		}
		if p.Printer.Columns < 16 || p.Printer.Columns > 80 {
			bad("printer.columns", "%d is not 16..80 characters per line", p.Printer.Columns)
		}
		if p.Printer.Media != "" {
			bad("printer.media", "receipt printers print on a roll; media is for document printers")
		}
	case ClassDocumentPrinter:
		if p.Printer == nil || p.Printer.Media == "" {
			bad("printer.media", "missing: a document printer needs a PWG media name, e.g. iso_a4_210x297mm")
		} else if !strings.Contains(p.Printer.Media, "_") {
			bad("printer.media", "%q is not a PWG media name like iso_a4_210x297mm", p.Printer.Media)
		}
	case ClassQRScanner:
		if p.Scanner == nil || p.Scanner.Suffix == "" {
			bad("scanner.suffix", "missing: want one of %s", joinAny(suffixes))
		} else if !slices.Contains(suffixes, p.Scanner.Suffix) {
			bad("scanner.suffix", "unknown suffix %q (want one of %s)", p.Scanner.Suffix, joinAny(suffixes))
		}
		if p.Scanner != nil && (p.Scanner.MaxLength < 0 || p.Scanner.MaxLength > 8192) {
			bad("scanner.maxLength", "%d is not 0..8192", p.Scanner.MaxLength)
		}
	case ClassDocumentScanner:
		if p.Scanner != nil {
			for i, r := range p.Scanner.Resolutions {
				if r < 50 || r > 4800 {
					bad(fmt.Sprintf("scanner.resolutions[%d]", i), "%d dpi is not 50..4800", r)
				}
			}
		}
	}

	// Quirks.
	for _, q := range []struct {
		key string
		d   time.Duration
	}{{"quirks.replyTimeout", p.Quirks.ReplyTimeout}, {"quirks.pollInterval", p.Quirks.PollInterval}, {"quirks.settleDelay", p.Quirks.SettleDelay}} {
		if q.d < 0 || q.d > time.Minute {
			bad(q.key, "%v is not between 0 and 1m", q.d)
		}
	}
	if p.Quirks.NoRealtimeStatus && classOK && p.Class != ClassReceiptPrinter {
		bad("quirks.noRealtimeStatus", "applies to receipt printers only")
	}
	if p.Quirks.NoRealtimeStatus && p.Has("realtime-status") {
		bad("quirks.noRealtimeStatus", "contradicts capability realtime-status")
	}

	// Firmware.
	fwSeen := map[string]bool{}
	for i, f := range p.Firmware {
		at := fmt.Sprintf("firmware[%d].version", i)
		if strings.TrimSpace(f.Version) == "" {
			bad(fmt.Sprintf("firmware[%d]", i), "version missing")
			continue
		}
		if fwSeen[f.Version] {
			bad(at, "duplicate firmware version %q", f.Version)
		}
		fwSeen[f.Version] = true
	}
	return ps
}

func (p *Profile) validateTransport(drv Driver, driverOK bool) Problems {
	var ps Problems
	bad := func(path, format string, a ...any) { ps = append(ps, p.problem(path, format, a...)) }
	t := p.Transport
	if t.Kind == "" {
		bad("transport.kind", "missing")
		return ps
	}
	known := []TransportKind{TransportSerial, TransportUSBBulk, TransportUSBPrinter, TransportIPP, TransportSANE}
	if !slices.Contains(known, t.Kind) {
		bad("transport.kind", "unknown transport %q (want one of %s)", t.Kind, joinAny(known))
		return ps
	}
	if driverOK && !slices.Contains(driverTransports[drv], t.Kind) {
		bad("transport.kind", "driver %s does not work over %s (want one of %s)", drv, t.Kind, joinAny(driverTransports[drv]))
	}
	isUSB := t.Kind == TransportUSBBulk || t.Kind == TransportUSBPrinter
	if t.Kind == TransportSerial {
		if t.Baud == 0 {
			bad("transport.baud", "missing: a serial transport needs a baud rate")
		} else if !slices.Contains(standardBauds, t.Baud) {
			bad("transport.baud", "%d is not a standard baud rate (want one of %s)", t.Baud, joinAny(standardBauds))
		}
	} else if t.Baud != 0 {
		bad("transport.baud", "only serial transports have a baud rate (transport is %s)", t.Kind)
	}
	if !isUSB && t.Interface != 0 {
		bad("transport.interface", "only USB transports have an interface number")
	}
	if t.Interface < 0 || t.Interface > 255 {
		bad("transport.interface", "%d is not 0..255", t.Interface)
	}
	e := t.Endpoints
	switch {
	case !isUSB && e != nil:
		bad("transport.endpoints", "only USB transports have endpoints (transport is %s)", t.Kind)
	case t.Kind == TransportUSBBulk && e == nil:
		bad("transport.endpoints", "missing: a usb-bulk transport needs out and in endpoints")
	case isUSB && e != nil:
		out := func(key string, v int, need bool) {
			switch {
			case v == 0 && need:
				bad("transport.endpoints."+key, "missing")
			case v == 0:
			case v&0x80 != 0:
				bad("transport.endpoints."+key, "0x%02x is an IN endpoint; %s must be OUT (0x01..0x0f)", v, key)
			case v < 0x01 || v > 0x0f:
				bad("transport.endpoints."+key, "0x%02x is not an OUT endpoint address (0x01..0x0f)", v)
			}
		}
		in := func(key string, v int, need bool) {
			switch {
			case v == 0 && need:
				bad("transport.endpoints."+key, "missing")
			case v == 0:
			case v >= 0x01 && v <= 0x0f:
				bad("transport.endpoints."+key, "0x%02x is an OUT endpoint; %s must be IN (0x81..0x8f)", v, key)
			case v < 0x81 || v > 0x8f:
				bad("transport.endpoints."+key, "0x%02x is not an IN endpoint address (0x81..0x8f)", v)
			}
		}
		bulk := t.Kind == TransportUSBBulk
		out("out", e.Out, true)
		in("in", e.In, bulk)
		out("headerOut", e.HeaderOut, false)
		in("bodyIn", e.BodyIn, false)
		if !bulk && (e.HeaderOut != 0 || e.BodyIn != 0) {
			bad("transport.endpoints", "headerOut and bodyIn are for split-frame usb-bulk readers, not %s", t.Kind)
		}
		used := map[int]string{}
		for _, x := range []struct {
			k string
			v int
		}{{"out", e.Out}, {"in", e.In}, {"headerOut", e.HeaderOut}, {"bodyIn", e.BodyIn}} {
			if x.v == 0 {
				continue
			}
			if k, dup := used[x.v]; dup {
				bad("transport.endpoints."+x.k, "endpoint 0x%02x is already used as %s", x.v, k)
			}
			used[x.v] = x.k
		}
	}
	return ps
}

func (p *Profile) validateMatch() Problems {
	var ps Problems
	bad := func(path, format string, a ...any) { ps = append(ps, p.problem(path, format, a...)) }
	m := p.Match
	if len(m.USB) == 0 && len(m.Serial) == 0 && m.Network == nil && len(m.SANE) == 0 {
		bad("match", "missing: give at least one of usb, serial, network, sane")
		return ps
	}
	for i, u := range m.USB {
		at := fmt.Sprintf("match.usb[%d]", i)
		if u.VID == "" {
			bad(at, "vid missing")
		} else if _, err := ParseUSBID(u.VID); err != nil {
			bad(at+".vid", "%v", err)
		}
		if u.PID == "" {
			bad(at, "pid missing")
		} else if _, err := ParseUSBID(u.PID); err != nil {
			bad(at+".pid", "%v", err)
		}
	}
	for i, g := range m.Serial {
		at := fmt.Sprintf("match.serial[%d]", i)
		if !strings.HasPrefix(g, "/dev/") {
			bad(at, "%q must be an absolute /dev/ path glob", g)
		} else if _, err := path.Match(g, "/dev/x"); err != nil {
			bad(at, "bad glob %q: %v", g, err)
		}
	}
	for i, g := range m.SANE {
		if _, err := path.Match(g, "x"); err != nil || g == "" {
			bad(fmt.Sprintf("match.sane[%d]", i), "bad glob %q", g)
		}
	}
	if m.Network != nil {
		if len(m.Network.Schemes) == 0 {
			bad("match.network.schemes", "missing")
		}
		for i, s := range m.Network.Schemes {
			if !slices.Contains(netSchemes, s) {
				bad(fmt.Sprintf("match.network.schemes[%d]", i), "unknown scheme %q (want one of %s)", s, joinAny(netSchemes))
			}
		}
		if _, err := path.Match(m.Network.MakeModel, "x"); err != nil {
			bad("match.network.makeModel", "bad glob %q", m.Network.MakeModel)
		}
	}
	// Rules must fit the transport.
	switch p.Transport.Kind {
	case TransportSerial:
		if len(m.Serial) == 0 {
			bad("match.serial", "missing: a serial model needs a port path glob")
		}
		if m.Network != nil || len(m.SANE) > 0 {
			bad("match", "a serial model is matched by serial paths and USB bridge IDs only")
		}
	case TransportUSBBulk, TransportUSBPrinter:
		if len(m.USB) == 0 {
			bad("match.usb", "missing: a USB model needs a vid/pid rule")
		}
		if len(m.Serial) > 0 || m.Network != nil || len(m.SANE) > 0 {
			bad("match", "a USB model is matched by usb rules only")
		}
	case TransportIPP:
		if m.Network == nil {
			bad("match.network", "missing: an IPP model needs a network rule")
		}
		if len(m.USB) > 0 || len(m.Serial) > 0 || len(m.SANE) > 0 {
			bad("match", "an IPP model is matched by network rules only")
		}
	case TransportSANE:
		if len(m.SANE) == 0 {
			bad("match.sane", "missing: a SANE model needs a device name glob")
		}
	}
	return ps
}
