package localapi

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/kioskfleet/kioskfleet/agent/devices"
	"github.com/kioskfleet/kioskfleet/drivers/escpos"
	"github.com/kioskfleet/kioskfleet/drivers/profile"
)

// paperOutReasons are the printer reasons that mean "no paper" (IPP media-empty and
// media-needed, ESC/POS paper-out).
var paperOutReasons = []string{"media-empty", "media-needed", "paper-out"}

func hasAny(reasons []string, want ...string) bool {
	return slices.ContainsFunc(reasons, func(r string) bool { return slices.Contains(want, r) })
}

// job follows one print command: it turns the printer's progress into events, and the outcome
// into a completion.
type job struct {
	r       *request
	device  string
	noMedia bool // Printer.NoMediaEvent sent
}

// progress emits Printer.JobProgressEvent, and Printer.NoMediaEvent (XFS4IoT Printer, "media
// must be inserted for the command to proceed") when the printer runs out of paper mid-job.
func (j *job) progress(p devices.JobProgress) {
	j.r.emit("Printer.JobProgressEvent", struct {
		Device string `json:"device"`
		devices.JobProgress
	}{j.device, p})
	j.paperOut(p.Reasons)
}

func (j *job) paperOut(reasons []string) {
	if !j.noMedia && hasAny(reasons, paperOutReasons...) {
		j.noMedia = true
		j.r.emit("Printer.NoMediaEvent", devicePayload{j.device})
	}
}

// result maps a job's outcome to its completion: success with the job's facts, or the error
// code of XFS4IoT Printer (paperOut, paperJammed, tonerOut), deviceNotReady for a printer that
// refused the job for another reason, hardwareError for a job that failed.
func (j *job) result(out devices.JobOutcome, err error) (any, error) {
	if err != nil {
		return nil, deviceErr(j.device, err)
	}
	if out.State == devices.JobCompleted {
		done := map[string]any{"device": j.device, "state": out.State, "millis": out.Millis}
		if out.JobID != 0 {
			done["jobId"] = out.JobID
		}
		return done, nil
	}
	detail := map[string]any{"device": j.device, "state": out.State, "reasons": nonNil(out.Reasons)}
	if out.JobID != 0 {
		detail["jobId"] = out.JobID
	}
	stopped := "the job was not printed"
	if out.State != devices.JobRefused {
		stopped = "the job stopped"
	}
	errorCode := func(code, what string) *Error {
		return &Error{Code: CodeCommandErrorCode, ErrorCode: code, Detail: detail,
			Description: fmt.Sprintf("printer %s %s: %s", j.device, what, stopped)}
	}
	switch {
	case hasAny(out.Reasons, paperOutReasons...):
		j.paperOut(out.Reasons)
		return nil, errorCode("paperOut", "is out of paper")
	case hasAny(out.Reasons, "media-jam"):
		return nil, errorCode("paperJammed", "has a paper jam")
	case hasAny(out.Reasons, "toner-empty", "marker-supply-empty"):
		return nil, errorCode("tonerOut", "is out of toner")
	case out.State == devices.JobCanceled:
		return nil, &Error{Code: CodeCanceled, Detail: detail, Description: fmt.Sprintf("the job on printer %s was canceled", j.device)}
	case out.State == devices.JobRefused:
		return nil, &Error{Code: CodeDeviceNotReady, Detail: detail,
			Description: fmt.Sprintf("printer %s is not ready (%s): %s", j.device, strings.Join(out.Reasons, ", "), stopped)}
	}
	return nil, &Error{Code: CodeHardwareError, Detail: detail,
		Description: fmt.Sprintf("the job on printer %s failed (%s): %s", j.device, strings.Join(out.Reasons, ", "), out.Error)}
}

// Printer.PrintNative {device?, data, format?, name?}: print a PDF (data, base64) on an A4
// printer, with Printer.JobProgressEvent as it prints.
func printerPrintNative(ctx context.Context, r *request) (any, error) {
	p, err := decode[struct {
		Device string `json:"device"`
		Data   []byte `json:"data"` // base64 in JSON
		Format string `json:"format"`
		Name   string `json:"name"`
	}](r)
	if err != nil {
		return nil, err
	}
	switch {
	case p.Format != "" && p.Format != "application/pdf":
		return nil, fail(CodeUnsupportedData, "format %q: documents are printed as application/pdf", clipString(p.Format, 40))
	case !bytes.HasPrefix(p.Data, []byte("%PDF-")):
		return nil, fail(CodeInvalidData, "data is not a PDF document (base64 of a file starting %%PDF-)")
	case utf8.RuneCountInString(p.Name) > 100:
		return nil, fail(CodeInvalidData, "name is longer than 100 characters")
	}
	if p.Name == "" {
		p.Name = "kiosk document"
	}
	device, release, err := r.take(p.Device, "A4 printer", profile.ClassDocumentPrinter)
	if err != nil {
		return nil, err
	}
	defer release()
	j := &job{r: r, device: device}
	return j.result(r.s.srv.cfg.Devices.PrintDocument(ctx, device, devices.Document{Name: p.Name, Format: "application/pdf", Data: p.Data}, j.progress))
}

// Printer.PrintReceipt {device?, lines, qrCode?}: print lines of text and a QR code on a receipt
// printer and cut (a kiosk extension of XFS4IoT Printer: receipts are composed by the agent, never
// raw printer commands from an app).
func printerPrintReceipt(ctx context.Context, r *request) (any, error) {
	p, err := decode[struct {
		Device string   `json:"device"`
		Lines  []string `json:"lines"`
		QRCode string   `json:"qrCode"`
	}](r)
	if err != nil {
		return nil, err
	}
	switch {
	case len(p.Lines) == 0 && p.QRCode == "":
		return nil, fail(CodeInvalidData, "a receipt needs lines or a qrCode")
	case len(p.Lines) > 200:
		return nil, fail(CodeInvalidData, "%d lines: a receipt has at most 200", len(p.Lines))
	case len(p.QRCode) > escpos.MaxQRData:
		return nil, fail(CodeInvalidData, "qrCode of %d bytes: at most %d", len(p.QRCode), escpos.MaxQRData)
	}
	for i, l := range p.Lines {
		if utf8.RuneCountInString(l) > 200 || strings.ContainsFunc(l, func(c rune) bool { return unicode.IsControl(c) && c != '\t' }) {
			return nil, fail(CodeInvalidData, "line %d: at most 200 characters, and no control characters", i+1)
		}
	}
	device, release, err := r.take(p.Device, "receipt printer", profile.ClassReceiptPrinter)
	if err != nil {
		return nil, err
	}
	defer release()
	j := &job{r: r, device: device}
	return j.result(r.s.srv.cfg.Devices.PrintReceipt(ctx, device, devices.Receipt{Lines: p.Lines, QR: p.QRCode}))
}
