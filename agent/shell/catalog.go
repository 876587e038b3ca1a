package shell

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// Why an app's tile is not available (Service.Reason; the pages translate them).
const (
	ReasonPeripheral   = "peripheral"    // a peripheral it requires is missing or not working (Detail says which)
	ReasonNotInstalled = "not-installed" // a kiosk bundle the agent has not installed (yet)
)

// AppTile is what the home screen shows of an app of the catalog (hub/catalog).
type AppTile struct {
	Name       string `json:"name"`
	Department string `json:"department"`
	Kind       string `json:"kind"` // kiosk-bundle, web-link
	Version    string `json:"version"`
	URL        string `json:"url,omitempty"` // where it opens; "" while unavailable
}

// AppCatalog is the Catalog of an enrolled kiosk (docs/catalog.md, "On the kiosk"): the shell's
// own services, then the apps listed on the hub's kiosk channel, in their listed version. An app
// that requires peripherals is available only while each of them works here (api.Offered on the
// kiosk's live peripherals): unplugged or faulted, its tile is withheld with the reason; fixed,
// it comes back, at once and without the hub. A kiosk bundle is available once the agent has
// installed it, and opens where the agent serves it. Run keeps the list fresh; offline, the
// kiosk offers the apps listed when it last reached the hub.
type AppCatalog struct {
	Listed      func(ctx context.Context) (api.ChannelCatalog, error) // the hub's kiosk channel (api.Client.ChannelCatalog)
	Peripherals func() wire.Peripherals                               // the kiosk's peripherals now; nil: none
	Installed   func(app string) (url string)                         // where an installed kiosk bundle opens; "": not installed
	// Guide reads a published guide version (api.Client.PublishedGuide): the guide screen shows
	// those of the listed apps; nil: the shell's demo guides.
	Guide func(ctx context.Context, id string, version int64) (api.PublishedGuide, error)
	Every time.Duration // how often Run reads the hub; default 30 s
	Log   *slog.Logger

	mu     sync.Mutex
	listed *api.ChannelCatalog // the last list read; nil: none yet
	err    error               // of the last read
	guides map[api.GuideRef]GuideCard
}

var (
	_ Catalog     = (*AppCatalog)(nil)
	_ GuideSource = (*AppCatalog)(nil)
)

// Run reads the list now and every Every until ctx ends.
func (c *AppCatalog) Run(ctx context.Context) {
	every := c.Every
	if every <= 0 {
		every = 30 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := c.Refresh(ctx); err != nil && ctx.Err() == nil && c.Log != nil {
			c.Log.Warn("shell: app catalog not read from the hub; the last list stays", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Refresh reads the kiosk channel's list from the hub, and the guides of its apps not read yet
// (a guide version never changes).
func (c *AppCatalog) Refresh(ctx context.Context) error {
	cc, err := c.Listed(ctx)
	c.mu.Lock()
	c.err = err
	if err == nil {
		c.listed = &cc
	}
	have := c.guides
	c.mu.Unlock()
	if err != nil || c.Guide == nil {
		return err
	}
	guides := map[api.GuideRef]GuideCard{}
	var errs []error
	for _, e := range cc.Apps {
		if e.Guide == nil {
			continue
		}
		ref := *e.Guide
		if g, ok := have[ref]; ok {
			guides[ref] = g
			continue
		}
		pg, err := c.Guide(ctx, ref.ID, ref.Version)
		if err != nil {
			errs = append(errs, fmt.Errorf("guide %s@%d: %w", ref.ID, ref.Version, err))
			continue
		}
		guides[ref] = guideCard(pg)
	}
	c.mu.Lock()
	c.guides = guides
	c.mu.Unlock()
	return errors.Join(errs...)
}

// Guides implements GuideSource: the guides of the listed apps, in the list's order.
func (c *AppCatalog) Guides(context.Context) []GuideCard {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.listed == nil {
		return nil
	}
	var out []GuideCard
	seen := map[api.GuideRef]bool{}
	for _, e := range c.listed.Apps {
		if e.Guide == nil || seen[*e.Guide] {
			continue
		}
		if g, ok := c.guides[*e.Guide]; ok {
			seen[*e.Guide] = true
			out = append(out, g)
		}
	}
	return out
}

// guideCard is a published guide as the guide screen shows it: one line per item, labelled in
// the page's language (the content is the department's, in Chinese).
func guideCard(g api.PublishedGuide) GuideCard {
	d := g.Doc
	card := GuideCard{ID: g.ID, Version: g.Version, Title: d.Title, TitleEn: d.Title, Department: g.DepartmentName}
	add := func(zh, en, text string) {
		card.Body = append(card.Body, zh+"："+text)
		card.BodyEn = append(card.BodyEn, en+": "+text)
	}
	if d.Summary != "" {
		add("事项简介", "About", d.Summary)
	}
	for _, x := range d.Conditions {
		add("申请条件", "Condition", x)
	}
	forms := map[string]string{api.FormOriginal: "原件", api.FormCopy: "复印件", api.FormOriginalAndCopy: "原件及复印件"}
	for _, m := range d.Materials {
		add("申请材料", "Bring", fmt.Sprintf("%s（%s %d 份）", m.Name, forms[m.Form], m.Copies))
	}
	for i, st := range d.Steps {
		add("办理流程", "Step", fmt.Sprintf("%d. %s", i+1, st.Title))
	}
	add("办理时限", "Time limit", fmt.Sprintf("%d / %d", d.TimeLimit.PromisedDays, d.TimeLimit.LegalDays))
	if len(d.Fees) == 0 {
		card.Body, card.BodyEn = append(card.Body, "收费标准：不收费"), append(card.BodyEn, "Fees: free of charge")
	}
	for _, f := range d.Fees {
		add("收费标准", "Fee", fmt.Sprintf("%s %d.%02d 元", f.Item, f.AmountFen/100, f.AmountFen%100))
	}
	for _, l := range d.Locations {
		add("办理地点", "Where", strings.TrimSpace(l.Name+" "+l.Address+" "+l.Hours))
	}
	if d.Contact != "" {
		add("咨询电话", "Contact", d.Contact)
	}
	return card
}

// Services implements Catalog.
func (c *AppCatalog) Services(ctx context.Context, st State) []Service {
	out := BuiltinCatalog{}.Services(ctx, st)
	c.mu.Lock()
	listed := c.listed
	c.mu.Unlock()
	if listed == nil {
		return out
	}
	var periph wire.Peripherals
	if c.Peripherals != nil {
		periph = c.Peripherals()
	}
	for _, e := range listed.Apps {
		svc := Service{ID: e.App, Available: true,
			App: &AppTile{Name: e.Name, Department: e.DepartmentName, Kind: e.Kind, Version: e.Version}}
		ok, why := api.Offered(e.Peripherals, periph)
		switch {
		case !ok:
			svc.Available, svc.Reason, svc.Detail = false, ReasonPeripheral, why
		case e.Kind == api.KindKioskBundle:
			if c.Installed != nil {
				svc.App.URL = c.Installed(e.App)
			}
			if svc.App.URL == "" {
				svc.Available, svc.Reason = false, ReasonNotInstalled
			}
		default:
			svc.App.URL = e.Entry
		}
		out = append(out, svc)
	}
	return out
}

// Source implements Catalog.
func (c *AppCatalog) Source() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.listed == nil && c.err != nil:
		return fmt.Sprintf("builtin (the hub's catalog not read yet: %v)", c.err)
	case c.listed == nil:
		return "builtin"
	case c.err != nil:
		return fmt.Sprintf("hub catalog generation %d (last read failed: %v)", c.listed.Generation, c.err)
	}
	return fmt.Sprintf("hub catalog generation %d", c.listed.Generation)
}
