// Package storetest is the conformance suite every hub/store backend runs (modelled on dex's
// storage/conformance): one set of subtests per domain interface, each taking that interface
// (with Devices where its records hang off devices, and Records where its changes arrive as the
// effects of committed records), plus helpers to build fixtures for a backend's own tests and
// benchmarks.
package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// T0 is the base time of the suite's fixtures.
var T0 = time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)

// What each domain's suite needs of a store: the domain, and the domains its fixtures and
// effects go through.
type (
	PresenceStore interface {
		store.Presence
		store.Devices
	}
	RecordStore interface {
		store.Records
		store.Devices
	}
	CommandStore interface {
		store.Commands
		store.Records
		store.Devices
	}
	StateStore interface {
		store.State
		store.Records
		store.Devices
	}
)

// Run runs every domain's suite on a whole store. open returns a new, empty store for each
// subtest and closes it with t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("Devices", func(t *testing.T) { RunDevices(t, as[store.Devices](open)) })
	t.Run("Presence", func(t *testing.T) { RunPresence(t, as[PresenceStore](open)) })
	t.Run("Replicas", func(t *testing.T) { RunReplicas(t, as[ReplicaStore](open)) })
	t.Run("Records", func(t *testing.T) { RunRecords(t, as[RecordStore](open)) })
	t.Run("Commands", func(t *testing.T) { RunCommands(t, as[CommandStore](open)) })
	t.Run("State", func(t *testing.T) { RunState(t, as[StateStore](open)) })
	t.Run("Identity", func(t *testing.T) { RunIdentity(t, as[store.Identity](open)) })
	t.Run("Events", func(t *testing.T) { RunEvents(t, as[EventStore](open)) })
	t.Run("Cases", func(t *testing.T) { RunCases(t, as[store.Cases](open)) })
	t.Run("Ratings", func(t *testing.T) { RunRatings(t, as[store.Ratings](open)) })
	t.Run("Outreach", func(t *testing.T) { RunOutreach(t, as[store.Outreach](open)) })
	t.Run("Journal", func(t *testing.T) { RunJournal(t, as[JournalStore](open)) })
	t.Run("SecurityEvents", func(t *testing.T) { RunSecurityEvents(t, as[SecurityEventStore](open)) })
	t.Run("Alerts", func(t *testing.T) { RunAlerts(t, as[AlertStore](open)) })
	t.Run("Audit", func(t *testing.T) { RunAudit(t, as[store.StaffAudit](open)) })
	t.Run("Catalog", func(t *testing.T) { RunCatalog(t, as[store.Catalog](open)) })
	t.Run("Blobs", func(t *testing.T) { RunBlobs(t, as[store.Blobs](open)) })
	t.Run("Updates", func(t *testing.T) { RunUpdates(t, as[store.Updates](open)) })
	t.Run("Rollouts", func(t *testing.T) { RunRollouts(t, as[RolloutStore](open)) })
	t.Run("Bulk", func(t *testing.T) { RunBulk(t, as[store.Bulk](open)) })
	t.Run("WorkOrders", func(t *testing.T) { RunWorkOrders(t, as[WorkOrderStore](open)) })
	t.Run("Check", func(t *testing.T) {
		if err := open(t).Check(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
}

// RunDevices runs the suite of store.Devices.
func RunDevices(t *testing.T, open func(t *testing.T) store.Devices) {
	suite[store.Devices]{
		{"Sites", testSites},
		{"EnrollmentToken", testEnrollmentToken},
		{"EnrollConcurrentRedeem", testEnrollConcurrent},
		{"Devices", testDevices},
	}.run(t, open)
}

// RunPresence runs the suite of store.Presence.
func RunPresence(t *testing.T, open func(t *testing.T) PresenceStore) {
	suite[PresenceStore]{
		{"Presence", testPresence},
		{"History", testPresenceHistory},
		{"OnlineFilter", testOnlineFilter},
		{"Retire", testRetire},
	}.run(t, open)
}

// RunRecords runs the suite of store.Records.
func RunRecords(t *testing.T, open func(t *testing.T) RecordStore) {
	suite[RecordStore]{
		{"CommitAndList", testCommitAndList},
		{"CommitIdempotent", testCommitIdempotent},
		{"GapThenFill", testGapThenFill},
		{"CommitModel", testCommitModel},
		{"Epochs", testEpochs},
		{"WatermarkOrder", testWatermarkOrder},
		{"ListRecordsPaging", testListRecordsPaging},
		{"HealthAndPeripherals", testHealth},
		{"LastSeen", testLastSeen},
		{"Concurrency", testConcurrency},
	}.run(t, open)
}

// RunCommands runs the suite of store.Commands.
func RunCommands(t *testing.T, open func(t *testing.T) CommandStore) {
	suite[CommandStore]{
		{"CommandTransitions", testCommandTransitions},
		{"ExpireAndPending", testExpireAndPending},
	}.run(t, open)
}

// RunState runs the suite of store.State.
func RunState(t *testing.T, open func(t *testing.T) StateStore) {
	suite[StateStore]{
		{"Desired", testDesired},
		{"UpdateDesired", testUpdateDesired},
		{"Reported", testReported},
	}.run(t, open)
}

// suite is a domain's named subtests; each runs on a new, empty store.
type suite[S any] []struct {
	name string
	fn   func(t *testing.T, s S)
}

func (s suite[S]) run(t *testing.T, open func(t *testing.T) S) {
	for _, tc := range s {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

// as narrows the stores open returns to S, an interface that store.Store implements.
func as[S any](open func(t *testing.T) store.Store) func(t *testing.T) S {
	return func(t *testing.T) S { return open(t).(S) }
}

// Enroll creates site siteID (if missing) in region "440305" and enrolls deviceID there.
func Enroll(t testing.TB, s store.Devices, siteID, deviceID string) store.Device {
	t.Helper()
	ctx := context.Background()
	if _, err := s.GetSite(ctx, siteID); errors.Is(err, store.ErrNotFound) {
		if err := s.CreateSite(ctx, store.Site{ID: siteID, Name: "Hall " + siteID, Region: "440305"}); err != nil {
			t.Fatal(err)
		}
	}
	h := sha256.Sum256([]byte("secret-" + deviceID))
	tok := store.EnrollmentToken{ID: "tok-" + deviceID, Hash: h[:], SiteID: siteID, CreatedAt: T0, ExpiresAt: T0.Add(time.Hour)}
	if err := s.CreateEnrollmentToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	d, err := s.EnrollDevice(ctx, h[:], store.Device{ID: deviceID, Model: "K1", CertSerial: "01", CertExpiry: T0.AddDate(1, 0, 0)}, T0)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// Body returns a JSON object of about size bytes.
func Body(size int) json.RawMessage {
	if size < 16 {
		size = 16
	}
	return json.RawMessage(`{"p":"` + strings.Repeat("x", size-8) + `"}`)
}

// NewBatch returns a batch of n telemetry records of deviceID and epoch with seqs from, from+1,
// ... and bodies of about bodySize bytes, received at T0.
func NewBatch(deviceID, epoch string, from uint64, n, bodySize int) store.Batch {
	b := store.Batch{DeviceID: deviceID, Epoch: epoch, RecvTS: T0, Records: make([]store.IncomingRecord, n)}
	body := Body(bodySize)
	for i := range b.Records {
		seq := from + uint64(i)
		b.Records[i] = store.IncomingRecord{Record: wire.Record{Seq: seq, Kind: "telemetry.x", Class: wire.Telemetry,
			TS: T0.UnixMilli() + int64(seq), Body: body}}
	}
	return b
}

func commit(t *testing.T, s store.Records, bs ...store.Batch) []store.Watermark {
	t.Helper()
	m, err := s.CommitBatches(t.Context(), bs)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func wantMark(t *testing.T, s store.Records, device, epoch string, want uint64) {
	t.Helper()
	got, err := s.Watermark(t.Context(), device, epoch)
	if err != nil || got != want {
		t.Fatalf("Watermark(%s, %s) = %d, %v; want %d", device, epoch, got, err, want)
	}
}

func records(t *testing.T, s store.Records, f store.RecordFilter) []store.Record {
	t.Helper()
	rs, err := s.ListRecords(t.Context(), f)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// seqs renders records as "epoch:seq" strings.
func seqs(rs []store.Record) string {
	var b strings.Builder
	for i, r := range rs {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s:%d", r.Epoch, r.Seq)
	}
	return b.String()
}

func span(epoch string, from, to uint64) string {
	var parts []string
	for i := from; i <= to; i++ {
		parts = append(parts, fmt.Sprintf("%s:%d", epoch, i))
	}
	return strings.Join(parts, " ")
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: err = %v, want %v", what, err, want)
	}
}
