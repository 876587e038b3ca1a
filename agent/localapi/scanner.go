package localapi

import (
	"context"
	"errors"

	"github.com/kioskfleet/kioskfleet/drivers/docscan"
	"github.com/kioskfleet/kioskfleet/drivers/profile"
)

// Scanner.Scan {device?, resolution?, mode?, adf?}: scan a document (from the feeder, all its
// pages) and return the pages as one PDF (base64). The pages are held only until the PDF is made;
// nothing is written to disk.
func scannerScan(ctx context.Context, r *request) (any, error) {
	p, err := decode[struct {
		Device     string       `json:"device"`
		Resolution int          `json:"resolution"` // dpi; default 150
		Mode       docscan.Mode `json:"mode"`       // color (default), gray, lineart
		ADF        bool         `json:"adf"`
	}](r)
	if err != nil {
		return nil, err
	}
	device, release, err := r.take(p.Device, "document scanner", profile.ClassDocumentScanner)
	if err != nil {
		return nil, err
	}
	defer release()
	pages, err := r.s.srv.cfg.Devices.ScanDocument(ctx, device, docscan.Options{Resolution: p.Resolution, Mode: p.Mode, ADF: p.ADF})
	defer func() {
		for _, pg := range pages {
			clear(pg.Data)
		}
	}()
	detail := map[string]any{"device": device}
	switch {
	case errors.Is(err, docscan.ErrOptions):
		return nil, fail(CodeInvalidData, "%v", err)
	case errors.Is(err, docscan.ErrJammed):
		return nil, &Error{Code: CodeCommandErrorCode, ErrorCode: "mediaJammed", Detail: detail, Description: "the document feeder of scanner " + device + " is jammed"}
	case errors.Is(err, docscan.ErrNoDocs):
		return nil, &Error{Code: CodeCommandErrorCode, ErrorCode: "noMedia", Detail: detail, Description: "there is no document in the feeder of scanner " + device}
	case errors.Is(err, docscan.ErrCoverOpen):
		return nil, &Error{Code: CodeDeviceNotReady, Detail: detail, Description: "the cover of scanner " + device + " is open"}
	case err != nil:
		return nil, deviceErr(device, err)
	}
	pdf, err := docscan.PDF(pages)
	if err != nil {
		return nil, fail(CodeInternalError, "scanner %s: %v", device, err)
	}
	return map[string]any{"device": device, "pages": len(pages), "pdf": pdf, "bytes": len(pdf)}, nil
}
