package ipp_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/OpenPrinting/goipp"
	"go.uber.org/goleak"

	"github.com/kioskfleet/kioskfleet/drivers/ipp"
	"github.com/kioskfleet/kioskfleet/drivers/ipp/ipptest"
	"github.com/kioskfleet/kioskfleet/pkg/polltest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func client(t *testing.T, p *ipptest.Printer) *ipp.Client {
	t.Helper()
	c, err := ipp.New(p.URI, &http.Client{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c.PollInterval = 100 * time.Millisecond
	return c
}

func ctx(t *testing.T, d time.Duration) context.Context {
	c, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return c
}

func testPage(t *testing.T) []byte {
	t.Helper()
	pdf, err := ipp.TestPagePDF(ipp.TestPage{KioskID: "kiosk-0042", Printer: "kiosk-a4", Time: time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC), Lines: []string{"hall: Pudong service centre"}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(pdf, []byte("%PDF-")) {
		t.Fatalf("not a PDF: %q", pdf[:min(16, len(pdf))])
	}
	return pdf
}

func TestPrintPDFLandsByteIdentical(t *testing.T) {
	pr := ipptest.Start(t, ipptest.Options{Command: ipptest.Quick})
	c := client(t, pr)
	cx := ctx(t, 30*time.Second)
	p, err := c.PrinterAttributes(cx)
	if err != nil {
		t.Fatalf("%v\n%s", err, pr.Log())
	}
	if p.State != ipp.PrinterIdle || p.Ready() != nil || p.Name != "kiosk-a4" {
		t.Errorf("printer = %+v", p)
	}
	hasPDF := false
	for _, f := range p.Formats {
		hasPDF = hasPDF || f == "application/pdf"
	}
	if !hasPDF || len(p.MediaReady) == 0 {
		t.Errorf("formats %v, media-ready %v", p.Formats, p.MediaReady)
	}
	pdf := testPage(t)
	job, err := c.Print(cx, pdf, ipp.JobOptions{Name: "test page"})
	if err != nil {
		t.Fatalf("print: %v\n%s", err, pr.Log())
	}
	if job.State != ipp.JobCompleted || job.ID <= 0 {
		t.Fatalf("job = %+v", job)
	}
	files, err := pr.JobFiles("*.pdf")
	if err != nil || len(files) != 1 {
		t.Fatalf("spool files %v, %v", files, err)
	}
	got, err := os.ReadFile(files[0])
	if err != nil || !bytes.Equal(got, pdf) {
		t.Fatalf("spooled file differs from the PDF sent (%d vs %d bytes), %v", len(got), len(pdf), err)
	}
}

func TestMediaEmptyFault(t *testing.T) {
	pr := ipptest.Start(t, ipptest.Options{Command: ipptest.FaultMediaEmpty})
	c := client(t, pr)
	cx := ctx(t, 30*time.Second)
	_, err := c.Print(cx, testPage(t), ipp.JobOptions{})
	var je *ipp.JobError
	if !errors.As(err, &je) || !errors.Is(err, ipp.ErrJobFailed) || !errors.Is(err, ipp.ReasonMediaEmpty) {
		t.Fatalf("print with media-empty fault: %v\n%s", err, pr.Log())
	}
	if je.Job.State != ipp.JobAborted {
		t.Errorf("job state %s, want aborted", je.Job.State)
	}
	p, err := c.PrinterAttributes(cx)
	if err != nil || !p.Has(ipp.ReasonMediaEmpty) {
		t.Fatalf("printer reasons %v, %v", p, err)
	}
	files, _ := pr.JobFiles("*")
	_, err = c.Print(cx, testPage(t), ipp.JobOptions{})
	var nr *ipp.NotReadyError
	if !errors.As(err, &nr) || !errors.Is(err, ipp.ErrNotReady) || !errors.Is(err, ipp.ReasonMediaEmpty) {
		t.Fatalf("second print: %v", err)
	}
	if after, _ := pr.JobFiles("*"); len(after) != len(files) {
		t.Errorf("a refused job reached the printer: %v -> %v", files, after)
	}
}

func TestCancelJob(t *testing.T) {
	// A job "prints" for 2 s: time to cancel it.
	pr := ipptest.Start(t, ipptest.Options{Command: "sleep 2\n"})
	c := client(t, pr)
	cx := ctx(t, 30*time.Second)
	id, err := c.PrintJob(cx, testPage(t), ipp.JobOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Cancel it while it prints. ippeveprinter marks a job cancelled while it is still pending,
	// but its job thread may already be starting, and it then prints it and reports it completed
	// (seen once in CI on a loaded machine).
	polltest.Until(t, 10*time.Second, "the job processing", func() bool {
		j, err := c.JobAttributes(cx, id)
		return err == nil && j.State == ipp.JobProcessing
	})
	if err := c.CancelJob(cx, id); err != nil {
		t.Fatal(err)
	}
	j, err := c.WaitJob(cx, id)
	if !errors.Is(err, ipp.ErrJobFailed) || j.State != ipp.JobCanceled {
		t.Fatalf("after cancel: %+v, %v", j, err)
	}
	// Cancelling a finished job is refused with an IPP status code.
	err = c.CancelJob(cx, id)
	var sc ipp.StatusCode
	if !errors.As(err, &sc) {
		t.Fatalf("cancel of canceled job: %v", err)
	}
	// A deadline while waiting cancels the job on the printer.
	id, err = c.PrintJob(cx, testPage(t), ipp.JobOptions{})
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(cx, 300*time.Millisecond)
	defer cancel()
	if _, err := c.WaitJob(short, id); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait with short deadline: %v", err)
	}
	// The printer may take a moment to reach its stop point.
	if j, err := c.WaitJob(cx, id); !errors.Is(err, ipp.ErrJobFailed) || j.State != ipp.JobCanceled {
		t.Fatalf("job after deadline: %+v, %v", j, err)
	}
}

func TestUnsupportedFormatRefused(t *testing.T) {
	pr := ipptest.Start(t, ipptest.Options{Command: ipptest.Quick, Formats: "image/pwg-raster"})
	c := client(t, pr)
	if _, err := c.Print(ctx(t, 20*time.Second), testPage(t), ipp.JobOptions{}); !errors.Is(err, ipp.ErrFormat) {
		t.Fatalf("print PDF to raster-only printer: %v", err)
	}
}

func TestPrinterGone(t *testing.T) {
	c, err := ipp.New("ipp://127.0.0.1:1/ipp/print", &http.Client{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PrinterAttributes(ctx(t, 2*time.Second)); err == nil {
		t.Fatal("no error from a closed port")
	}
	for _, bad := range []string{"lpd://x/q", "ipp:///nohost", "::"} {
		if _, err := ipp.New(bad, nil); err == nil {
			t.Errorf("New(%q) accepted", bad)
		}
	}
}

func TestParseReason(t *testing.T) {
	for kw, want := range map[string]ipp.StateReason{
		"media-empty":       {ipp.ReasonMediaEmpty, ipp.SeverityError},
		"media-empty-error": {ipp.ReasonMediaEmpty, ipp.SeverityError},
		"toner-low-warning": {ipp.ReasonTonerLow, ipp.SeverityWarning},
		"media-jam-report":  {ipp.ReasonMediaJam, ipp.SeverityReport},
		"com.vendor-thing":  {"com.vendor-thing", ipp.SeverityError},
	} {
		r, s := ipp.ParseReason(kw)
		if (ipp.StateReason{r, s}) != want {
			t.Errorf("%s: %v %v", kw, r, s)
		}
	}
	if ipp.ReasonTonerLow.Blocking() || !ipp.ReasonMediaJam.Blocking() {
		t.Error("blocking classification wrong")
	}
}

// response builds an encoded IPP response.
func response(status goipp.Status, id uint32, printer goipp.Attributes) []byte {
	m := goipp.NewResponse(goipp.DefaultVersion, status, id)
	m.Operation.Add(goipp.MakeAttribute("attributes-charset", goipp.TagCharset, goipp.String("utf-8")))
	m.Printer = printer
	b, _ := m.EncodeBytes()
	return b
}

func TestDecodeResponse(t *testing.T) {
	if _, err := ipp.DecodeResponse([]byte{1, 1, 0}, 0); !errors.Is(err, ipp.ErrBadResponse) {
		t.Errorf("truncated: %v", err)
	}
	if _, err := ipp.DecodeResponse(response(goipp.StatusOk, 7, nil), 8); !errors.Is(err, ipp.ErrBadResponse) {
		t.Errorf("wrong request id: %v", err)
	}
	_, err := ipp.DecodeResponse(response(goipp.StatusErrorNotFound, 1, nil), 1)
	var sc ipp.StatusCode
	if !errors.As(err, &sc) || goipp.Status(sc) != goipp.StatusErrorNotFound || !strings.Contains(err.Error(), "not-found") {
		t.Errorf("error status: %v", err)
	}
	m, err := ipp.DecodeResponse(response(goipp.StatusOk, 1, goipp.Attributes{
		goipp.MakeAttribute("printer-state", goipp.TagEnum, goipp.Integer(5)),
		goipp.MakeAttr("printer-state-reasons", goipp.TagKeyword, goipp.String("media-jam-error"), goipp.String("toner-low-warning")),
	}), 1)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ipp.ParsePrinter(m)
	if err != nil || p.State != ipp.PrinterStopped || !errors.Is(p.Ready(), ipp.ReasonMediaJam) || errors.Is(p.Ready(), ipp.ReasonTonerLow) {
		t.Fatalf("printer %+v, %v, ready %v", p, err, p.Ready())
	}
	m, _ = ipp.DecodeResponse(response(goipp.StatusOk, 1, goipp.Attributes{
		goipp.MakeAttribute("printer-state", goipp.TagKeyword, goipp.String("idle")),
	}), 1)
	if _, err := ipp.ParsePrinter(m); !errors.Is(err, ipp.ErrBadResponse) {
		t.Errorf("wrong type accepted: %v", err)
	}
}

func FuzzDecodePrinter(f *testing.F) {
	f.Add(response(goipp.StatusOk, 1, goipp.Attributes{
		goipp.MakeAttribute("printer-state", goipp.TagEnum, goipp.Integer(3)),
		goipp.MakeAttr("printer-state-reasons", goipp.TagKeyword, goipp.String("none")),
		goipp.MakeAttr("document-format-supported", goipp.TagMimeType, goipp.String("application/pdf")),
	}))
	f.Add(response(goipp.StatusErrorBadRequest, 1, nil))
	f.Add([]byte{2, 0, 0, 0, 0, 0, 0, 1, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ipp.DecodeResponse(b, 0)
		if err != nil {
			return
		}
		if p, err := ipp.ParsePrinter(m); err == nil {
			_ = p.Ready()
		}
		_, _ = ipp.ParseJob(m)
	})
}

// Print with a progress function reports the job's pages as the printer counts them and a
// printer that runs out of paper mid-job, then the job's end.
func TestPrintProgress(t *testing.T) {
	pr := ipptest.Start(t, ipptest.Options{Command: "echo 'ATTR: job-impressions-completed=1' >&2\necho 'STATE: +media-empty' >&2\nsleep 0.5\n" +
		"echo 'STATE: -media-empty' >&2\necho 'ATTR: job-impressions-completed=2' >&2\nsleep 0.5\nexit 0\n"})
	c := client(t, pr)
	var seen []ipp.Job
	job, err := c.Print(ctx(t, 30*time.Second), testPage(t), ipp.JobOptions{Progress: func(j *ipp.Job) { seen = append(seen, *j) }})
	if err != nil || job.ImpressionsCompleted != 2 {
		t.Fatalf("print: %+v, %v\n%s", job, err, pr.Log())
	}
	var pages []int
	mediaEmpty := false
	for _, j := range seen {
		if len(pages) == 0 || pages[len(pages)-1] != j.ImpressionsCompleted {
			pages = append(pages, j.ImpressionsCompleted)
		}
		for _, r := range j.PrinterReasons {
			mediaEmpty = mediaEmpty || r.Reason == ipp.ReasonMediaEmpty
		}
	}
	if last := seen[len(seen)-1]; last.State != ipp.JobCompleted || !mediaEmpty || pages[len(pages)-1] != 2 {
		t.Fatalf("progress seen: %+v", seen)
	}
}
