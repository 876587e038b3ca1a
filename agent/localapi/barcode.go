package localapi

import (
	"context"

	"github.com/kioskfleet/kioskfleet/drivers/profile"
)

// BarcodeReader.Read {device?}: wait for a code to be scanned (XFS4IoT BarcodeReader.Read) and
// return it as text. Only a code scanned while the command waits is returned; codes may be login
// tokens and are never logged.
func barcodeRead(ctx context.Context, r *request) (any, error) {
	device, release, err := r.takeNamed("QR code scanner", profile.ClassQRScanner)
	if err != nil {
		return nil, err
	}
	defer release()
	code, err := r.s.srv.cfg.Devices.NextScan(ctx, device)
	if err != nil {
		return nil, deviceErr(device, err)
	}
	type output struct {
		Symbology string `json:"symbology"` // the scanner does not say: unknown
		Text      string `json:"text"`
	}
	return map[string]any{"device": device, "readOutput": []output{{"unknown", code}}}, nil
}
