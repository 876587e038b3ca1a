package shell

import (
	"context"
	"fmt"
	"log/slog"
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
	Every       time.Duration                                         // how often Run reads the hub; default 30 s
	Log         *slog.Logger

	mu     sync.Mutex
	listed *api.ChannelCatalog // the last list read; nil: none yet
	err    error               // of the last read
}

var _ Catalog = (*AppCatalog)(nil)

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

// Refresh reads the kiosk channel's list from the hub.
func (c *AppCatalog) Refresh(ctx context.Context) error {
	cc, err := c.Listed(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.err = err
	if err == nil {
		c.listed = &cc
	}
	return err
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
