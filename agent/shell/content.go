package shell

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/go-pdf/fpdf"
)

// Catalog says which services the home screen offers: BuiltinCatalog the shell's own four,
// AppCatalog those and the apps of the hub's catalog (hub/catalog). A Catalog with a
// Run(ctx context.Context) method is run by Shell.Run.
type Catalog interface {
	Services(ctx context.Context, st State) []Service
	Source() string // builtin, or where the list came from
}

// Service is a tile of the home screen.
type Service struct {
	ID         string   `json:"id"` // print, scan, cases, guide (the shell's own screens), or an app's ID
	NeedsLogin bool     `json:"needsLogin"`
	Available  bool     `json:"available"`
	Reason     string   `json:"reason,omitempty"` // why not: login, offline, not-connected, peripheral, not-installed
	Detail     string   `json:"detail,omitempty"` // the reason in words (which peripheral, and what is wrong with it)
	Demo       bool     `json:"demo"`             // shows built-in sample content, not real data
	App        *AppTile `json:"app,omitempty"`    // an app of the catalog (AppCatalog)
}

// BuiltinCatalog is the shell's own services.
type BuiltinCatalog struct{}

// Services implements Catalog.
func (BuiltinCatalog) Services(_ context.Context, st State) []Service {
	citizen := st.Session != nil && st.Session.ACR != ACRGuest
	out := []Service{
		{ID: "print", Available: true},
		{ID: "scan", Available: true},
		{ID: "cases", NeedsLogin: true, Available: citizen, Demo: true},
		{ID: "guide", Available: true, Demo: true},
	}
	for i := range out {
		switch {
		case out[i].NeedsLogin && !citizen:
			out[i].Reason = "login"
		case out[i].ID == "cases" && slices.Contains(st.Unavailable, "cases"):
			out[i].Available, out[i].Reason = false, "offline"
		}
	}
	return out
}

// Source implements Catalog.
func (BuiltinCatalog) Source() string { return "builtin" }

// GuideSource is a Catalog that also has the service guides of its apps (AppCatalog): the guide
// screen shows them instead of the demo guides.
type GuideSource interface {
	Guides(ctx context.Context) []GuideCard
}

// GuideCard is a service guide (办事指南) as the guide screen shows it.
type GuideCard struct {
	ID         string   `json:"id"`
	Version    int64    `json:"version"`
	Department string   `json:"department"`
	Title      string   `json:"title"`
	TitleEn    string   `json:"titleEn"`
	Body       []string `json:"body"`   // one line per item, labelled in Chinese
	BodyEn     []string `json:"bodyEn"` // the same, labelled in English
}

// Materials is what a citizen may print: the documents the hub holds for the citizen's cases
// (the cases API, issue 12, will provide them) and forms anyone may print.
type Materials interface {
	List(ctx context.Context, citizen bool) ([]Material, error)
	Fetch(ctx context.Context, id string, citizen bool) ([]byte, error)
	Source() string
}

// Material is a document to print.
type Material struct {
	ID      string `json:"id"`
	Title   string `json:"title"`   // zh-CN
	TitleEn string `json:"titleEn"` // English
	Pages   int    `json:"pages"`
	Bytes   int    `json:"bytes"`
	SHA256  string `json:"sha256"`
	Kind    string `json:"kind"` // form (anyone), case (the citizen's)
}

// builtinMaterials are blank forms and guides made at start: the kiosk prints them without the
// hub. They are sample documents, and the shell says so.
type builtinMaterials struct {
	list []Material
	pdfs map[string][]byte
}

// BuiltinMaterials returns the kiosk's built-in printable forms.
func BuiltinMaterials() Materials {
	m := &builtinMaterials{pdfs: map[string][]byte{}}
	for _, f := range []struct {
		id, title, en string
		lines         []string
	}{
		{"form-residence-permit", "居住证申领登记表（空白，示例）", "Residence permit application form (blank, sample)",
			[]string{"Applicant: ____________________", "ID number: ____________________", "Address in this city: ____________________",
				"Since (date): __________", "Signature: __________   Date: __________"}},
		{"guide-social-security", "社保卡办理须知（示例）", "Social security card: what to bring (sample)",
			[]string{"1. Your resident ID card.", "2. A recent photo (or have it taken at the hall).", "3. Your bank card, if you want it linked.",
				"Processing time: 10 working days.", "Ask at the service desk for help."}},
	} {
		pdf := formPDF(f.en, f.lines)
		sum := sha256.Sum256(pdf)
		m.pdfs[f.id] = pdf
		m.list = append(m.list, Material{ID: f.id, Title: f.title, TitleEn: f.en, Pages: 1, Bytes: len(pdf),
			SHA256: hex.EncodeToString(sum[:]), Kind: "form"})
	}
	return m
}

// formPDF renders a one-page A4 form (core fonts: no font file; the same bytes on every start).
func formPDF(title string, lines []string) []byte {
	t := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := fpdf.New("P", "mm", "A4", "")
	f.SetCatalogSort(true) // the same bytes in every process: the printed job is checked against them
	f.SetCreationDate(t)
	f.SetModificationDate(t)
	f.SetTitle(title, true)
	f.AddPage()
	f.SetFont("Helvetica", "B", 18)
	f.MultiCell(0, 10, title, "B", "L", false)
	f.Ln(6)
	f.SetFont("Helvetica", "", 13)
	for _, l := range lines {
		f.CellFormat(0, 12, l, "", 1, "L", false, 0, "")
	}
	f.Ln(8)
	f.SetFont("Helvetica", "I", 9)
	f.CellFormat(0, 6, "Printed at a self-service kiosk. Sample document of the kiosk shell.", "", 1, "L", false, 0, "")
	var b bytes.Buffer
	if err := f.Output(&b); err != nil {
		panic(fmt.Sprintf("shell: built-in form: %v", err)) // only with a programming error
	}
	return b.Bytes()
}

// List implements Materials: forms only (no case documents without the cases API).
func (m *builtinMaterials) List(context.Context, bool) ([]Material, error) { return m.list, nil }

// Fetch implements Materials.
func (m *builtinMaterials) Fetch(_ context.Context, id string, _ bool) ([]byte, error) {
	b, ok := m.pdfs[id]
	if !ok {
		return nil, fmt.Errorf("no material %q", id)
	}
	return bytes.Clone(b), nil
}

// Source implements Materials.
func (m *builtinMaterials) Source() string { return "builtin" }

// Cases attaches a scanned document to the citizen's case (the cases API, issue 12).
type Cases interface {
	Attach(ctx context.Context, session, scanID string, pdf []byte) error
}

// demoCases is the sample case progress the shell shows, marked as such, until the cases API
// exists.
func demoCases() map[string]any {
	return map[string]any{"demo": true, "cases": []map[string]any{
		{"id": "demo-2026-0042", "title": "居住证申领", "titleEn": "Residence permit application",
			"steps": []map[string]any{{"name": "受理", "nameEn": "Received", "done": true}, {"name": "审核", "nameEn": "Review", "done": true},
				{"name": "制证", "nameEn": "Card made", "done": false}, {"name": "领取", "nameEn": "Collect", "done": false}}},
	}}
}

// demoGuides is the sample service guide (served by the agent: it works offline).
func demoGuides() map[string]any {
	return map[string]any{"demo": true, "guides": []map[string]any{
		{"id": "residence-permit", "title": "居住证申领", "titleEn": "Residence permit",
			"body":   []string{"带上身份证和居住证明（租房合同或房产证）。", "在本机打印申领表，填好后交到服务台。", "约 15 个工作日后凭短信领取。"},
			"bodyEn": []string{"Bring your ID card and proof of address (a lease or deed).", "Print the application form here, fill it in, hand it to the service desk.", "Collect the permit in about 15 working days, when a text message tells you."}},
		{"id": "social-security", "title": "社保卡办理", "titleEn": "Social security card",
			"body":   []string{"带上身份证；照片可在大厅拍摄。", "可选择绑定银行卡。", "约 10 个工作日办结。"},
			"bodyEn": []string{"Bring your ID card; photos are taken in the hall.", "You may link a bank card.", "Ready in about 10 working days."}},
	}}
}
