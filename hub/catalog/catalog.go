// Package catalog is the hub's app catalog: departments, their apps (kiosk bundles, web links,
// mini-program pages, mobile modules) in versions that go through review and are then published,
// listed and delisted per channel (the lifecycle, lifecycle.go), with an audit trail of every
// change of state; and service guides (办事指南), versioned, published with the apps and served
// to every channel as JSON and as a page.
//
// Who may do what comes from the caller's staff roles (Actor): a developer works on its own
// department's apps and guides, a reviewer approves or rejects, an operator publishes and lists;
// admin may do everything. The catalog channels read (what is listed on them) is built once per
// change and kept in memory (Published), so that reading it costs no database round trip.
package catalog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

var (
	// ErrForbidden marks a request the caller's roles or department do not allow (HTTP 403).
	ErrForbidden = errors.New("catalog: forbidden")
	// ErrNotAllowed marks a request the state of the app version does not allow (HTTP 409).
	ErrNotAllowed = errors.New("catalog: not allowed in this state")
)

// Store is the storage the catalog uses.
type Store interface {
	store.Catalog
	store.Blobs
}

// Actor is who asks: a staff account with its roles and, for a developer, its department.
type Actor struct {
	ID         string
	Roles      []string
	Department string
}

// Has reports whether the actor has role (admin has every role).
func (a Actor) Has(role string) bool {
	return slices.Contains(a.Roles, role) || slices.Contains(a.Roles, RoleAdmin)
}

// develops checks that the actor may work on department dept's apps and guides: an admin, or a
// developer of that department.
func (a Actor) develops(dept, what string) error {
	switch {
	case slices.Contains(a.Roles, RoleAdmin):
		return nil
	case !slices.Contains(a.Roles, RoleDeveloper):
		return fmt.Errorf("%w: %s needs the developer role", ErrForbidden, what)
	case a.Department != dept:
		return fmt.Errorf("%w: %s belongs to department %s; you are a developer of %s", ErrForbidden, what, dept, orNone(a.Department))
	}
	return nil
}

// sees reports whether the actor may read department dept's apps and guides: a developer reads
// only its own department's, reviewers, operators and admins every department's.
func (a Actor) sees(dept string) bool {
	return a.Has(RoleReviewer) || a.Has(RoleOperator) || a.Department == dept
}

func orNone(s string) string {
	if s == "" {
		return "no department"
	}
	return s
}

// Config configures a Catalog.
type Config struct {
	Store Store
	Log   *slog.Logger     // nil: discard
	Now   func() time.Time // nil: time.Now
	// Refresh is how often the published catalog is checked against the store's generation, for
	// changes made by other hub replicas (changes made through this Catalog show at once);
	// default 1 s.
	Refresh time.Duration
	// Gates, if set, are asked before an app version moves on a channel; an error refuses the
	// transition (the kiosk channel's needs its bundle signed, see hub/updates).
	Gates []Gate
}

// Gate is asked before a transition on a channel.
type Gate interface {
	// Allow returns an error wrapping ErrNotAllowed when v may not move to state to on channel.
	Allow(ctx context.Context, app store.App, v store.AppVersion, channel, to string) error
}

// Catalog is the app catalog. Its methods are safe for concurrent use.
type Catalog struct {
	cfg Config
	log *slog.Logger
	pub published
}

// New returns a Catalog.
func New(cfg Config) (*Catalog, error) {
	if cfg.Store == nil {
		return nil, errors.New("catalog: no store")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = time.Second
	}
	c := &Catalog{cfg: cfg, log: cfg.Log}
	c.pub.init(c)
	return c, nil
}

// changed is called after every change this process made to the catalog: the published catalog
// is rebuilt at its next read.
func (c *Catalog) changed() { c.pub.invalidate() }

func (c *Catalog) now() time.Time { return c.cfg.Now().UTC() }

// invalid builds an error wrapping store.ErrInvalid from field problems.
type problems []string

func (p *problems) check(ok bool, field, format string, a ...any) {
	if !ok {
		*p = append(*p, field+": "+fmt.Sprintf(format, a...))
	}
}

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return &InvalidError{Fields: p}
}

// InvalidError lists every problem of a request; it wraps store.ErrInvalid.
type InvalidError struct{ Fields []string }

func (e *InvalidError) Error() string { return "invalid request: " + strings.Join(e.Fields, "; ") }

// Unwrap makes errors.Is(err, store.ErrInvalid) true.
func (e *InvalidError) Unwrap() error { return store.ErrInvalid }
