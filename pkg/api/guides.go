package api

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Service guides (办事指南): what a citizen must know before using a service, written once by the
// department and served the same to every channel, as JSON (GuideDoc) or as a page. A guide has
// immutable versions; an app version names the guide version published with it, and the public
// endpoints serve only guide versions published with a listed app.

// GuideDoc is the content of a guide version. Every list keeps its order on every channel.
type GuideDoc struct {
	Title      string     `json:"title"`                // 事项名称
	Summary    string     `json:"summary,omitempty"`    // 事项简介
	Conditions []string   `json:"conditions"`           // 申请条件
	Materials  []Material `json:"materials"`            // 申请材料
	Steps      []Step     `json:"steps"`                // 办理流程
	TimeLimit  TimeLimit  `json:"timeLimit"`            // 办理时限
	Fees       []Fee      `json:"fees"`                 // 收费标准; none: free of charge
	LegalBasis []string   `json:"legalBasis"`           // 设定依据
	Locations  []Location `json:"locations"`            // 办理地点和时间
	Contact    string     `json:"contact,omitempty"`    // 咨询电话
	Complaints string     `json:"complaints,omitempty"` // 监督投诉
}

// Material is a document the applicant brings or uploads.
type Material struct {
	Name     string `json:"name"`
	Form     string `json:"form"`   // original, copy, or original-and-copy (原件, 复印件, 原件及复印件)
	Copies   int    `json:"copies"` // 份数, at least 1
	Required bool   `json:"required"`
	Notes    string `json:"notes,omitempty"`
	// Template is a printable form to fill in (a PDF uploaded to the hub), if there is one.
	Template *Template `json:"template,omitempty"`
}

// Material forms.
const (
	FormOriginal        = "original"
	FormCopy            = "copy"
	FormOriginalAndCopy = "original-and-copy"
)

// Template is a printable PDF form, served at PublicPrefix + "/templates/" + SHA256 + ".pdf".
type Template struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size,omitempty"` // set by the hub
}

// Step is one step of the procedure.
type Step struct {
	Title       string `json:"title"`
	Description string `json:"description,omitempty"`
}

// TimeLimit is how long the department takes, in working days: the limit set by law (法定办结时限)
// and the one it promises (承诺办结时限, at most the legal one); 0 promised: on the spot (即办).
type TimeLimit struct {
	LegalDays    int    `json:"legalDays"`
	PromisedDays int    `json:"promisedDays"`
	Note         string `json:"note,omitempty"`
}

// Fee is one charge; amounts are in fen (分), so 10 yuan is 1000.
type Fee struct {
	Item      string `json:"item"`
	AmountFen int64  `json:"amountFen"`
	Basis     string `json:"basis,omitempty"` // 收费依据
}

// Location is where and when the service is offered in person.
type Location struct {
	Name    string `json:"name"`
	Address string `json:"address,omitempty"`
	Hours   string `json:"hours"` // e.g. 周一至周五 9:00-12:00, 13:30-17:00
	Phone   string `json:"phone,omitempty"`
}

// Guide is a guide and its versions (without their documents).
type Guide struct {
	ID         string         `json:"id"`
	Department string         `json:"department"`
	Title      string         `json:"title"`
	CreatedAt  time.Time      `json:"createdAt,omitzero"`
	Latest     int64          `json:"latest"`
	Versions   []GuideVersion `json:"versions,omitempty"`
}

// Guides is the body of GET /api/v1/guides?department=.
type Guides struct {
	Guides []Guide `json:"guides"`
}

// CreateGuide is the body of POST /api/v1/guides.
type CreateGuide struct {
	ID         string `json:"id"`
	Department string `json:"department"`
	Title      string `json:"title"`
}

// GuideVersion is one version of a guide. Doc is set where one version is asked for.
type GuideVersion struct {
	Guide     string    `json:"guide"`
	Version   int64     `json:"version"`
	Doc       *GuideDoc `json:"doc,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	CreatedBy string    `json:"createdBy,omitempty"`
	// Published says that an app version listed on some channel was published with it.
	Published bool `json:"published"`
}

// TemplateInfo is the answer to POST /api/v1/templates (a PDF form in the body).
type TemplateInfo struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	URL    string `json:"url"` // its public path
}

// PublishedGuide is the body of GET /api/v1/public/guides/{id} (the latest published version)
// and /api/v1/public/guides/{id}/versions/{version}: a guide version published with an app listed
// on some channel. .../page serves the same as an HTML page (?lang=en for English labels).
type PublishedGuide struct {
	ID             string    `json:"id"`
	Version        int64     `json:"version"`
	Department     string    `json:"department"`
	DepartmentName string    `json:"departmentName"`
	UpdatedAt      time.Time `json:"updatedAt"`
	Doc            GuideDoc  `json:"doc"`
}

// ListGuides lists the guides the caller may see, of one department or all ("").
func (c *Client) ListGuides(ctx context.Context, department string) ([]Guide, error) {
	p := Prefix + "/guides"
	if department != "" {
		p += "?department=" + url.QueryEscape(department)
	}
	var out Guides
	return out.Guides, c.Do(ctx, http.MethodGet, p, nil, &out)
}

// CreateGuide creates a guide, without versions.
func (c *Client) CreateGuide(ctx context.Context, req CreateGuide) (Guide, error) {
	var out Guide
	return out, c.Do(ctx, http.MethodPost, Prefix+"/guides", req, &out)
}

// Guide returns a guide with its versions.
func (c *Client) Guide(ctx context.Context, id string) (Guide, error) {
	var out Guide
	return out, c.Do(ctx, http.MethodGet, guidePath(id), nil, &out)
}

// AddGuideVersion stores doc as the guide's next version.
func (c *Client) AddGuideVersion(ctx context.Context, id string, doc GuideDoc) (GuideVersion, error) {
	var out GuideVersion
	return out, c.Do(ctx, http.MethodPost, guidePath(id)+"/versions", doc, &out)
}

// GuideVersion returns one version of a guide with its document.
func (c *Client) GuideVersion(ctx context.Context, id string, version int64) (GuideVersion, error) {
	var out GuideVersion
	return out, c.Do(ctx, http.MethodGet, guidePath(id)+"/versions/"+strconv.FormatInt(version, 10), nil, &out)
}

// UploadTemplate uploads a printable PDF form for guides.
func (c *Client) UploadTemplate(ctx context.Context, pdf io.Reader) (TemplateInfo, error) {
	var out TemplateInfo
	return out, c.DoRaw(ctx, http.MethodPost, Prefix+"/templates", "application/pdf", pdf, &out)
}

// PublishedGuide returns a published guide version (version 0: the latest), no token needed.
func (c *Client) PublishedGuide(ctx context.Context, id string, version int64) (PublishedGuide, error) {
	p := PublicPrefix + "/guides/" + url.PathEscape(id)
	if version > 0 {
		p += "/versions/" + strconv.FormatInt(version, 10)
	}
	var out PublishedGuide
	return out, c.Do(ctx, http.MethodGet, p, nil, &out)
}

func guidePath(id string) string { return Prefix + "/guides/" + url.PathEscape(id) }
