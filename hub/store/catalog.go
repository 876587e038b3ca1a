package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// ErrStale marks a catalog change whose expected state no longer holds: someone else changed the
// app version first. The caller reads it again and decides anew.
var ErrStale = errors.New("store: changed concurrently")

// Catalog keeps the app catalog (hub/catalog): departments, their apps, each app's versions with
// their state and their state on each channel, the audit trail of every change of state, and
// service guides with their versions. The store applies changes exactly as asked, each checked
// against the state it expects; which changes are allowed, and to whom, is hub/catalog's rule.
//
// State names are hub/catalog's; the store compares them only for equality. A version's state on
// a channel is its release's state on that channel, or, while it has none there, the version's
// own state.
type Catalog interface {
	// CreateDepartment stores a department (ErrExists on a duplicate ID).
	CreateDepartment(ctx context.Context, d Department) error
	GetDepartment(ctx context.Context, id string) (Department, error)
	ListDepartments(ctx context.Context) ([]Department, error)

	// CreateApp stores an app (ErrExists on a duplicate ID; ErrNotFound for an unknown department).
	CreateApp(ctx context.Context, a App) error
	GetApp(ctx context.Context, id string) (App, error)
	// ListApps lists apps in ID order.
	ListApps(ctx context.Context, f AppFilter) ([]App, error)

	// CreateVersion stores a new version of an app in v.State, with the audit entry e (from "" to
	// v.State): ErrExists on a duplicate, ErrNotFound for an unknown app.
	CreateVersion(ctx context.Context, v AppVersion, e AuditEntry) error
	// UpdateVersion replaces the description of a version (everything but its state, releases and
	// creation) if it is still in state inState; ErrStale if it is not.
	UpdateVersion(ctx context.Context, v AppVersion, inState string) error
	// GetVersion returns a version with its releases.
	GetVersion(ctx context.Context, appID, version string) (AppVersion, error)
	// ListVersions lists an app's versions with their releases, oldest first.
	ListVersions(ctx context.Context, appID string) ([]AppVersion, error)

	// ApplyChanges applies changes in one transaction, in order, or none of them: each moves a
	// version (Channel "") or a version on a channel from the state From to To, and is recorded in
	// the audit trail. ErrNotFound for an unknown version, ErrStale when a change finds another
	// state than its From. It returns the audit entries written.
	ApplyChanges(ctx context.Context, changes []AppChange) ([]AuditEntry, error)
	// ListReleases lists releases (a version's state on a channel), by app, version, channel.
	ListReleases(ctx context.Context, f ReleaseFilter) ([]Release, error)
	// AuditTrail lists audit entries oldest first (Limit 0: all).
	AuditTrail(ctx context.Context, f AuditFilter) ([]AuditEntry, error)
	// CatalogGeneration is a number that grows with every change to the catalog (apps, versions,
	// releases, guides): a cache of the catalog built at generation g is current while it is g.
	CatalogGeneration(ctx context.Context) (int64, error)

	// CreateGuide stores a guide without versions (ErrExists, ErrNotFound for the department).
	CreateGuide(ctx context.Context, g Guide) error
	GetGuide(ctx context.Context, id string) (Guide, error)
	ListGuides(ctx context.Context, departmentID string) ([]Guide, error) // "" : all
	// AddGuideVersion stores doc as the guide's next version (1 for the first) and returns it.
	AddGuideVersion(ctx context.Context, v GuideVersion) (GuideVersion, error)
	GetGuideVersion(ctx context.Context, guideID string, version int64) (GuideVersion, error)
	// ListGuideVersions lists a guide's versions, oldest first, without their documents.
	ListGuideVersions(ctx context.Context, guideID string) ([]GuideVersion, error)
}

// Department is a government department that owns apps and guides.
type Department struct {
	ID        string
	Name      string
	CreatedAt time.Time
}

// App is a service a department offers on one or more channels.
type App struct {
	ID           string
	DepartmentID string
	Kind         string // kiosk-bundle, web-link, mini-program, mobile-module
	Name         string
	Description  string
	CreatedAt    time.Time
	CreatedBy    string // account ID
}

// AppFilter selects apps; zero fields match all.
type AppFilter struct {
	DepartmentID string
	Kind         string
}

// AppVersion is one version of an app: what it is, its state and its releases.
type AppVersion struct {
	AppID   string
	Version string
	State   string
	// Spec is what the version is, as hub/catalog describes it (entry, services, peripherals,
	// bundle, ...): stored and returned as it is.
	Spec json.RawMessage
	// The guide version published with it, if any.
	GuideID      string
	GuideVersion int64
	CreatedAt    time.Time
	CreatedBy    string
	UpdatedAt    time.Time
	Releases     map[string]string // channel -> state there
}

// AppChange is one change of state of a version (Channel "") or of a version on a channel.
type AppChange struct {
	AppID, Version string
	Channel        string
	From, To       string
	Actor          string // account ID
	Reason         string
	At             time.Time
}

// Release is a version's state on one channel.
type Release struct {
	AppID, Version, Channel string
	State                   string
	UpdatedAt               time.Time
}

// ReleaseFilter selects releases; zero fields match all.
type ReleaseFilter struct {
	AppID   string
	Channel string
	State   string
}

// AuditEntry is one change of state: who, when, from, to and why.
type AuditEntry struct {
	N              int64 // order of entries, hub-wide
	AppID, Version string
	Channel        string // "" for the version's own state
	From, To       string // From "" for a creation
	Actor          string
	Reason         string
	At             time.Time
}

// AuditFilter selects audit entries; zero fields match all.
type AuditFilter struct {
	AppID   string
	Version string
	Limit   int
}

// Guide is a service guide (办事指南) of a department; its content is in its versions.
type Guide struct {
	ID           string
	DepartmentID string
	Title        string
	CreatedAt    time.Time
	Latest       int64 // highest version, 0 while it has none
}

// GuideVersion is one immutable version of a guide's content.
type GuideVersion struct {
	GuideID   string
	Version   int64
	Doc       json.RawMessage // hub/catalog's guide document
	CreatedAt time.Time
	CreatedBy string
}
