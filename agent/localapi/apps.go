package localapi

import (
	"net/url"
	"slices"
	"strings"
)

// Services an app's manifest may ask for. Common (status, capabilities, cancel, acquire, release)
// is every app's; the others each open one interface of commands.
const (
	ServiceCommon        = "Common"
	ServiceIdCard        = "IdCard"        // IdCard.Read: masked holder fields
	ServicePrinter       = "Printer"       // Printer.PrintNative (A4, IPP), Printer.PrintReceipt (ESC/POS)
	ServiceScanner       = "Scanner"       // Scanner.Scan: pages as one PDF
	ServiceBarcodeReader = "BarcodeReader" // BarcodeReader.Read: a scanned QR code
	ServiceLogin         = "Login"         // Login.IdCard: read a card and log the citizen in (the shell's)
)

// ShellApp is the app ID of the kiosk shell.
const ShellApp = "kiosk-shell"

// Manifest is what a kiosk app is and may do at the kiosk: the web origins it is served from
// and the services it asks for. The app catalog fills manifests; until then only the shell's
// exists (ShellManifest).
type Manifest struct {
	App      string   `json:"app"`
	Name     string   `json:"name,omitempty"`
	Origins  []string `json:"origins"`  // e.g. http://127.0.0.1:8090
	Services []string `json:"services"` // IdCard, Printer, Scanner, BarcodeReader, Login
}

// Allows reports whether the manifest asks for service (Common is everyone's).
func (m *Manifest) Allows(service string) bool {
	return service == ServiceCommon || slices.Contains(m.Services, service)
}

// ShellManifest is the kiosk shell's built-in manifest: every service, from origins.
func ShellManifest(origins ...string) Manifest {
	return Manifest{App: ShellApp, Name: "kiosk shell", Origins: origins,
		Services: []string{ServiceIdCard, ServicePrinter, ServiceScanner, ServiceBarcodeReader, ServiceLogin}}
}

// Apps finds the registered kiosk app served from a web origin (scheme://host[:port], as a
// browser sends it in the Origin header). The app catalog implements it.
type Apps interface {
	AppForOrigin(origin string) (Manifest, bool)
}

// StaticApps is a fixed list of manifests.
type StaticApps []Manifest

var _ Apps = StaticApps(nil)

// AppForOrigin implements Apps.
func (s StaticApps) AppForOrigin(origin string) (Manifest, bool) {
	for _, m := range s {
		if slices.Contains(m.Origins, origin) {
			return m, true
		}
	}
	return Manifest{}, false
}

// normalOrigin lower-cases an origin's scheme and host as RFC 6454 §6.1 serialises it, or
// returns "" if s is not a tuple origin (scheme://host[:port] and nothing else; "null" is not).
func normalOrigin(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return ""
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return ""
	}
	return strings.ToLower(u.Scheme + "://" + u.Host)
}
