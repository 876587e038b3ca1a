package ipp

import (
	"bytes"
	"fmt"
	"time"

	"github.com/go-pdf/fpdf"
)

// TestPage is what a printer test page shows.
type TestPage struct {
	KioskID string
	Printer string
	Time    time.Time
	Lines   []string // further facts, one per line
}

// TestPagePDF renders p as a one-page A4 PDF. Text outside Windows-1252 prints as '?': the
// page uses the PDF core fonts so that no font file is needed.
func TestPagePDF(p TestPage) ([]byte, error) {
	if p.Time.IsZero() {
		p.Time = time.Now()
	}
	f := fpdf.New("P", "mm", "A4", "")
	f.SetCreationDate(p.Time)
	f.SetModificationDate(p.Time)
	f.SetTitle("kioskfleet test page", true)
	tr := f.UnicodeTranslatorFromDescriptor("")
	f.AddPage()
	f.SetFont("Helvetica", "B", 20)
	f.CellFormat(0, 12, "kioskfleet test page", "B", 1, "L", false, 0, "")
	f.Ln(4)
	f.SetFont("Helvetica", "", 12)
	row := func(k, v string) {
		f.SetFont("Helvetica", "B", 12)
		f.CellFormat(40, 8, k, "", 0, "L", false, 0, "")
		f.SetFont("Helvetica", "", 12)
		f.CellFormat(0, 8, tr(v), "", 1, "L", false, 0, "")
	}
	row("Kiosk", p.KioskID)
	row("Printer", p.Printer)
	row("Time", p.Time.UTC().Format(time.RFC3339))
	for _, l := range p.Lines {
		f.MultiCell(0, 7, tr(l), "", "L", false)
	}
	f.Ln(6)
	// Alignment grid: a 10 mm frame and a 100 mm ruler to check scaling.
	f.Rect(10, 10, 190, 277, "D")
	y := f.GetY() + 4
	f.Line(20, y, 120, y)
	for i := 0; i <= 10; i++ {
		x := 20 + float64(i)*10
		f.Line(x, y-2, x, y+2)
	}
	f.SetY(y + 4)
	f.SetFont("Helvetica", "", 9)
	f.CellFormat(0, 5, "ruler: 100 mm", "", 1, "L", false, 0, "")
	var b bytes.Buffer
	if err := f.Output(&b); err != nil {
		return nil, fmt.Errorf("ipp: render test page: %w", err)
	}
	return b.Bytes(), nil
}
