package docscan

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// XML namespaces of eSCL (Mopria eSCL Technical Specification 2.x).
const (
	NSPWG  = "http://www.pwg.org/schemas/2010/12/sm"
	NSScan = "http://schemas.hp.com/imaging/escl/2011/05/03"
)

// Size limits on what an eSCL scanner may send.
const (
	MaxXML   = 1 << 20
	MaxImage = 64 << 20
)

// HTTPError is an unexpected HTTP status from an eSCL scanner. 503 unwraps to ErrBusy and 409
// (settings the scanner refuses) to ErrOptions.
type HTTPError struct {
	Op   string
	Code int
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("docscan: eSCL %s: http %d %s", e.Op, e.Code, http.StatusText(e.Code))
}

func (e *HTTPError) Unwrap() error {
	switch e.Code {
	case http.StatusServiceUnavailable:
		return ErrBusy
	case http.StatusConflict, http.StatusBadRequest:
		return ErrOptions
	}
	return nil
}

// ESCL is an eSCL scanner client.
type ESCL struct {
	Base         string        // e.g. http://192.0.2.7/eSCL (no trailing slash)
	HTTP         *http.Client  // nil means http.DefaultClient; give it a timeout
	PollInterval time.Duration // wait between NextDocument tries while the scanner is busy; default 500 ms
}

// Capabilities is the part of ScannerCapabilities the driver uses.
type Capabilities struct {
	Version      string
	MakeAndModel string
	Platen, ADF  *InputCaps // nil when the scanner has no such input
}

// InputCaps are the settings an input source offers.
type InputCaps struct {
	Modes       []Mode   // colour modes we know how to ask for
	Formats     []string // document formats
	Resolutions []int    // discrete resolutions (X = Y)
	MaxWidth    int      // in 1/300 inch
	MaxHeight   int
}

// Status is ScannerStatus.
type Status struct {
	State    string // Idle, Processing, Testing, Stopped, Down
	ADFState string // e.g. ScannerAdfLoaded, ScannerAdfEmpty, ScannerAdfJam
}

// Err maps the scanner's state to an error: nil when it can scan.
func (s *Status) Err() error {
	switch s.ADFState {
	case "ScannerAdfJam", "ScannerAdfMispick":
		return fmt.Errorf("%w (%s)", ErrJammed, s.ADFState)
	case "ScannerAdfHatchOpen":
		return fmt.Errorf("%w (%s)", ErrCoverOpen, s.ADFState)
	}
	switch s.State {
	case "Idle":
		return nil
	case "Processing", "Testing":
		return fmt.Errorf("%w (state %s)", ErrBusy, s.State)
	}
	return fmt.Errorf("docscan: scanner %s", strings.ToLower(s.State))
}

var esclModes = map[Mode]string{ModeColor: "RGB24", ModeGray: "Grayscale8", ModeLineart: "BlackAndWhite1"}

type xmlInputCaps struct {
	MaxWidth  int `xml:"MaxWidth"`
	MaxHeight int `xml:"MaxHeight"`
	Profiles  []struct {
		ColorModes  []string `xml:"ColorModes>ColorMode"`
		Formats     []string `xml:"DocumentFormats>DocumentFormat"`
		FormatsExt  []string `xml:"DocumentFormats>DocumentFormatExt"`
		Resolutions []struct {
			X int `xml:"XResolution"`
			Y int `xml:"YResolution"`
		} `xml:"SupportedResolutions>DiscreteResolutions>DiscreteResolution"`
	} `xml:"SettingProfiles>SettingProfile"`
}

type xmlCaps struct {
	XMLName      xml.Name      `xml:"ScannerCapabilities"`
	Version      string        `xml:"Version"`
	MakeAndModel string        `xml:"MakeAndModel"`
	Platen       *xmlInputCaps `xml:"Platen>PlatenInputCaps"`
	ADF          *xmlInputCaps `xml:"Adf>AdfSimplexInputCaps"`
}

func (x *xmlInputCaps) caps() *InputCaps {
	if x == nil {
		return nil
	}
	c := &InputCaps{MaxWidth: x.MaxWidth, MaxHeight: x.MaxHeight}
	for _, p := range x.Profiles {
		for m, name := range esclModes {
			if slices.Contains(p.ColorModes, name) && !slices.Contains(c.Modes, m) {
				c.Modes = append(c.Modes, m)
			}
		}
		for _, f := range append(p.Formats, p.FormatsExt...) {
			if !slices.Contains(c.Formats, f) {
				c.Formats = append(c.Formats, f)
			}
		}
		for _, r := range p.Resolutions {
			if r.X == r.Y && r.X > 0 && !slices.Contains(c.Resolutions, r.X) {
				c.Resolutions = append(c.Resolutions, r.X)
			}
		}
	}
	slices.Sort(c.Modes)
	slices.Sort(c.Resolutions)
	return c
}

// ParseCapabilities decodes a ScannerCapabilities document.
func ParseCapabilities(b []byte) (*Capabilities, error) {
	var x xmlCaps
	if err := xml.Unmarshal(b, &x); err != nil {
		return nil, fmt.Errorf("%w: ScannerCapabilities: %w", ErrBadResponse, err)
	}
	c := &Capabilities{Version: x.Version, MakeAndModel: x.MakeAndModel, Platen: x.Platen.caps(), ADF: x.ADF.caps()}
	if c.Platen == nil && c.ADF == nil {
		return nil, fmt.Errorf("%w: ScannerCapabilities lists no input source", ErrBadResponse)
	}
	return c, nil
}

// ParseStatus decodes a ScannerStatus document.
func ParseStatus(b []byte) (*Status, error) {
	var x struct {
		XMLName  xml.Name `xml:"ScannerStatus"`
		State    string   `xml:"State"`
		ADFState string   `xml:"AdfState"`
	}
	if err := xml.Unmarshal(b, &x); err != nil {
		return nil, fmt.Errorf("%w: ScannerStatus: %w", ErrBadResponse, err)
	}
	if x.State == "" {
		return nil, fmt.Errorf("%w: ScannerStatus without State", ErrBadResponse)
	}
	return &Status{State: x.State, ADFState: x.ADFState}, nil
}

func (c *ESCL) client() *http.Client {
	if c.HTTP == nil {
		return http.DefaultClient
	}
	return c.HTTP
}

// get fetches url and returns the body (up to limit) for a 200, or an *HTTPError.
func (c *ESCL) get(ctx context.Context, op, u string, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("docscan: eSCL %s: %w", op, err)
	}
	resp, err := c.client().Do(req)
	if err != nil {
		return nil, fmt.Errorf("docscan: eSCL %s: %w", op, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, MaxXML))
		return nil, &HTTPError{Op: op, Code: resp.StatusCode}
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("docscan: eSCL %s: read: %w", op, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: %s larger than %d bytes", ErrBadResponse, op, limit)
	}
	return b, nil
}

// Capabilities fetches GET /ScannerCapabilities.
func (c *ESCL) Capabilities(ctx context.Context) (*Capabilities, error) {
	b, err := c.get(ctx, "ScannerCapabilities", c.Base+"/ScannerCapabilities", MaxXML)
	if err != nil {
		return nil, err
	}
	return ParseCapabilities(b)
}

// Status fetches GET /ScannerStatus.
func (c *ESCL) Status(ctx context.Context) (*Status, error) {
	b, err := c.get(ctx, "ScannerStatus", c.Base+"/ScannerStatus", MaxXML)
	if err != nil {
		return nil, err
	}
	return ParseStatus(b)
}

// settingsXML is a ScanSettings request; every value put in it is validated first.
func settingsXML(opt Options, source, format string, w, h int) []byte {
	return []byte(fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<scan:ScanSettings xmlns:scan="%s" xmlns:pwg="%s">
  <pwg:Version>2.0</pwg:Version>
  <pwg:ScanRegions>
    <pwg:ScanRegion>
      <pwg:ContentRegionUnits>escl:ThreeHundredthsOfInches</pwg:ContentRegionUnits>
      <pwg:XOffset>0</pwg:XOffset>
      <pwg:YOffset>0</pwg:YOffset>
      <pwg:Width>%d</pwg:Width>
      <pwg:Height>%d</pwg:Height>
    </pwg:ScanRegion>
  </pwg:ScanRegions>
  <pwg:InputSource>%s</pwg:InputSource>
  <scan:ColorMode>%s</scan:ColorMode>
  <scan:XResolution>%d</scan:XResolution>
  <scan:YResolution>%d</scan:YResolution>
  <pwg:DocumentFormat>%s</pwg:DocumentFormat>
  <scan:DocumentFormatExt>%s</scan:DocumentFormatExt>
</scan:ScanSettings>
`, NSScan, NSPWG, w, h, source, esclModes[opt.Mode], opt.Resolution, opt.Resolution, format, format))
}

// Scan checks the scanner's capabilities and state, posts a ScanJob and fetches its pages with
// NextDocument until the scanner says there are no more (404). A platen scan returns one page.
// On error or cancellation the job is deleted on the scanner.
func (c *ESCL) Scan(ctx context.Context, opt Options) ([]Page, error) {
	if err := opt.defaults(); err != nil {
		return nil, err
	}
	caps, err := c.Capabilities(ctx)
	if err != nil {
		return nil, err
	}
	in, source := caps.Platen, "Platen"
	if opt.ADF {
		in, source = caps.ADF, "Feeder"
	}
	if in == nil {
		return nil, fmt.Errorf("%w: scanner has no %s", ErrOptions, strings.ToLower(source))
	}
	if !slices.Contains(in.Modes, opt.Mode) {
		return nil, fmt.Errorf("%w: mode %s not offered (%v)", ErrOptions, opt.Mode, in.Modes)
	}
	if len(in.Resolutions) > 0 && !slices.Contains(in.Resolutions, opt.Resolution) {
		return nil, fmt.Errorf("%w: %d dpi not offered (%v)", ErrOptions, opt.Resolution, in.Resolutions)
	}
	format := "image/png"
	if !slices.Contains(in.Formats, format) {
		if format = "image/jpeg"; !slices.Contains(in.Formats, format) {
			return nil, fmt.Errorf("%w: scanner offers neither PNG nor JPEG (%v)", ErrOptions, in.Formats)
		}
	}
	st, err := c.Status(ctx)
	if err != nil {
		return nil, err
	}
	if err := st.Err(); err != nil {
		return nil, err
	}
	if opt.ADF && st.ADFState == "ScannerAdfEmpty" {
		return nil, ErrNoDocs
	}

	job, err := c.postJob(ctx, settingsXML(opt, source, format, in.MaxWidth, in.MaxHeight))
	if err != nil {
		return nil, err
	}
	pages, err := c.fetch(ctx, job, opt)
	if err != nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if req, rerr := http.NewRequestWithContext(dctx, http.MethodDelete, job, nil); rerr == nil {
			if resp, derr := c.client().Do(req); derr == nil {
				resp.Body.Close()
			}
		}
		return nil, err
	}
	return pages, nil
}

// postJob posts ScanSettings and returns the absolute job URL from Location.
func (c *ESCL) postJob(ctx context.Context, settings []byte) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Base+"/ScanJobs", bytes.NewReader(settings))
	if err != nil {
		return "", fmt.Errorf("docscan: eSCL ScanJobs: %w", err)
	}
	req.Header.Set("Content-Type", "text/xml")
	resp, err := c.client().Do(req)
	if err != nil {
		return "", fmt.Errorf("docscan: eSCL ScanJobs: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, MaxXML))
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return "", &HTTPError{Op: "ScanJobs", Code: resp.StatusCode}
	}
	loc, err := resp.Location()
	if err != nil {
		return "", fmt.Errorf("%w: ScanJobs 201 without a usable Location: %w", ErrBadResponse, err)
	}
	base, _ := url.Parse(c.Base)
	if base == nil || loc.Host != base.Host || loc.Scheme != base.Scheme {
		return "", fmt.Errorf("%w: job Location %s is not on the scanner %s", ErrBadResponse, loc, c.Base)
	}
	return strings.TrimSuffix(loc.String(), "/"), nil
}

func (c *ESCL) fetch(ctx context.Context, job string, opt Options) ([]Page, error) {
	poll := c.PollInterval
	if poll <= 0 {
		poll = 500 * time.Millisecond
	}
	var pages []Page
	for {
		b, err := c.get(ctx, "NextDocument", job+"/NextDocument", MaxImage)
		var he *HTTPError
		switch {
		case err == nil:
			p, err := decodePage(b, opt)
			if err != nil {
				return nil, err
			}
			pages = append(pages, p)
			if !opt.ADF {
				return pages, nil
			}
			continue
		case errors.As(err, &he) && he.Code == http.StatusNotFound && len(pages) > 0:
			return pages, nil // no more documents
		case errors.As(err, &he) && he.Code == http.StatusServiceUnavailable:
			// still scanning: try again
		default:
			// Ask the scanner why (a jam shows in AdfState).
			if st, serr := c.Status(ctx); serr == nil && st.Err() != nil && !errors.Is(st.Err(), ErrBusy) {
				return nil, fmt.Errorf("docscan: eSCL job failed: %w", st.Err())
			}
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("docscan: eSCL job: %w", ctx.Err())
		case <-time.After(poll):
		}
	}
}
