package api

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/bundle"
)

// The app catalog (hub/catalog, docs/api.md "Catalog"): departments publish apps, in versions,
// reviewed and then published, listed and delisted per channel. Channels read what is listed
// on them without a token (PublicPrefix).

// Channels an app is published on.
const (
	ChannelWeb         = "web"          // the web portal (政务服务网)
	ChannelMobile      = "mobile"       // the mobile app
	ChannelMiniProgram = "mini-program" // the mini-program (小程序)
	ChannelKiosk       = "kiosk"        // self-service kiosks
)

// Channels lists every channel.
var Channels = []string{ChannelWeb, ChannelMobile, ChannelMiniProgram, ChannelKiosk}

// App kinds, each published on the channels of KindChannels.
const (
	KindKioskBundle  = "kiosk-bundle"  // a static web app with a manifest, signed (TUF), run by the kiosk shell
	KindWebLink      = "web-link"      // a page of a department's web site
	KindMiniProgram  = "mini-program"  // a page of the mini-program
	KindMobileModule = "mobile-module" // a module of the mobile app
)

// KindChannels says on which channels an app of each kind may be published.
var KindChannels = map[string][]string{
	KindKioskBundle:  {ChannelKiosk},
	KindWebLink:      {ChannelWeb, ChannelMobile, ChannelKiosk},
	KindMiniProgram:  {ChannelMiniProgram},
	KindMobileModule: {ChannelMobile},
}

// States of an app version (docs/catalog.md has the table of transitions). A version is draft,
// submitted, approved, rejected or retired; an approved version is, on each channel, approved
// (not yet published there), published, listed or delisted.
const (
	StateDraft     = "draft"
	StateSubmitted = "submitted"
	StateApproved  = "approved"
	StateRejected  = "rejected"
	StatePublished = "published"
	StateListed    = "listed"
	StateDelisted  = "delisted"
	StateRetired   = "retired"
)

// Department is a government department that owns apps and guides.
type Department struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"createdAt,omitzero"`
}

// Departments is the body of GET /api/v1/departments.
type Departments struct {
	Departments []Department `json:"departments"`
}

// App is an app of the catalog; the detail (GET /api/v1/apps/{id}) has its versions.
type App struct {
	ID          string    `json:"id"`
	Department  string    `json:"department"`
	Kind        string    `json:"kind"`
	Name        string    `json:"name"`
	Description string    `json:"description,omitempty"`
	CreatedAt   time.Time `json:"createdAt,omitzero"`
	CreatedBy   string    `json:"createdBy,omitempty"`
	// Channels says, in lists, what each channel the app reached has of it: the version listed
	// there, else the one last changed there.
	Channels map[string]ChannelVersion `json:"channels,omitempty"`
	Versions []AppVersion              `json:"versions,omitempty"`
}

// ChannelVersion is a version of an app and its state on a channel.
type ChannelVersion struct {
	Version string `json:"version"`
	State   string `json:"state"`
}

// Apps is the body of GET /api/v1/apps?department=&kind=.
type Apps struct {
	Apps []App `json:"apps"`
}

// CreateApp is the body of POST /api/v1/apps.
type CreateApp struct {
	ID          string `json:"id"` // 3-64 of a-z 0-9 '-'
	Department  string `json:"department"`
	Kind        string `json:"kind"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
}

// AppSpec is what an app version is. Which fields apply depends on the app's kind.
type AppSpec struct {
	// Entry: the https URL of a web link; the page path of a mini-program page
	// (pages/tax/cert); the module ID of a mobile module; the start page inside a kiosk bundle
	// (default index.html).
	Entry string `json:"entry,omitempty"`
	// Kiosk bundles: the local-API services the app uses (IdCard, Printer, Scanner,
	// BarcodeReader), the peripheral classes it cannot work without (document-printer,
	// receipt-printer, id-reader, qr-scanner, document-scanner; a kiosk whose peripheral of such
	// a class is missing or faulted is not offered the app), and the lowest agent version that
	// runs it. A bundle's manifest sets them when it is uploaded.
	Services    []string `json:"services,omitempty"`
	Peripherals []string `json:"peripherals,omitempty"`
	MinAgent    string   `json:"minAgentVersion,omitempty"`
	// Bundle is the uploaded kiosk bundle (set by the hub).
	Bundle *BundleInfo `json:"bundle,omitempty"`
}

// BundleInfo describes an uploaded kiosk bundle: a gzip'd tar of a static web app with a
// manifest.json at its root (BundleManifest).
type BundleInfo struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	Target string `json:"target"` // its TUF target name: bundles/APP/VERSION.tar.gz
}

// GuideRef names one version of a guide.
type GuideRef struct {
	ID      string `json:"id"`
	Version int64  `json:"version"`
}

// AppVersion is one version of an app, its state, and its state on each channel it reached.
type AppVersion struct {
	App       string            `json:"app"`
	Version   string            `json:"version"` // semantic version: 1.4.0
	State     string            `json:"state"`
	Spec      AppSpec           `json:"spec"`
	Guide     *GuideRef         `json:"guide,omitempty"` // published with the app
	Channels  map[string]string `json:"channels"`        // channel -> state there
	CreatedAt time.Time         `json:"createdAt"`
	CreatedBy string            `json:"createdBy,omitempty"`
	UpdatedAt time.Time         `json:"updatedAt"`
}

// CreateVersion is the body of POST /api/v1/apps/{id}/versions and, without Version, of PUT
// /api/v1/apps/{id}/versions/{version} (a draft's description).
type CreateVersion struct {
	Version string    `json:"version,omitempty"`
	Spec    AppSpec   `json:"spec"`
	Guide   *GuideRef `json:"guide,omitempty"`
}

// Transition is the body of POST /api/v1/apps/{id}/versions/{version}/transitions: move the
// version (or, with Channel, the version on that channel) to state To, with a reason where the
// transition asks for one (rejected, delisted, retired).
type Transition struct {
	To      string `json:"to"`
	Channel string `json:"channel,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// AuditEntry is one change of state of an app version: who, when, from, to and why.
type AuditEntry struct {
	N       int64     `json:"n"`
	App     string    `json:"app"`
	Version string    `json:"version"`
	Channel string    `json:"channel,omitempty"`
	From    string    `json:"from"` // "" for a creation
	To      string    `json:"to"`
	Actor   string    `json:"actor"`
	Reason  string    `json:"reason,omitempty"`
	At      time.Time `json:"at"`
}

// Audit is the body of GET /api/v1/apps/{id}/audit and the answer to a transition (the entries
// it wrote).
type Audit struct {
	Entries []AuditEntry `json:"entries"`
}

// PublicPrefix is where the channels read the catalog and the guides without a token.
const PublicPrefix = Prefix + "/public"

// KioskScheme is the HTTP authorization scheme of a kiosk's own requests (Client.Kiosk).
const KioskScheme = "Kiosk"

// ChannelCatalog is the body of GET /api/v1/public/catalog/{channel}: every app listed on the
// channel, in ID order, in its listed version.
type ChannelCatalog struct {
	Channel    string         `json:"channel"`
	Generation int64          `json:"generation"` // grows with every change of the catalog
	Apps       []CatalogEntry `json:"apps"`
}

// CatalogEntry is an app as a channel shows it.
type CatalogEntry struct {
	App            string      `json:"app"`
	Name           string      `json:"name"`
	Description    string      `json:"description,omitempty"`
	Kind           string      `json:"kind"`
	Department     string      `json:"department"`
	DepartmentName string      `json:"departmentName"`
	Version        string      `json:"version"`
	Entry          string      `json:"entry,omitempty"`
	Services       []string    `json:"services,omitempty"`
	Peripherals    []string    `json:"peripherals,omitempty"`
	MinAgent       string      `json:"minAgentVersion,omitempty"`
	Bundle         *BundleInfo `json:"bundle,omitempty"`
	Guide          *GuideRef   `json:"guide,omitempty"`
}

// Peripheral classes a kiosk app may require (the classes of drivers/profile), and the local
// device API services a kiosk bundle may ask for (docs/localapi.md; Login is the kiosk shell's
// alone): a bundle's manifest names them (pkg/bundle).
var (
	PeripheralClasses = bundle.PeripheralClasses
	BundleServices    = bundle.Services
)

// Offered says whether a kiosk with peripherals p can offer an app that requires the peripheral
// classes required: each needs a connected device of that class that is ok or degraded (it
// works, but needs attention soon). If not, reason says what is missing or faulted.
func Offered(required []string, p Peripherals) (ok bool, reason string) {
	for _, class := range required {
		var faulted []string
		found := false
		for _, d := range p.Devices {
			if d.Class != class {
				continue
			}
			if d.Connected && (d.Status == PeripheralOK || d.Status == PeripheralDegraded) {
				found = true
				break
			}
			why := string(d.Status)
			if !d.Connected {
				why = "disconnected"
			}
			if len(d.Reasons) > 0 {
				why += ": " + strings.Join(d.Reasons, ", ")
			}
			faulted = append(faulted, d.ID+" "+why)
		}
		switch {
		case found:
		case len(faulted) > 0:
			return false, class + " not working (" + strings.Join(faulted, "; ") + ")"
		default:
			return false, "no " + class
		}
	}
	return true, ""
}

// Departments lists the catalog's departments.
func (c *Client) Departments(ctx context.Context) ([]Department, error) {
	var out Departments
	return out.Departments, c.Do(ctx, http.MethodGet, Prefix+"/departments", nil, &out)
}

// CreateDepartment creates a department (admin).
func (c *Client) CreateDepartment(ctx context.Context, d Department) (Department, error) {
	var out Department
	return out, c.Do(ctx, http.MethodPost, Prefix+"/departments", d, &out)
}

// AppQuery filters ListApps; zero fields match all.
type AppQuery struct{ Department, Kind string }

// ListApps lists the apps the caller may see.
func (c *Client) ListApps(ctx context.Context, q AppQuery) ([]App, error) {
	v := url.Values{}
	for k, s := range map[string]string{"department": q.Department, "kind": q.Kind} {
		if s != "" {
			v.Set(k, s)
		}
	}
	p := Prefix + "/apps"
	if len(v) > 0 {
		p += "?" + v.Encode()
	}
	var out Apps
	return out.Apps, c.Do(ctx, http.MethodGet, p, nil, &out)
}

// CreateApp creates an app.
func (c *Client) CreateApp(ctx context.Context, req CreateApp) (App, error) {
	var out App
	return out, c.Do(ctx, http.MethodPost, Prefix+"/apps", req, &out)
}

// App returns an app with its versions.
func (c *Client) App(ctx context.Context, id string) (App, error) {
	var out App
	return out, c.Do(ctx, http.MethodGet, appPath(id), nil, &out)
}

// CreateVersion creates a version of an app, in draft.
func (c *Client) CreateVersion(ctx context.Context, appID string, req CreateVersion) (AppVersion, error) {
	var out AppVersion
	return out, c.Do(ctx, http.MethodPost, appPath(appID)+"/versions", req, &out)
}

// AppVersion returns one version of an app.
func (c *Client) AppVersion(ctx context.Context, appID, version string) (AppVersion, error) {
	var out AppVersion
	return out, c.Do(ctx, http.MethodGet, versionPath(appID, version), nil, &out)
}

// UpdateVersion replaces a draft's description.
func (c *Client) UpdateVersion(ctx context.Context, appID, version string, req CreateVersion) (AppVersion, error) {
	var out AppVersion
	return out, c.Do(ctx, http.MethodPut, versionPath(appID, version), req, &out)
}

// Transition moves a version (or the version on a channel) to another state and returns the
// audit entries written.
func (c *Client) Transition(ctx context.Context, appID, version string, req Transition) ([]AuditEntry, error) {
	var out Audit
	return out.Entries, c.Do(ctx, http.MethodPost, versionPath(appID, version)+"/transitions", req, &out)
}

// AppAudit returns an app's audit trail, or a version's (version not ""), the latest limit
// entries (0: all), oldest first.
func (c *Client) AppAudit(ctx context.Context, appID, version string, limit int) ([]AuditEntry, error) {
	v := url.Values{}
	if version != "" {
		v.Set("version", version)
	}
	if limit > 0 {
		v.Set("limit", strconv.Itoa(limit))
	}
	p := appPath(appID) + "/audit"
	if len(v) > 0 {
		p += "?" + v.Encode()
	}
	var out Audit
	return out.Entries, c.Do(ctx, http.MethodGet, p, nil, &out)
}

// ChannelCatalog returns what is listed on a channel (no token needed).
func (c *Client) ChannelCatalog(ctx context.Context, channel string) (ChannelCatalog, error) {
	var out ChannelCatalog
	return out, c.Do(ctx, http.MethodGet, PublicPrefix+"/catalog/"+url.PathEscape(channel), nil, &out)
}

func appPath(id string) string { return Prefix + "/apps/" + url.PathEscape(id) }

func versionPath(appID, version string) string {
	return appPath(appID) + "/versions/" + url.PathEscape(version)
}

// KioskCatalog is the body of GET /api/v1/devices/{id}/catalog: the apps listed on the
// kiosk channel that this kiosk can offer now — each needs peripherals the kiosk has, connected
// and working (Offered) — and those withheld, with why. An app withheld comes back as soon as
// the kiosk reports the peripheral fixed.
type KioskCatalog struct {
	Kiosk      string        `json:"kiosk"`
	Generation int64         `json:"generation"`    // of the catalog
	PeriphAt   time.Time     `json:"peripheralsAt"` // when the kiosk last reported its peripherals
	Apps       []KioskApp    `json:"apps"`          // offered, by ID
	Withheld   []WithheldApp `json:"withheld"`      // by ID
}

// KioskApp is an app offered at a kiosk.
type KioskApp struct {
	CatalogEntry
	Installed string `json:"installed,omitempty"` // the version the kiosk reports running (kiosk bundles)
}

// WithheldApp is an app not offered at a kiosk, and why.
type WithheldApp struct {
	App    string `json:"app"`
	Reason string `json:"reason"` // e.g. "document-printer not working (a4 fault: media-empty)"
}

// KioskCatalog returns what a kiosk can offer now: for staff in their region scope, and for the
// kiosk itself (Client.Kiosk).
func (c *Client) KioskCatalog(ctx context.Context, deviceID string) (KioskCatalog, error) {
	var out KioskCatalog
	return out, c.Do(ctx, http.MethodGet, Prefix+"/devices/"+url.PathEscape(deviceID)+"/catalog", nil, &out)
}
