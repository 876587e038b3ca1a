package docscan

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// SANEStatus is a SANE status code (SANE Standard 1.06 §4.3.7) as scanimage reports it in its
// exit status. It implements error; Unwrap maps the hardware conditions onto the package's
// sentinels.
type SANEStatus int

// SANE status codes.
const (
	SANEUnsupported  SANEStatus = 1
	SANECancelled    SANEStatus = 2
	SANEDeviceBusy   SANEStatus = 3
	SANEInval        SANEStatus = 4
	SANEEOF          SANEStatus = 5
	SANEJammed       SANEStatus = 6
	SANENoDocs       SANEStatus = 7
	SANECoverOpen    SANEStatus = 8
	SANEIOError      SANEStatus = 9
	SANENoMem        SANEStatus = 10
	SANEAccessDenied SANEStatus = 11
)

var saneNames = map[SANEStatus]string{
	SANEUnsupported: "unsupported", SANECancelled: "cancelled", SANEDeviceBusy: "device busy",
	SANEInval: "invalid argument", SANEEOF: "end of file", SANEJammed: "document feeder jammed",
	SANENoDocs: "document feeder out of documents", SANECoverOpen: "scanner cover is open",
	SANEIOError: "error during device I/O", SANENoMem: "out of memory", SANEAccessDenied: "access denied",
}

func (s SANEStatus) Error() string {
	if n, ok := saneNames[s]; ok {
		return "sane: " + n
	}
	return fmt.Sprintf("sane: status %d", int(s))
}

func (s SANEStatus) Unwrap() error {
	switch s {
	case SANEDeviceBusy:
		return ErrBusy
	case SANEJammed:
		return ErrJammed
	case SANENoDocs:
		return ErrNoDocs
	case SANECoverOpen:
		return ErrCoverOpen
	case SANEInval:
		return ErrOptions
	}
	return nil
}

// SANE scans with the scanimage command.
type SANE struct {
	Device string // SANE device name, e.g. "test" or "epson2:libusb:001:004"
	// ConfigDir becomes SANE_CONFIG_DIR. Point it at a folder whose dll.conf lists only the
	// backends in use: otherwise every backend is probed (slow, and some broadcast).
	ConfigDir string
	Binary    string        // default "scanimage"
	Timeout   time.Duration // per page; default 60 s
	// Extra arguments for backend-specific options, e.g. {"--enable-test-options"}. They come
	// from the firmware profile, never from users.
	Extra []string
}

var saneModes = map[Mode]string{ModeColor: "Color", ModeGray: "Gray", ModeLineart: "Lineart"}

// MaxADFPages bounds one feeder run.
const MaxADFPages = 200

// Scan runs scanimage once and returns the page (platen) or pages (ADF: scanimage --batch until
// the feeder is empty, at most MaxADFPages).
func (s *SANE) Scan(ctx context.Context, opt Options) ([]Page, error) {
	if err := opt.defaults(); err != nil {
		return nil, err
	}
	if s.Device == "" {
		return nil, fmt.Errorf("%w: no SANE device name", ErrNoDevice)
	}
	if !opt.ADF {
		out, err := s.run(ctx, opt, nil)
		if err != nil {
			return nil, err
		}
		p, err := decodePage(out, opt)
		if err != nil {
			return nil, err
		}
		return []Page{p}, nil
	}
	dir, err := os.MkdirTemp("", "docscan-adf-")
	if err != nil {
		return nil, fmt.Errorf("docscan: %w", err)
	}
	defer os.RemoveAll(dir)
	// scanimage ends a batch with the feeder's "out of documents" status; that is success once
	// at least one page was scanned.
	_, runErr := s.run(ctx, opt, []string{"--source", "Automatic Document Feeder",
		"--batch=" + filepath.Join(dir, "p%d.png"), "--batch-count=" + strconv.Itoa(MaxADFPages)})
	if runErr != nil && !errors.Is(runErr, ErrNoDocs) {
		return nil, runErr
	}
	var pages []Page
	for i := 1; ; i++ {
		b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("p%d.png", i)))
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("docscan: read page %d: %w", i, err)
		}
		p, err := decodePage(b, opt)
		if err != nil {
			return nil, fmt.Errorf("page %d: %w", i, err)
		}
		pages = append(pages, p)
	}
	if len(pages) == 0 {
		if runErr != nil {
			return nil, runErr
		}
		return nil, ErrNoDocs
	}
	return pages, nil
}

// Probe checks that the device is there by listing its options (scanimage -d DEV -A, a few ms
// with a private SANE config). A missing device gives an error wrapping ErrNoDevice.
func (s *SANE) Probe(ctx context.Context) error {
	if s.Device == "" {
		return fmt.Errorf("%w: no SANE device name", ErrNoDevice)
	}
	_, err := s.exec(ctx, 10*time.Second, []string{"-d", s.Device, "-A"})
	return err
}

// run runs scanimage with the options and returns its standard output.
func (s *SANE) run(ctx context.Context, opt Options, more []string) ([]byte, error) {
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	if opt.ADF {
		timeout *= MaxADFPages / 10 // a feeder run is many pages
	}
	args := append([]string{"-d", s.Device, "--format=png", "--mode", saneModes[opt.Mode], "--resolution", strconv.Itoa(opt.Resolution)}, s.Extra...)
	return s.exec(ctx, timeout, append(args, more...))
}

// exec runs scanimage with args and returns its standard output, mapping failures to errors.
func (s *SANE) exec(ctx context.Context, timeout time.Duration, args []string) ([]byte, error) {
	bin := s.Binary
	if bin == "" {
		bin = "scanimage"
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = os.Environ()
	if s.ConfigDir != "" {
		cmd.Env = append(cmd.Env, "SANE_CONFIG_DIR="+s.ConfigDir)
	}
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	msg := strings.TrimSpace(stderr.String())
	if ctx.Err() != nil {
		return nil, fmt.Errorf("docscan: scanimage %s: %w", s.Device, ctx.Err())
	}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return nil, saneError(s.Device, ee.ExitCode(), lastLine(msg))
	case err != nil:
		return nil, fmt.Errorf("docscan: run %s: %w", bin, err)
	}
	return out.Bytes(), nil
}

func lastLine(s string) string {
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// saneError interprets scanimage's exit status and message.
func saneError(dev string, code int, msg string) error {
	switch {
	case strings.Contains(msg, "open of device"):
		return fmt.Errorf("%w: %s: %s", ErrNoDevice, dev, msg)
	case strings.Contains(msg, "setting of option"):
		return fmt.Errorf("%w: %s", ErrOptions, msg)
	case code > 1 && code <= int(SANEAccessDenied):
		return fmt.Errorf("docscan: scanimage %s: %w (%s)", dev, SANEStatus(code), msg)
	}
	return fmt.Errorf("docscan: scanimage %s exited %d: %s", dev, code, msg)
}
