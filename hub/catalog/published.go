package catalog

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// Snapshot is the catalog as the channels see it at one generation of the store: per channel the
// apps listed there, and the guide versions published with them, each already encoded (JSON, and
// for guides an HTML page per language). It never changes; a change of the catalog makes a new
// one.
type Snapshot struct {
	Generation int64
	channels   map[string]*Page
	entries    map[string][]api.CatalogEntry
	guides     map[api.GuideRef]*guidePages
	latest     map[string]int64 // guide ID -> highest published version
	epoch      int64            // published.epoch when built or last confirmed
}

// Page is an encoded answer with its entity tag (RFC 9110 §8.8.3) and, when it is worth it, its
// gzip encoding (a channel's catalog of 50 apps is 20 KB of JSON, 3 KB gzip'd).
type Page struct {
	Body []byte
	Gzip []byte // nil: not worth it
	ETag string
	Type string
}

func newPage(body []byte, typ string) *Page {
	h := sha256.Sum256(body)
	p := &Page{Body: body, ETag: `"` + hex.EncodeToString(h[:12]) + `"`, Type: typ}
	if len(body) >= 1024 {
		var b bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
		zw.Write(body)
		zw.Close()
		if b.Len() < len(body)*9/10 {
			p.Gzip = b.Bytes()
		}
	}
	return p
}

type guidePages struct {
	doc  api.PublishedGuide
	json *Page
	html map[string]*Page // by language: zh-CN, en
}

// Channel returns the encoded catalog of a channel (ok false for an unknown channel).
func (s *Snapshot) Channel(channel string) (*Page, bool) {
	p, ok := s.channels[channel]
	return p, ok
}

// Entries returns the apps listed on a channel, in ID order (shared: do not modify).
func (s *Snapshot) Entries(channel string) []api.CatalogEntry { return s.entries[channel] }

// Guide returns a published guide version (version 0: the latest published) as JSON, or as an
// HTML page in lang (zh-CN or en) when html is set.
func (s *Snapshot) Guide(id string, version int64, html bool, lang string) (*Page, bool) {
	if version == 0 {
		version = s.latest[id]
	}
	g, ok := s.guides[api.GuideRef{ID: id, Version: version}]
	if !ok {
		return nil, false
	}
	if html {
		return g.html[lang], true
	}
	return g.json, true
}

// published keeps the current Snapshot. A read is an atomic load while the snapshot is known to
// be current: this process made no change since it was built (epoch) and the store's generation
// was checked less than Config.Refresh ago (changes made by other replicas).
type published struct {
	c       *Catalog
	cur     atomic.Pointer[Snapshot]
	checked atomic.Int64 // Unix nanoseconds of the last check of the store's generation
	epoch   atomic.Int64 // grows with every change made through this process
	mu      sync.Mutex   // one rebuild at a time
}

func (p *published) init(c *Catalog) { p.c = c }

func (p *published) invalidate() { p.epoch.Add(1) }

// Published returns the catalog as the channels see it now.
func (c *Catalog) Published(ctx context.Context) (*Snapshot, error) { return c.pub.get(ctx) }

func (p *published) fresh(s *Snapshot, now int64) bool {
	return s != nil && s.epoch == p.epoch.Load() && now-p.checked.Load() < int64(p.c.cfg.Refresh)
}

func (p *published) get(ctx context.Context) (*Snapshot, error) {
	now := time.Now().UnixNano()
	if s := p.cur.Load(); p.fresh(s, now) {
		return s, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.cur.Load()
	if p.fresh(s, now) {
		return s, nil
	}
	epoch := p.epoch.Load()
	gen, err := p.c.cfg.Store.CatalogGeneration(ctx)
	if err != nil {
		return nil, err
	}
	// A change commits its generation before it moves the epoch: at an unchanged generation the
	// snapshot is current whatever the epoch says.
	if s != nil && s.Generation == gen {
		if s.epoch != epoch {
			cp := *s
			cp.epoch = epoch
			s = &cp
			p.cur.Store(s)
		}
		p.checked.Store(now)
		return s, nil
	}
	s, err = p.c.build(ctx, gen)
	if err != nil {
		return nil, err
	}
	s.epoch = epoch
	p.cur.Store(s)
	p.checked.Store(now)
	return s, nil
}

// build reads the listed apps of every channel and their guides. gen was read before anything
// else, so the snapshot is at least as new as gen.
func (c *Catalog) build(ctx context.Context, gen int64) (*Snapshot, error) {
	st := c.cfg.Store
	s := &Snapshot{Generation: gen, channels: map[string]*Page{}, entries: map[string][]api.CatalogEntry{},
		guides: map[api.GuideRef]*guidePages{}, latest: map[string]int64{}}
	depts := map[string]string{}
	ds, err := st.ListDepartments(ctx)
	if err != nil {
		return nil, err
	}
	for _, d := range ds {
		depts[d.ID] = d.Name
	}
	apps := map[string]store.App{}
	as, err := st.ListApps(ctx, store.AppFilter{})
	if err != nil {
		return nil, err
	}
	for _, a := range as {
		apps[a.ID] = a
	}
	rs, err := st.ListReleases(ctx, store.ReleaseFilter{State: api.StateListed})
	if err != nil {
		return nil, err
	}
	versions := map[string]store.AppVersion{}
	for _, ch := range api.Channels {
		s.entries[ch] = []api.CatalogEntry{}
	}
	for _, r := range rs { // by app, version, channel
		a, ok := apps[r.AppID]
		if !ok {
			continue
		}
		key := r.AppID + "@" + r.Version
		v, ok := versions[key]
		if !ok {
			if v, err = st.GetVersion(ctx, r.AppID, r.Version); err != nil {
				return nil, err
			}
			versions[key] = v
		}
		av := apiVersion(v)
		e := api.CatalogEntry{App: a.ID, Name: a.Name, Description: a.Description, Kind: a.Kind, Department: a.DepartmentID,
			DepartmentName: depts[a.DepartmentID], Version: v.Version, Entry: av.Spec.Entry, Services: av.Spec.Services,
			Peripherals: av.Spec.Peripherals, MinAgent: av.Spec.MinAgent, Bundle: av.Spec.Bundle, Guide: av.Guide}
		s.entries[r.Channel] = append(s.entries[r.Channel], e)
		if av.Guide != nil {
			if err := c.publishGuide(ctx, s, *av.Guide, depts); err != nil {
				return nil, err
			}
		}
	}
	for ch, es := range s.entries {
		b, err := json.Marshal(api.ChannelCatalog{Channel: ch, Generation: gen, Apps: es})
		if err != nil {
			return nil, err
		}
		s.channels[ch] = newPage(b, "application/json")
	}
	return s, nil
}

func (c *Catalog) publishGuide(ctx context.Context, s *Snapshot, ref api.GuideRef, depts map[string]string) error {
	if _, ok := s.guides[ref]; ok {
		return nil
	}
	g, err := c.cfg.Store.GetGuide(ctx, ref.ID)
	if err != nil {
		return err
	}
	v, err := c.cfg.Store.GetGuideVersion(ctx, ref.ID, ref.Version)
	if err != nil {
		return err
	}
	pg := api.PublishedGuide{ID: g.ID, Version: v.Version, Department: g.DepartmentID, DepartmentName: depts[g.DepartmentID], UpdatedAt: v.CreatedAt}
	if err := json.Unmarshal(v.Doc, &pg.Doc); err != nil {
		return fmt.Errorf("catalog: guide %s/%d: stored document: %w", ref.ID, ref.Version, err)
	}
	b, err := json.Marshal(pg)
	if err != nil {
		return err
	}
	gp := &guidePages{doc: pg, json: newPage(b, "application/json"), html: map[string]*Page{}}
	for _, lang := range []string{LangZH, LangEN} {
		h, err := RenderGuide(pg, lang)
		if err != nil {
			return err
		}
		gp.html[lang] = newPage(h, "text/html; charset=utf-8")
	}
	s.guides[ref] = gp
	s.latest[ref.ID] = max(s.latest[ref.ID], ref.Version)
	return nil
}
