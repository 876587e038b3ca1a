// Package store defines the hub's storage: one small interface per domain, the hub's own record
// types and the sentinel errors every backend returns. Backends live in subpackages (sqlite,
// postgres), keep their schema as migrations of their own dialect, and all run the
// conformance suite in storetest, one set of subtests per domain.
//
// The domains, one file each:
//
//	devices.go   Devices   sites, enrollment tokens, enrolled devices and their certificates
//	presence.go  Presence  online and offline as the hub sees it
//	replicas.go  Replicas  hub replicas on one database: presence leases, pinned secrets
//	records.go   Records   uplink records, committed in groups, and their watermarks
//	commands.go  Commands  commands to devices and their life cycle
//	state.go     State     desired and reported configuration documents
//	identity.go  Identity  the OpenID Provider's clients, accounts, grants, keys and sessions
//	events.go    Events    the unified event stream of every channel and its rollups
//	cases.go     Cases     citizens' cases (办件): status timelines and documents
//	ratings.go   Ratings   ratings of services (好差评), aggregates, follow-ups of bad ones
//	outreach.go  Outreach  citizens' opt-outs of recommendations (服务找人)
//	journal.go   Journal   how far each kiosk's transaction journal is verified, and security events
//	             SecurityEvents  security events of every source: journal breaks, refusals, counted per minute
//	catalog.go   Catalog   departments, apps, versions, releases per channel, audit, guides
//	blobs.go     Blobs     content-addressed bytes: bundles, agent binaries, guide templates
//	updates.go   Updates   the update repository's signed metadata (The Update Framework)
//	rollouts.go  Rollouts  staged rollouts of apps and agent versions, and device tags
//	bulk.go      Bulk      bulk jobs: one action to the kiosks a filter selected, per-kiosk progress
//	workorders.go Silences, WorkOrders  alert silences (maintenance windows) and work orders for visits
//
// Store composes every domain; a caller asks for the smallest set it uses.
//
// Open chooses the backend by URL: "sqlite:var/hub/hub.db" or "postgres://host/db". Each backend
// registers its URL scheme (Register) and keeps its migrations in its own dialect, in its own
// folder (hub/store/sqlite/migrations, hub/store/postgres/migrations), applied by pkg/migrate when
// it opens.
package store

import (
	"context"
	"errors"
)

var (
	ErrNotFound      = errors.New("store: not found")
	ErrExists        = errors.New("store: already exists")
	ErrTokenUsed     = errors.New("store: enrollment token already used")
	ErrTokenExpired  = errors.New("store: enrollment token expired")
	ErrBadTransition = errors.New("store: command state transition not allowed")
	ErrInvalid       = errors.New("store: invalid value")
	ErrConflict      = errors.New("store: changed concurrently")
)

// Store is the hub's storage: every domain, on one backend. All methods are safe for concurrent
// use.
type Store interface {
	Devices
	Presence
	Replicas
	Records
	Commands
	State
	Identity
	Events
	Cases
	Ratings
	Outreach
	Journal
	SecurityEvents
	Alerts
	StaffAudit
	Catalog
	Blobs
	Updates
	Rollouts
	Bulk
	Silences
	WorkOrders

	// Ping checks cheaply that the backend answers (health endpoints).
	Ping(ctx context.Context) error
	// Check runs the backend's full integrity check (slow on a large database: start-up and ops).
	Check(ctx context.Context) error
	Close() error
}
