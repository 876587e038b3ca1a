// Package docscan drives document scanners in two ways: through SANE's scanimage command (any
// SANE backend; tests use the "test" backend) and as an eSCL client over HTTP (AirScan:
// ScannerCapabilities, ScannerStatus, ScanJobs, NextDocument). Both return PNG (or JPEG, for
// eSCL scanners that only offer it) pages with their resolution and colour mode; PDF wraps pages
// into one PDF document.
package docscan

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // eSCL scanners may return JPEG pages
	_ "image/png"  // SANE pages

	"github.com/go-pdf/fpdf"
)

var (
	// ErrOptions: the requested scan options are invalid or not offered by the scanner.
	ErrOptions = errors.New("docscan: invalid scan options")
	// ErrBadImage: the scanner returned something that is not a decodable image.
	ErrBadImage = errors.New("docscan: malformed image")
	// ErrNoDevice: the scanner is not there.
	ErrNoDevice = errors.New("docscan: scanner not found")
	// ErrBusy: the scanner is busy with another job.
	ErrBusy = errors.New("docscan: scanner busy")
	// ErrJammed: the document feeder jammed.
	ErrJammed = errors.New("docscan: document feeder jammed")
	// ErrNoDocs: the document feeder is empty.
	ErrNoDocs = errors.New("docscan: no document in feeder")
	// ErrCoverOpen: the scanner cover is open.
	ErrCoverOpen = errors.New("docscan: scanner cover open")
	// ErrBadResponse: an eSCL reply is malformed.
	ErrBadResponse = errors.New("docscan: malformed eSCL response")
)

// Mode is a colour mode.
type Mode string

// Colour modes.
const (
	ModeColor   Mode = "color"
	ModeGray    Mode = "gray"
	ModeLineart Mode = "lineart"
)

// Options select how to scan. Zero values mean 150 dpi colour from the platen.
type Options struct {
	Resolution int  // dpi
	Mode       Mode // color, gray or lineart
	ADF        bool // feed from the document feeder (all pages) instead of the platen
}

func (o *Options) defaults() error {
	if o.Resolution == 0 {
		o.Resolution = 150
	}
	if o.Mode == "" {
		o.Mode = ModeColor
	}
	if o.Resolution < 1 || o.Resolution > 9600 {
		return fmt.Errorf("%w: resolution %d dpi", ErrOptions, o.Resolution)
	}
	switch o.Mode {
	case ModeColor, ModeGray, ModeLineart:
	default:
		return fmt.Errorf("%w: mode %q (color, gray or lineart)", ErrOptions, o.Mode)
	}
	return nil
}

// Page is one scanned page.
type Page struct {
	Data          []byte // encoded image
	Format        string // image/png or image/jpeg
	Width, Height int    // pixels
	Resolution    int    // dpi
	Mode          Mode
}

// Scanner scans pages.
type Scanner interface {
	Scan(ctx context.Context, opt Options) ([]Page, error)
}

var (
	_ Scanner = (*SANE)(nil)
	_ Scanner = (*ESCL)(nil)
)

// decodePage checks that data is an image and fills in its size and format.
func decodePage(data []byte, opt Options) (Page, error) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return Page{}, fmt.Errorf("%w: %w", ErrBadImage, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return Page{}, fmt.Errorf("%w: %dx%d pixels", ErrBadImage, cfg.Width, cfg.Height)
	}
	return Page{Data: data, Format: "image/" + format, Width: cfg.Width, Height: cfg.Height, Resolution: opt.Resolution, Mode: opt.Mode}, nil
}

// PDF wraps pages into one PDF, each page sized to its scan (pixels / dpi).
func PDF(pages []Page) ([]byte, error) {
	if len(pages) == 0 {
		return nil, fmt.Errorf("%w: no pages", ErrOptions)
	}
	f := fpdf.New("P", "mm", "A4", "")
	f.SetCreator("kioskfleet docscan", false)
	for i, p := range pages {
		if p.Resolution <= 0 || p.Width <= 0 || p.Height <= 0 {
			return nil, fmt.Errorf("%w: page %d has no size or resolution", ErrBadImage, i+1)
		}
		w := float64(p.Width) / float64(p.Resolution) * 25.4
		h := float64(p.Height) / float64(p.Resolution) * 25.4
		typ := "PNG"
		if p.Format == "image/jpeg" {
			typ = "JPG"
		}
		name := fmt.Sprintf("page%d", i)
		f.RegisterImageOptionsReader(name, fpdf.ImageOptions{ImageType: typ}, bytes.NewReader(p.Data))
		f.AddPageFormat("P", fpdf.SizeType{Wd: w, Ht: h})
		f.ImageOptions(name, 0, 0, w, h, false, fpdf.ImageOptions{ImageType: typ}, 0, "")
		if err := f.Error(); err != nil {
			return nil, fmt.Errorf("docscan: pdf page %d: %w", i+1, err)
		}
	}
	var b bytes.Buffer
	if err := f.Output(&b); err != nil {
		return nil, fmt.Errorf("docscan: pdf: %w", err)
	}
	return b.Bytes(), nil
}
