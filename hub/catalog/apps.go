package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/semver"
)

// CreateDepartment creates a department (admin).
func (c *Catalog) CreateDepartment(ctx context.Context, who Actor, d api.Department) (api.Department, error) {
	if !slices.Contains(who.Roles, RoleAdmin) {
		return d, fmt.Errorf("%w: creating a department needs the admin role", ErrForbidden)
	}
	var p problems
	p.check(validID(d.ID), "id", "2-64 characters of a-z, 0-9 and '-', not starting with '-'")
	p.check(text(d.Name, 200), "name", "required, at most 200 bytes of text")
	if err := p.err(); err != nil {
		return d, err
	}
	d.CreatedAt = c.now()
	if err := c.cfg.Store.CreateDepartment(ctx, store.Department{ID: d.ID, Name: d.Name, CreatedAt: d.CreatedAt}); err != nil {
		return d, err
	}
	c.changed()
	return d, nil
}

// Departments lists departments.
func (c *Catalog) Departments(ctx context.Context) ([]api.Department, error) {
	ds, err := c.cfg.Store.ListDepartments(ctx)
	return convert(ds, apiDepartment), err
}

// CreateApp creates an app in a department (a developer of that department, or admin).
func (c *Catalog) CreateApp(ctx context.Context, who Actor, req api.CreateApp) (api.App, error) {
	if err := who.develops(req.Department, "an app of department "+req.Department); err != nil {
		return api.App{}, err
	}
	var p problems
	p.check(validID(req.ID), "id", "2-64 characters of a-z, 0-9 and '-', not starting with '-'")
	p.check(api.KindChannels[req.Kind] != nil, "kind", "want kiosk-bundle, web-link, mini-program or mobile-module, got %q", req.Kind)
	p.check(text(req.Name, 200), "name", "required, at most 200 bytes of text")
	p.check(req.Description == "" || text(req.Description, 2000), "description", "at most 2000 bytes of text")
	if err := p.err(); err != nil {
		return api.App{}, err
	}
	a := store.App{ID: req.ID, DepartmentID: req.Department, Kind: req.Kind, Name: req.Name, Description: req.Description,
		CreatedAt: c.now(), CreatedBy: who.ID}
	if err := c.cfg.Store.CreateApp(ctx, a); err != nil {
		return api.App{}, err
	}
	c.changed()
	return apiApp(a), nil
}

// Apps lists the apps the actor may see, filtered.
func (c *Catalog) Apps(ctx context.Context, who Actor, f store.AppFilter) ([]api.App, error) {
	as, err := c.cfg.Store.ListApps(ctx, f)
	if err != nil {
		return nil, err
	}
	as = slices.DeleteFunc(as, func(a store.App) bool { return !who.sees(a.DepartmentID) })
	rs, err := c.cfg.Store.ListReleases(ctx, store.ReleaseFilter{})
	if err != nil {
		return nil, err
	}
	out := convert(as, apiApp)
	for i := range out {
		out[i].Channels = channelVersions(out[i].ID, rs)
	}
	return out, nil
}

// channelVersions says, for each channel app reached, the version listed there, else the one last
// changed there.
func channelVersions(app string, rs []store.Release) map[string]api.ChannelVersion {
	out := map[string]api.ChannelVersion{}
	at := map[string]time.Time{}
	for _, r := range rs {
		if r.AppID != app {
			continue
		}
		cur, seen := out[r.Channel]
		switch {
		case seen && cur.State == api.StateListed:
		case !seen || r.State == api.StateListed || r.UpdatedAt.After(at[r.Channel]):
			out[r.Channel], at[r.Channel] = api.ChannelVersion{Version: r.Version, State: r.State}, r.UpdatedAt
		}
	}
	return out
}

// App returns an app with its versions.
func (c *Catalog) App(ctx context.Context, who Actor, id string) (api.App, error) {
	a, err := c.app(ctx, who, id)
	if err != nil {
		return api.App{}, err
	}
	vs, err := c.cfg.Store.ListVersions(ctx, id)
	if err != nil {
		return api.App{}, err
	}
	out := apiApp(a)
	out.Versions = convert(vs, apiVersion)
	return out, nil
}

// app returns an app the actor may see.
func (c *Catalog) app(ctx context.Context, who Actor, id string) (store.App, error) {
	a, err := c.cfg.Store.GetApp(ctx, id)
	if err != nil {
		return a, err
	}
	if !who.sees(a.DepartmentID) {
		return a, fmt.Errorf("%w: app %s belongs to department %s; you are a developer of %s", ErrForbidden, id, a.DepartmentID, orNone(who.Department))
	}
	return a, nil
}

// Version returns one version of an app.
func (c *Catalog) Version(ctx context.Context, who Actor, appID, version string) (api.AppVersion, error) {
	if _, err := c.app(ctx, who, appID); err != nil {
		return api.AppVersion{}, err
	}
	v, err := c.cfg.Store.GetVersion(ctx, appID, version)
	return apiVersion(v), err
}

// CreateVersion creates a version of an app in state draft (its department's developer, or admin).
func (c *Catalog) CreateVersion(ctx context.Context, who Actor, appID string, req api.CreateVersion) (api.AppVersion, error) {
	a, err := c.cfg.Store.GetApp(ctx, appID)
	if err != nil {
		return api.AppVersion{}, err
	}
	if err := who.develops(a.DepartmentID, "app "+appID); err != nil {
		return api.AppVersion{}, err
	}
	var p problems
	p.check(semver.Valid(req.Version), "version", "a semantic version such as 1.4.0, got %q", req.Version)
	spec, err := c.checkVersion(ctx, a, req, nil, &p)
	if err != nil {
		return api.AppVersion{}, err
	}
	if err := p.err(); err != nil {
		return api.AppVersion{}, err
	}
	now := c.now()
	v := store.AppVersion{AppID: appID, Version: req.Version, State: api.StateDraft, Spec: spec, CreatedAt: now, CreatedBy: who.ID, UpdatedAt: now}
	if req.Guide != nil {
		v.GuideID, v.GuideVersion = req.Guide.ID, req.Guide.Version
	}
	e := store.AuditEntry{AppID: appID, Version: req.Version, To: api.StateDraft, Actor: who.ID, At: now}
	if err := c.cfg.Store.CreateVersion(ctx, v, e); err != nil {
		return api.AppVersion{}, err
	}
	c.changed()
	v.Releases = map[string]string{}
	return apiVersion(v), nil
}

// UpdateVersion replaces a draft's description (its department's developer, or admin).
func (c *Catalog) UpdateVersion(ctx context.Context, who Actor, appID, version string, req api.CreateVersion) (api.AppVersion, error) {
	a, err := c.cfg.Store.GetApp(ctx, appID)
	if err != nil {
		return api.AppVersion{}, err
	}
	if err := who.develops(a.DepartmentID, "app "+appID); err != nil {
		return api.AppVersion{}, err
	}
	v, err := c.cfg.Store.GetVersion(ctx, appID, version)
	if err != nil {
		return api.AppVersion{}, err
	}
	if v.State != api.StateDraft {
		return api.AppVersion{}, fmt.Errorf("%w: %s@%s is %s; only a draft can change", ErrNotAllowed, appID, version, v.State)
	}
	var p problems
	p.check(req.Version == "" || req.Version == version, "version", "cannot change")
	var old api.AppSpec
	_ = json.Unmarshal(v.Spec, &old)
	spec, err := c.checkVersion(ctx, a, req, old.Bundle, &p)
	if err != nil {
		return api.AppVersion{}, err
	}
	if err := p.err(); err != nil {
		return api.AppVersion{}, err
	}
	v.Spec, v.GuideID, v.GuideVersion, v.UpdatedAt = spec, "", 0, c.now()
	if req.Guide != nil {
		v.GuideID, v.GuideVersion = req.Guide.ID, req.Guide.Version
	}
	if err := c.cfg.Store.UpdateVersion(ctx, v, api.StateDraft); err != nil {
		if errors.Is(err, store.ErrStale) {
			return api.AppVersion{}, fmt.Errorf("%w: %w", ErrNotAllowed, err)
		}
		return api.AppVersion{}, err
	}
	c.changed()
	return apiVersion(v), nil
}

// checkVersion checks a version's description for app a and returns its spec as stored; bundle
// is the bundle already uploaded (the hub sets it, never the request).
func (c *Catalog) checkVersion(ctx context.Context, a store.App, req api.CreateVersion, bundle *api.BundleInfo, p *problems) (json.RawMessage, error) {
	s := req.Spec
	p.check(s.Bundle == nil, "spec.bundle", "is set by uploading the bundle")
	s.Bundle = bundle
	switch a.Kind {
	case api.KindWebLink:
		u, err := url.Parse(s.Entry)
		p.check(err == nil && u.Scheme == "https" && u.Host != "" && len(s.Entry) <= 2048, "spec.entry", "an https URL of at most 2048 bytes, got %q", s.Entry)
	case api.KindMiniProgram:
		p.check(pagePath(s.Entry), "spec.entry", "a page path such as pages/tax/cert, got %q", s.Entry)
	case api.KindMobileModule:
		p.check(s.Entry != "" && len(s.Entry) <= 128 && strings.Trim(s.Entry, "abcdefghijklmnopqrstuvwxyz0123456789._-") == "",
			"spec.entry", "a module ID of a-z, 0-9, '.', '_' and '-', got %q", s.Entry)
	case api.KindKioskBundle:
		if s.Entry == "" {
			s.Entry = "index.html"
		}
		p.check(bundlePath(s.Entry), "spec.entry", "a path inside the bundle such as index.html, got %q", s.Entry)
	}
	if a.Kind != api.KindKioskBundle {
		p.check(len(s.Services) == 0 && len(s.Peripherals) == 0 && s.MinAgent == "", "spec", "services, peripherals and minAgentVersion are for kiosk bundles")
	}
	checkKioskNeeds(s.Services, s.Peripherals, s.MinAgent, p, "spec.")
	if req.Guide != nil {
		g, err := c.cfg.Store.GetGuide(ctx, req.Guide.ID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			p.check(false, "guide.id", "no guide %q", req.Guide.ID)
		case err != nil:
			return nil, err
		default:
			p.check(g.DepartmentID == a.DepartmentID, "guide.id", "guide %s belongs to department %s, the app to %s", g.ID, g.DepartmentID, a.DepartmentID)
			p.check(req.Guide.Version >= 1 && req.Guide.Version <= g.Latest, "guide.version", "guide %s has versions 1 to %d", g.ID, g.Latest)
		}
	}
	b, err := json.Marshal(s)
	return b, err
}

// checkKioskNeeds checks what a kiosk app needs of the kiosk.
func checkKioskNeeds(services, peripherals []string, minAgent string, p *problems, prefix string) {
	for _, s := range services {
		p.check(slices.Contains(api.BundleServices, s), prefix+"services", "%q is not one of %s", s, strings.Join(api.BundleServices, ", "))
	}
	for _, c := range peripherals {
		p.check(slices.Contains(api.PeripheralClasses, c), prefix+"peripherals", "%q is not one of %s", c, strings.Join(api.PeripheralClasses, ", "))
	}
	p.check(minAgent == "" || semver.Valid(minAgent), prefix+"minAgentVersion", "a semantic version, got %q", minAgent)
}

// Transition moves a version, or the version on a channel, to another state, as Rules allow,
// with the effects of listing and retiring (Rules), and returns the audit entries written.
func (c *Catalog) Transition(ctx context.Context, who Actor, appID, version string, req api.Transition) ([]api.AuditEntry, error) {
	a, err := c.cfg.Store.GetApp(ctx, appID)
	if err != nil {
		return nil, err
	}
	v, err := c.cfg.Store.GetVersion(ctx, appID, version)
	if err != nil {
		return nil, err
	}
	onChannel := req.Channel != ""
	if onChannel && !slices.Contains(api.KindChannels[a.Kind], req.Channel) {
		return nil, &InvalidError{Fields: []string{fmt.Sprintf("channel: a %s is published on %s, not %q", a.Kind,
			strings.Join(api.KindChannels[a.Kind], ", "), req.Channel)}}
	}
	from := v.State
	where := appID + "@" + version
	if onChannel {
		if v.State != api.StateApproved {
			return nil, fmt.Errorf("%w: %s is %s; only an approved version moves on a channel", ErrNotAllowed, where, v.State)
		}
		from = channelState(v.State, v.Releases, req.Channel)
		where += " on " + req.Channel
	}
	r, ok := rule(from, req.To, onChannel)
	if !ok {
		allowed := next(from, onChannel)
		msg := "nothing"
		if len(allowed) > 0 {
			msg = strings.Join(allowed, " or ")
		}
		scope := "the version"
		if !onChannel && slices.Contains([]string{api.StatePublished, api.StateListed, api.StateDelisted}, req.To) {
			scope = "the version (give a channel to publish, list or delist)"
		}
		return nil, fmt.Errorf("%w: %s is %s; %s may move to %s, not %q", ErrNotAllowed, where, from, scope, msg, req.To)
	}
	if err := c.may(ctx, who, a, v, r); err != nil {
		return nil, err
	}
	if r.Reason && strings.TrimSpace(req.Reason) == "" {
		return nil, &InvalidError{Fields: []string{fmt.Sprintf("reason: required to move from %s to %s", r.From, r.To)}}
	}
	if !text(req.Reason, 1000) && req.Reason != "" {
		return nil, &InvalidError{Fields: []string{"reason: at most 1000 bytes of text"}}
	}
	if r.To == api.StateSubmitted && a.Kind == api.KindKioskBundle {
		var s api.AppSpec
		_ = json.Unmarshal(v.Spec, &s)
		if s.Bundle == nil {
			return nil, fmt.Errorf("%w: %s has no bundle: upload it before submitting", ErrNotAllowed, where)
		}
	}
	if onChannel {
		for _, g := range c.cfg.Gates {
			if err := g.Allow(ctx, a, v, req.Channel, req.To); err != nil {
				return nil, err
			}
		}
	}
	now := c.now()
	change := func(ver, ch, from, to, reason string) store.AppChange {
		return store.AppChange{AppID: appID, Version: ver, Channel: ch, From: from, To: to, Actor: who.ID, Reason: reason, At: now}
	}
	var changes []store.AppChange
	switch {
	case r.To == api.StateListed:
		// One listed version of an app per channel: the one listed before is superseded.
		others, err := c.cfg.Store.ListReleases(ctx, store.ReleaseFilter{AppID: appID, Channel: req.Channel, State: api.StateListed})
		if err != nil {
			return nil, err
		}
		for _, o := range others {
			changes = append(changes, change(o.Version, req.Channel, api.StateListed, api.StateDelisted, "superseded by "+version))
		}
	case r.To == api.StateRetired:
		for _, ch := range sortedKeys(v.Releases) {
			if st := v.Releases[ch]; st != api.StateRetired {
				changes = append(changes, change(version, ch, st, api.StateRetired, req.Reason))
			}
		}
	}
	changes = append(changes, change(version, req.Channel, from, req.To, req.Reason))
	es, err := c.cfg.Store.ApplyChanges(ctx, changes)
	if errors.Is(err, store.ErrStale) {
		return nil, fmt.Errorf("%w: %w (read it again)", ErrNotAllowed, err)
	}
	if err != nil {
		return nil, err
	}
	c.changed()
	c.log.Info("catalog transition", "app", appID, "version", version, "channel", req.Channel, "from", from, "to", req.To, "actor", who.ID)
	return convert(es, apiAudit), nil
}

// may checks that the actor may apply rule r to version v of app a: the rule's role (a developer
// within its department), and four eyes: nobody reviews a version they submitted themselves
// (admins excepted).
func (c *Catalog) may(ctx context.Context, who Actor, a store.App, v store.AppVersion, r Rule) error {
	what := fmt.Sprintf("moving %s@%s from %s to %s", a.ID, v.Version, r.From, r.To)
	if r.Role == RoleDeveloper {
		if err := who.develops(a.DepartmentID, "app "+a.ID); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
	if !who.Has(r.Role) {
		return fmt.Errorf("%w: %s needs the %s role", ErrForbidden, what, r.Role)
	}
	if r.Role == RoleReviewer && !slices.Contains(who.Roles, RoleAdmin) {
		es, err := c.cfg.Store.AuditTrail(ctx, store.AuditFilter{AppID: a.ID, Version: v.Version})
		if err != nil {
			return err
		}
		for i := len(es) - 1; i >= 0; i-- {
			if es[i].Channel == "" && es[i].To == api.StateSubmitted {
				if es[i].Actor == who.ID {
					return fmt.Errorf("%w: you submitted %s@%s; another reviewer must review it", ErrForbidden, a.ID, v.Version)
				}
				break
			}
		}
	}
	return nil
}

// Audit returns the audit trail of an app, or of one of its versions.
func (c *Catalog) Audit(ctx context.Context, who Actor, appID, version string, limit int) ([]api.AuditEntry, error) {
	if _, err := c.app(ctx, who, appID); err != nil {
		return nil, err
	}
	es, err := c.cfg.Store.AuditTrail(ctx, store.AuditFilter{AppID: appID, Version: version, Limit: limit})
	return convert(es, apiAudit), err
}

func apiDepartment(d store.Department) api.Department {
	return api.Department{ID: d.ID, Name: d.Name, CreatedAt: d.CreatedAt}
}

func apiApp(a store.App) api.App {
	return api.App{ID: a.ID, Department: a.DepartmentID, Kind: a.Kind, Name: a.Name, Description: a.Description,
		CreatedAt: a.CreatedAt, CreatedBy: a.CreatedBy}
}

func apiVersion(v store.AppVersion) api.AppVersion {
	out := api.AppVersion{App: v.AppID, Version: v.Version, State: v.State, Channels: v.Releases,
		CreatedAt: v.CreatedAt, CreatedBy: v.CreatedBy, UpdatedAt: v.UpdatedAt}
	if out.Channels == nil {
		out.Channels = map[string]string{}
	}
	_ = json.Unmarshal(v.Spec, &out.Spec) // written by checkVersion
	if v.GuideID != "" {
		out.Guide = &api.GuideRef{ID: v.GuideID, Version: v.GuideVersion}
	}
	return out
}

func apiAudit(e store.AuditEntry) api.AuditEntry {
	return api.AuditEntry{N: e.N, App: e.AppID, Version: e.Version, Channel: e.Channel, From: e.From, To: e.To,
		Actor: e.Actor, Reason: e.Reason, At: e.At}
}

// convert converts a list, never to nil.
func convert[S, T any](in []S, f func(S) T) []T {
	out := make([]T, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// text reports whether s is 1..n bytes of printable UTF-8 (newlines allowed).
func text(s string, n int) bool {
	if strings.TrimSpace(s) == "" || len(s) > n || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 && r != '\n' && r != '\t' || r == 0x7f {
			return false
		}
	}
	return true
}

// pagePath reports whether s is a mini-program page path: segments of [A-Za-z0-9_-] joined by /.
func pagePath(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for seg := range strings.SplitSeq(s, "/") {
		if seg == "" || strings.Trim(seg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != "" {
			return false
		}
	}
	return true
}

// bundlePath reports whether s is a clean relative path inside a bundle.
func bundlePath(s string) bool {
	return s != "" && len(s) <= 256 && path.Clean(s) == s && !path.IsAbs(s) && !strings.HasPrefix(s, "../") && s != ".." &&
		!strings.ContainsAny(s, "\\?#") && utf8.ValidString(s)
}

// validID reports whether s is an ID of a department, app or guide: 2 to 64 of a-z, 0-9 and '-',
// not starting with '-'.
func validID(s string) bool {
	return len(s) >= 2 && len(s) <= 64 && s[0] != '-' && strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == ""
}
