package catalog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// MaxTemplateBytes is the largest printable template accepted.
const MaxTemplateBytes = 10 << 20

// CreateGuide creates a guide of a department, without versions (its developer, or admin).
func (c *Catalog) CreateGuide(ctx context.Context, who Actor, req api.CreateGuide) (api.Guide, error) {
	if err := who.develops(req.Department, "a guide of department "+req.Department); err != nil {
		return api.Guide{}, err
	}
	var p problems
	p.check(validID(req.ID), "id", "2-64 characters of a-z, 0-9 and '-', not starting with '-'")
	p.check(text(req.Title, 200), "title", "required, at most 200 bytes of text")
	if err := p.err(); err != nil {
		return api.Guide{}, err
	}
	g := store.Guide{ID: req.ID, DepartmentID: req.Department, Title: req.Title, CreatedAt: c.now()}
	if err := c.cfg.Store.CreateGuide(ctx, g); err != nil {
		return api.Guide{}, err
	}
	c.changed()
	return apiGuide(g), nil
}

// Guides lists the guides the actor may see, of one department or all.
func (c *Catalog) Guides(ctx context.Context, who Actor, department string) ([]api.Guide, error) {
	gs, err := c.cfg.Store.ListGuides(ctx, department)
	if err != nil {
		return nil, err
	}
	gs = slices.DeleteFunc(gs, func(g store.Guide) bool { return !who.sees(g.DepartmentID) })
	return convert(gs, apiGuide), nil
}

// Guide returns a guide with its versions, each marked published or not.
func (c *Catalog) Guide(ctx context.Context, who Actor, id string) (api.Guide, error) {
	g, err := c.guide(ctx, who, id)
	if err != nil {
		return api.Guide{}, err
	}
	vs, err := c.cfg.Store.ListGuideVersions(ctx, id)
	if err != nil {
		return api.Guide{}, err
	}
	pub, err := c.Published(ctx)
	if err != nil {
		return api.Guide{}, err
	}
	out := apiGuide(g)
	out.Versions = convert(vs, func(v store.GuideVersion) api.GuideVersion { return apiGuideVersion(v, nil, pub) })
	return out, nil
}

func (c *Catalog) guide(ctx context.Context, who Actor, id string) (store.Guide, error) {
	g, err := c.cfg.Store.GetGuide(ctx, id)
	if err != nil {
		return g, err
	}
	if !who.sees(g.DepartmentID) {
		return g, fmt.Errorf("%w: guide %s belongs to department %s; you are a developer of %s", ErrForbidden, id, g.DepartmentID, orNone(who.Department))
	}
	return g, nil
}

// AddGuideVersion stores doc as the guide's next version (its department's developer, or admin).
func (c *Catalog) AddGuideVersion(ctx context.Context, who Actor, id string, doc api.GuideDoc) (api.GuideVersion, error) {
	g, err := c.cfg.Store.GetGuide(ctx, id)
	if err != nil {
		return api.GuideVersion{}, err
	}
	if err := who.develops(g.DepartmentID, "guide "+id); err != nil {
		return api.GuideVersion{}, err
	}
	if err := c.checkGuide(ctx, &doc); err != nil {
		return api.GuideVersion{}, err
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return api.GuideVersion{}, err
	}
	v, err := c.cfg.Store.AddGuideVersion(ctx, store.GuideVersion{GuideID: id, Doc: b, CreatedAt: c.now(), CreatedBy: who.ID})
	if err != nil {
		return api.GuideVersion{}, err
	}
	c.changed()
	return apiGuideVersion(v, &doc, nil), nil
}

// GuideVersion returns one version of a guide with its document.
func (c *Catalog) GuideVersion(ctx context.Context, who Actor, id string, version int64) (api.GuideVersion, error) {
	if _, err := c.guide(ctx, who, id); err != nil {
		return api.GuideVersion{}, err
	}
	v, err := c.cfg.Store.GetGuideVersion(ctx, id, version)
	if err != nil {
		return api.GuideVersion{}, err
	}
	var doc api.GuideDoc
	if err := json.Unmarshal(v.Doc, &doc); err != nil {
		return api.GuideVersion{}, fmt.Errorf("catalog: guide %s/%d: stored document: %w", id, version, err)
	}
	pub, err := c.Published(ctx)
	if err != nil {
		return api.GuideVersion{}, err
	}
	return apiGuideVersion(v, &doc, pub), nil
}

// checkGuide checks a guide document, reporting every problem, and fills in each template's size.
func (c *Catalog) checkGuide(ctx context.Context, d *api.GuideDoc) error {
	var p problems
	p.check(text(d.Title, 200), "title", "required, at most 200 bytes of text")
	p.check(d.Summary == "" || text(d.Summary, 4000), "summary", "at most 4000 bytes of text")
	p.check(len(d.Conditions) <= 50, "conditions", "at most 50")
	for i, s := range d.Conditions {
		p.check(text(s, 1000), fmt.Sprintf("conditions[%d]", i), "1 to 1000 bytes of text")
	}
	p.check(len(d.Materials) <= 100, "materials", "at most 100")
	for i := range d.Materials {
		m := &d.Materials[i]
		f := fmt.Sprintf("materials[%d]", i)
		p.check(text(m.Name, 200), f+".name", "required, at most 200 bytes of text")
		p.check(slices.Contains([]string{api.FormOriginal, api.FormCopy, api.FormOriginalAndCopy}, m.Form), f+".form",
			"original, copy or original-and-copy, got %q", m.Form)
		p.check(m.Copies >= 1 && m.Copies <= 99, f+".copies", "1 to 99, got %d", m.Copies)
		p.check(m.Notes == "" || text(m.Notes, 1000), f+".notes", "at most 1000 bytes of text")
		if t := m.Template; t != nil {
			p.check(text(t.Name, 200), f+".template.name", "required, at most 200 bytes of text")
			b, err := c.cfg.Store.StatBlob(ctx, t.SHA256)
			switch {
			case errors.Is(err, store.ErrNotFound) || (err == nil && b.Type != "application/pdf"):
				p.check(false, f+".template.sha256", "no uploaded PDF template %q (POST /api/v1/templates)", t.SHA256)
			case err != nil:
				return err
			default:
				t.Size = b.Size
			}
		}
	}
	p.check(len(d.Steps) >= 1 && len(d.Steps) <= 50, "steps", "1 to 50")
	for i, s := range d.Steps {
		f := fmt.Sprintf("steps[%d]", i)
		p.check(text(s.Title, 200), f+".title", "required, at most 200 bytes of text")
		p.check(s.Description == "" || text(s.Description, 2000), f+".description", "at most 2000 bytes of text")
	}
	tl := d.TimeLimit
	p.check(tl.LegalDays >= 0 && tl.LegalDays <= 365, "timeLimit.legalDays", "0 to 365 working days")
	p.check(tl.PromisedDays >= 0 && (tl.PromisedDays <= tl.LegalDays || tl.LegalDays == 0), "timeLimit.promisedDays",
		"0 to the legal time limit (%d)", tl.LegalDays)
	p.check(tl.Note == "" || text(tl.Note, 500), "timeLimit.note", "at most 500 bytes of text")
	p.check(len(d.Fees) <= 50, "fees", "at most 50")
	for i, f := range d.Fees {
		n := fmt.Sprintf("fees[%d]", i)
		p.check(text(f.Item, 200), n+".item", "required, at most 200 bytes of text")
		p.check(f.AmountFen >= 0 && f.AmountFen <= 1e10, n+".amountFen", "0 to 100,000,000 yuan in fen")
		p.check(f.Basis == "" || text(f.Basis, 500), n+".basis", "at most 500 bytes of text")
	}
	p.check(len(d.LegalBasis) >= 1 && len(d.LegalBasis) <= 50, "legalBasis", "1 to 50")
	for i, s := range d.LegalBasis {
		p.check(text(s, 500), fmt.Sprintf("legalBasis[%d]", i), "1 to 500 bytes of text")
	}
	p.check(len(d.Locations) >= 1 && len(d.Locations) <= 50, "locations", "1 to 50")
	for i, l := range d.Locations {
		f := fmt.Sprintf("locations[%d]", i)
		p.check(text(l.Name, 200), f+".name", "required, at most 200 bytes of text")
		p.check(text(l.Hours, 200), f+".hours", "required, at most 200 bytes of text")
		p.check(l.Address == "" || text(l.Address, 500), f+".address", "at most 500 bytes of text")
		p.check(l.Phone == "" || text(l.Phone, 50), f+".phone", "at most 50 bytes of text")
	}
	p.check(d.Contact == "" || text(d.Contact, 200), "contact", "at most 200 bytes of text")
	p.check(d.Complaints == "" || text(d.Complaints, 200), "complaints", "at most 200 bytes of text")
	return p.err()
}

// UploadTemplate stores a printable PDF form for guides (a developer or admin) and returns where
// channels fetch it.
func (c *Catalog) UploadTemplate(ctx context.Context, who Actor, pdf []byte) (api.TemplateInfo, error) {
	if !who.Has(RoleDeveloper) {
		return api.TemplateInfo{}, fmt.Errorf("%w: uploading a template needs the developer role", ErrForbidden)
	}
	if len(pdf) == 0 || len(pdf) > MaxTemplateBytes || !bytes.HasPrefix(pdf, []byte("%PDF-")) {
		return api.TemplateInfo{}, &InvalidError{Fields: []string{fmt.Sprintf("body: a PDF document (starting %%PDF-) of at most %d bytes", MaxTemplateBytes)}}
	}
	h := sha256.Sum256(pdf)
	sum := hex.EncodeToString(h[:])
	if err := c.cfg.Store.PutBlob(ctx, store.Blob{SHA256: sum, Type: "application/pdf", Size: int64(len(pdf)), Data: pdf, CreatedAt: c.now()}); err != nil {
		return api.TemplateInfo{}, err
	}
	return api.TemplateInfo{SHA256: sum, Size: int64(len(pdf)), URL: api.PublicPrefix + "/templates/" + sum + ".pdf"}, nil
}

func apiGuide(g store.Guide) api.Guide {
	return api.Guide{ID: g.ID, Department: g.DepartmentID, Title: g.Title, CreatedAt: g.CreatedAt, Latest: g.Latest}
}

func apiGuideVersion(v store.GuideVersion, doc *api.GuideDoc, pub *Snapshot) api.GuideVersion {
	out := api.GuideVersion{Guide: v.GuideID, Version: v.Version, Doc: doc, CreatedAt: v.CreatedAt, CreatedBy: v.CreatedBy}
	if pub != nil {
		_, out.Published = pub.guides[api.GuideRef{ID: v.GuideID, Version: v.Version}]
	}
	return out
}
