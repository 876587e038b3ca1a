// Package devices is the kiosk agent's device manager. Given the device configuration
// (profile.DeviceConfig) and the firmware profiles, it opens each peripheral's driver, polls its
// status with deadlines, notices unplug and replug (reopening with backoff), and reports the
// inventory and every status change through a Reporter as a "peripherals" record
// (wire.Peripherals), with "alert" records for faults. It also prints (test pages, documents,
// receipts), reads ID cards and codes and scans documents on behalf of the agent, keeping
// identity data out of logs and records.
package devices

import (
	"context"
	"errors"
	"log/slog"

	"github.com/kioskfleet/kioskfleet/drivers/docscan"
	"github.com/kioskfleet/kioskfleet/drivers/profile"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

var (
	// ErrUnknownDevice is returned for a device ID that is not configured.
	ErrUnknownDevice = errors.New("devices: unknown device")
	// ErrNotConnected is returned when the device is not open right now.
	ErrNotConnected = errors.New("devices: device not connected")
	// ErrUnsupported is returned when the device cannot do what was asked (e.g. a test page on a
	// scanner).
	ErrUnsupported = errors.New("devices: not supported by this device")
	// ErrNoDriver is returned when no Opener is registered for a profile's driver.
	ErrNoDriver = errors.New("devices: no driver")
)

// Reporter takes the records the manager produces; the agent wires it to its outbox.
type Reporter interface {
	Report(ctx context.Context, kind string, class wire.Class, body any) error
}

// Device is an open peripheral as the manager sees it. Drivers are adapted to it in drivers.go.
// Status must honour ctx's deadline. An error wrapping transport.ErrClosed means the device went
// away (unplugged); the manager then closes it and reopens it with backoff.
type Device interface {
	Status(ctx context.Context) (Status, error)
	Close() error
}

// TestPagePrinter is the optional capability of printers.
type TestPagePrinter interface {
	PrintTestPage(ctx context.Context, page TestPage) (JobOutcome, error)
}

// DocumentPrinter is the optional capability of A4 printers: print doc and follow the job to its
// end, calling progress (when not nil) with each change of the job. A printer that refuses the job
// because of its state gives an outcome with State refused, not an error.
type DocumentPrinter interface {
	PrintDocument(ctx context.Context, doc Document, progress func(JobProgress)) (JobOutcome, error)
}

// ReceiptPrinter is the optional capability of receipt printers.
type ReceiptPrinter interface {
	PrintReceipt(ctx context.Context, r Receipt) (JobOutcome, error)
}

// CardReader is the optional capability of ID card readers. The Identity it returns is handed to
// the caller of Manager.ReadCard and wiped afterwards.
type CardReader interface {
	ReadCard(ctx context.Context) (Identity, error)
}

// CodeReader is the optional capability of QR/barcode scanners: NextCode waits for the next code
// scanned. Codes may be login tokens: they are never logged or reported.
type CodeReader interface {
	NextCode(ctx context.Context) (string, error)
}

// DocumentScanner is the optional capability of document scanners.
type DocumentScanner interface {
	ScanDocument(ctx context.Context, opt docscan.Options) ([]docscan.Page, error)
}

// Identity is ID-card data as a driver returns it. The manager never looks inside: it passes it
// to the caller and calls Wipe when the caller is done. Implementations mask it in String.
type Identity interface {
	Wipe()
}

// Opener opens the driver for a configured device and its profile. log is the device's logger.
type Opener func(ctx context.Context, e profile.DeviceEntry, p *profile.Profile, log *slog.Logger) (Device, error)

// State is a device's overall condition, as the peripherals body reports it.
type State = wire.PeripheralState

// States. Unknown is only seen before the first open attempt has finished.
const (
	StateOK       = wire.PeripheralOK
	StateDegraded = wire.PeripheralDegraded // works, but needs attention soon (paper near end)
	StateFault    = wire.PeripheralFault    // cannot serve citizens (paper out, cover open, unplugged)
	StateUnknown  = wire.PeripheralUnknown
)

// Reasons the manager itself gives; drivers add their own (paper-out, cover-open, media-empty...).
const (
	ReasonDisconnected = "disconnected" // not open: unplugged, or opening failed
	ReasonNoResponse   = "no-response"  // open, but status queries time out
	ReasonNoProfile    = "no-profile"   // no profile fits the configured device
	ReasonNoDriver     = "no-driver"    // the profile's driver is not built into this agent
)

// Consumable is paper, toner, ribbon...: Level is ok, low, empty or unknown.
type Consumable = wire.Consumable

// Consumable levels.
const (
	LevelOK      = wire.LevelOK
	LevelLow     = wire.LevelLow
	LevelEmpty   = wire.LevelEmpty
	LevelUnknown = wire.LevelUnknown
)

// Status is what a driver says about its device.
type Status struct {
	State       State
	Reasons     []string
	Consumables []Consumable
}

// TestPage is what a printer test page shows.
type TestPage struct {
	Title string   // e.g. "kioskfleet test page"
	Lines []string // kiosk and device facts
}

// Document is a document to print.
type Document struct {
	Name   string // job name
	Format string // MIME type; default application/pdf
	Data   []byte
}

// Receipt is what a receipt shows: lines of text, then a QR code if QR is not empty, then a cut.
type Receipt struct {
	Lines []string
	QR    string
}

// JobProgress is a print job's state while it is followed.
type JobProgress struct {
	JobID      int      `json:"jobId"`
	State      string   `json:"state"`             // pending, processing, processing-stopped, completed, aborted, canceled
	Pages      int      `json:"pages"`             // impressions printed so far
	TotalPages int      `json:"totalPages"`        // 0 when the printer does not know
	Reasons    []string `json:"reasons,omitempty"` // the printer's state reasons now (media-empty)
}

// JobOutcome is the result of a print job, as the hub's print-test-page command reports it.
type JobOutcome struct {
	Device  string   `json:"device"`
	State   string   `json:"state"`             // completed, aborted, canceled, refused
	JobID   int      `json:"jobId,omitempty"`   // IPP job-id
	Reasons []string `json:"reasons,omitempty"` // printer or job state reasons
	Error   string   `json:"error,omitempty"`
	Millis  int64    `json:"millis"` // time from submission to outcome
}

// Job outcome states.
const (
	JobCompleted = "completed"
	JobAborted   = "aborted"
	JobCanceled  = "canceled"
	JobRefused   = "refused" // not started: the printer was not ready (reasons say why)
)
