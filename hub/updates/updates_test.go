package updates_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/kioskfleet/kioskfleet/hub/store/sqlite"
	"github.com/kioskfleet/kioskfleet/hub/updates"
	"github.com/kioskfleet/kioskfleet/pkg/bundle"
	"github.com/kioskfleet/kioskfleet/pkg/tufmeta"
	"github.com/kioskfleet/kioskfleet/pkg/tufmeta/tuftest"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newRepo(t *testing.T) (*updates.Repository, *sqlite.Store, *clock, ed25519.PrivateKey) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "hub.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	online, err := updates.LoadOrCreateKey(filepath.Join(t.TempDir(), "online.key"))
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Now().UTC()}
	r, err := updates.New(updates.Config{Store: st, OnlineKey: online, Now: c.Now, TimestampTTL: time.Hour, SnapshotTTL: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return r, st, c, online
}

func TestRootRules(t *testing.T) {
	ctx := context.Background()
	r, _, c, _ := newRepo(t)
	keys := tuftest.NewKeys(t)
	onlineKey, _ := r.OnlineKey()
	if _, err := r.Targets(ctx); !errors.Is(err, updates.ErrNoRoot) {
		t.Fatalf("targets without root: %v", err)
	}
	wantRefused := func(what string, data []byte, msg string) {
		t.Helper()
		err := r.SetRoot(ctx, data)
		if !errors.Is(err, updates.ErrRefused) || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: %v, want refused with %q", what, err, msg)
		}
	}
	wantRefused("version 2 first", keys.Root(t, 2, c.Now().Add(time.Hour), onlineKey), "the next one is 1")
	other, _, _ := tufmeta.PublicKey(tuftest.Key(t))
	wantRefused("another online key", keys.Root(t, 1, c.Now().Add(time.Hour), other), "online key")
	wantRefused("expired", keys.Root(t, 1, c.Now().Add(-time.Hour), onlineKey), "expired")
	unsigned := keys.Root(t, 1, c.Now().Add(time.Hour), onlineKey, tuftest.Unsigned)
	wantRefused("unsigned", unsigned, "not signed by its own")
	if err := r.SetRoot(ctx, keys.Root(t, 1, c.Now().Add(24*time.Hour), onlineKey)); err != nil {
		t.Fatal(err)
	}
	// Version 2 must be signed by version 1's root key too.
	rotated := tuftest.NewKeys(t)
	wantRefused("rotation signed by the new key only", rotated.Root(t, 2, c.Now().Add(24*time.Hour), onlineKey), "root keys of version 1")
	if err := r.SetRoot(ctx, rotated.Root(t, 2, c.Now().Add(24*time.Hour), onlineKey, tuftest.AlsoSignedBy(keys.RootKey))); err != nil {
		t.Fatalf("rotation signed by both: %v", err)
	}
}

// TestTargetsAndServing: targets signed offline are taken only when they verify and name files
// the hub holds; the hub then signs snapshot and timestamp, serves everything a TUF client
// fetches, and renews its signatures as they age.
func TestTargetsAndServing(t *testing.T) {
	ctx := context.Background()
	r, st, c, _ := newRepo(t)
	keys := tuftest.NewKeys(t)
	onlineKey, _ := r.OnlineKey()
	if err := r.SetRoot(ctx, keys.Root(t, 1, c.Now().Add(24*time.Hour), onlineKey)); err != nil {
		t.Fatal(err)
	}
	archive := tuftest.Bundle(t, bundle.Manifest{App: "tax-print", Version: "1.0.0"}, 1000)
	name := tufmeta.BundleTarget("tax-print", "1.0.0")
	tf := tuftest.Target(t, archive, "tax-print", "1.0.0")
	exp := c.Now().Add(24 * time.Hour)
	signed := func(v int64, k ed25519.PrivateKey) []byte {
		b, err := tufmeta.NewTargets(v, exp, map[string]*metadata.TargetFiles{name: tf}, k)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if err := r.SetTargets(ctx, signed(1, keys.TargetsKey)); !errors.Is(err, updates.ErrRefused) || !strings.Contains(err.Error(), "holds no file") {
		t.Fatalf("a target the hub cannot serve: %v", err)
	}
	if _, err := r.PutTarget(ctx, archive, "application/gzip"); err != nil {
		t.Fatal(err)
	}
	if err := r.SetTargets(ctx, signed(1, tuftest.Key(t))); !errors.Is(err, updates.ErrRefused) || !strings.Contains(err.Error(), "not signed by the targets keys") {
		t.Fatalf("targets signed by another key: %v", err)
	}
	if err := r.SetTargets(ctx, signed(2, keys.TargetsKey)); !errors.Is(err, updates.ErrRefused) {
		t.Fatalf("targets version 2 first: %v", err)
	}
	if err := r.SetTargets(ctx, signed(1, keys.TargetsKey)); err != nil {
		t.Fatal(err)
	}
	if err := r.SetTargets(ctx, signed(1, keys.TargetsKey)); !errors.Is(err, updates.ErrRefused) {
		t.Fatalf("targets version 1 again: %v", err)
	}
	srv := httptest.NewServer(r.Handler())
	defer srv.Close()
	get := func(path string, header ...string) (int, []byte) {
		req, _ := http.NewRequest("GET", srv.URL+updates.Prefix+path, nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, b
	}
	for _, p := range []string{"1.root.json", "timestamp.json", "1.snapshot.json", "1.targets.json"} {
		if s, _ := get(p); s != 200 {
			t.Errorf("%s: %d", p, s)
		}
	}
	for _, p := range []string{"2.root.json", "0.targets.json", "1.timestamp.json", "x.json", "../hub.db", "targets/" + name} {
		if s, _ := get(p); s != 404 {
			t.Errorf("%s: %d, want 404", p, s)
		}
	}
	remote := "targets/" + tufmeta.RemoteName(name, tufmeta.SHA256(tf))
	if s, b := get(remote); s != 200 || string(b) != string(archive) {
		t.Fatalf("target: %d, %d bytes", s, len(b))
	}
	if s, b := get(remote, "Range", "bytes=100-"); s != 206 || string(b) != string(archive[100:]) {
		t.Fatalf("resumed target: %d, %d bytes", s, len(b))
	}
	if s, _ := get(remote, "If-None-Match", `"`+tufmeta.SHA256(tf)+`"`); s != 304 {
		t.Fatalf("cached target: %d", s)
	}
	// A file the hub holds but that no target names is not served.
	stray := []byte("not a target")
	sum, _ := r.PutTarget(ctx, stray, "application/octet-stream")
	if s, _ := get("targets/bundles/x/" + sum + ".x"); s != 404 {
		t.Fatalf("unsigned file served: %d", s)
	}
	stats := r.Stats()
	if stats.CacheMisses != 1 || stats.CacheHits < 2 || stats.RangeRequests != 1 || stats.NotModified != 1 {
		t.Fatalf("stats: %+v", stats)
	}

	// The hub renews the timestamp at half its life, the snapshot at half its.
	ts0, _ := st.LatestMetadata(ctx, tufmeta.Timestamp)
	sn0, _ := st.LatestMetadata(ctx, tufmeta.Snapshot)
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if ts, _ := st.LatestMetadata(ctx, tufmeta.Timestamp); ts.Version != ts0.Version {
		t.Fatal("timestamp renewed too early")
	}
	c.Add(31 * time.Minute)
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	ts1, _ := st.LatestMetadata(ctx, tufmeta.Timestamp)
	sn1, _ := st.LatestMetadata(ctx, tufmeta.Snapshot)
	if ts1.Version != ts0.Version+1 || sn1.Version != sn0.Version || !ts1.Expires.After(ts0.Expires) {
		t.Fatalf("after 31 min: timestamp %d -> %d, snapshot %d -> %d", ts0.Version, ts1.Version, sn0.Version, sn1.Version)
	}
	c.Add(12 * time.Hour)
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if sn2, _ := st.LatestMetadata(ctx, tufmeta.Snapshot); sn2.Version != sn1.Version+1 {
		t.Fatal("snapshot not renewed at half its life")
	}
}
