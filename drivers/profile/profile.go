// Package profile describes supported peripheral models declaratively: which driver, transport and
// settings fit a model, how to recognise it when it is attached, and its known quirks. Profiles
// are YAML files (firmware-profiles/*.yaml, schema in docs/firmware-profiles.md) loaded strictly:
// unknown keys, missing fields and inconsistent settings are all reported at once, each with its
// file and line. Match picks the profile for a discovered device.
package profile

import "time"

// Class is what a peripheral is for.
type Class string

// Device classes.
const (
	ClassIDReader        Class = "id-reader"        // resident ID card reader (GA 467)
	ClassReceiptPrinter  Class = "receipt-printer"  // ESC/POS roll printer
	ClassDocumentPrinter Class = "document-printer" // A4 printer (IPP)
	ClassQRScanner       Class = "qr-scanner"       // QR/barcode scanner
	ClassDocumentScanner Class = "document-scanner" // flatbed/ADF scanner (SANE)
)

// Driver names the driver package that speaks to a model.
type Driver string

// Drivers.
const (
	DriverIDCard  Driver = "idcard"  // drivers/idcard
	DriverESCPOS  Driver = "escpos"  // drivers/escpos (serial, or USB printer class via drivers/usbprinter)
	DriverIPP     Driver = "ipp"     // drivers/ipp
	DriverQRScan  Driver = "qrscan"  // drivers/qrscan
	DriverDocScan Driver = "docscan" // drivers/docscan
)

// TransportKind is the wire a model is reached over.
type TransportKind string

// Transports.
const (
	TransportSerial     TransportKind = "serial"      // serial port or USB-serial bridge (CH340, CP2102)
	TransportUSBBulk    TransportKind = "usb-bulk"    // vendor-specific USB bulk interface
	TransportUSBPrinter TransportKind = "usb-printer" // USB printer class (07/01)
	TransportIPP        TransportKind = "ipp"         // IPP over HTTP
	TransportSANE       TransportKind = "sane"        // a SANE backend device
)

// Profile is one supported model.
type Profile struct {
	ID           string         `yaml:"id"` // unique, [a-z0-9-]
	Manufacturer string         `yaml:"manufacturer"`
	Model        string         `yaml:"model"`
	Class        Class          `yaml:"class"`
	Driver       Driver         `yaml:"driver"`
	Protocol     string         `yaml:"protocol"` // protocol variant the driver speaks, e.g. ga467
	Match        Rules          `yaml:"match"`
	Transport    Transport      `yaml:"transport"`
	Capabilities []string       `yaml:"capabilities"`
	Printer      *Printer       `yaml:"printer,omitempty"` // printers only
	Scanner      *Scanner       `yaml:"scanner,omitempty"` // scanners only
	Quirks       Quirks         `yaml:"quirks,omitempty"`
	Firmware     []Firmware     `yaml:"firmware,omitempty"` // known firmware versions
	File         string         `yaml:"-"`                  // where the profile was loaded from
	lines        map[string]int // key path -> line, for problems found after decoding
}

// Rules say how an attached device is recognised. A profile matches when any rule matches.
type Rules struct {
	USB     []USBMatch    `yaml:"usb,omitempty"`     // USB vendor/product (also of a USB-serial bridge)
	Serial  []string      `yaml:"serial,omitempty"`  // serial port path globs (path.Match syntax)
	Network *NetworkMatch `yaml:"network,omitempty"` // a configured network device
	SANE    []string      `yaml:"sane,omitempty"`    // SANE device name globs, e.g. "test:*"
}

// USBMatch is a USB vendor and product ID, four hex digits each ("1a86", "0x7523").
type USBMatch struct {
	VID string `yaml:"vid" json:"vid"`
	PID string `yaml:"pid" json:"pid"`
}

// NetworkMatch matches a configured network device by URI scheme and, when known, the make and
// model it reports (IPP printer-make-and-model), as a glob.
type NetworkMatch struct {
	Schemes   []string `yaml:"schemes"`
	MakeModel string   `yaml:"makeModel,omitempty"`
}

// Transport holds how the wire is set up.
type Transport struct {
	Kind      TransportKind `yaml:"kind"`
	Baud      int           `yaml:"baud,omitempty"`      // serial only
	Interface int           `yaml:"interface,omitempty"` // USB interface number
	Endpoints *Endpoints    `yaml:"endpoints,omitempty"` // USB only
}

// Endpoints is a USB endpoint layout. Addresses carry the direction bit (0x81 is IN 1).
// Some GA 467 USB readers take the 7-byte frame header on HeaderOut and the rest on Out, and
// answer the header on In and the rest on BodyIn; others use Out and In alone.
type Endpoints struct {
	Out       int `yaml:"out"`
	In        int `yaml:"in,omitempty"`
	HeaderOut int `yaml:"headerOut,omitempty"`
	BodyIn    int `yaml:"bodyIn,omitempty"`
}

// Printer holds printer settings.
type Printer struct {
	PaperWidthMM int    `yaml:"paperWidthMM,omitempty"` // receipt printers: 58 or 80
	Columns      int    `yaml:"columns,omitempty"`      // receipt printers: characters per line, font A
	Media        string `yaml:"media,omitempty"`        // document printers: PWG media name
}

// Scanner holds scanner settings.
type Scanner struct {
	Suffix      string `yaml:"suffix,omitempty"`      // QR scanners: cr, lf, crlf or none
	MaxLength   int    `yaml:"maxLength,omitempty"`   // QR scanners: longest code accepted
	Resolutions []int  `yaml:"resolutions,omitempty"` // document scanners: DPI offered
}

// Quirks are per-model deviations the drivers and the device manager honour. Zero values mean
// the driver's defaults.
type Quirks struct {
	ReplyTimeout     time.Duration `yaml:"replyTimeout,omitempty"`     // longest wait for a reply
	PollInterval     time.Duration `yaml:"pollInterval,omitempty"`     // status polling period
	SettleDelay      time.Duration `yaml:"settleDelay,omitempty"`      // wait after open (bridges that reset)
	ResetOnOpen      bool          `yaml:"resetOnOpen,omitempty"`      // send a reset right after open
	NoRealtimeStatus bool          `yaml:"noRealtimeStatus,omitempty"` // ESC/POS: ignores DLE EOT
}

// Firmware is a known firmware version.
type Firmware struct {
	Version string `yaml:"version"`
	Notes   string `yaml:"notes,omitempty"`
}

// Has reports whether p lists capability c.
func (p *Profile) Has(c string) bool {
	for _, x := range p.Capabilities {
		if x == c {
			return true
		}
	}
	return false
}
