// Package updates is the hub's update repository, The Update Framework (TUF): the signed metadata
// and the targets — kiosk bundles and agent binaries — that agents fetch and verify
// (agent/bundles). Root and targets metadata are signed offline with keys the hub never holds
// (fleetctl keys) and only checked here; snapshot and timestamp are signed by the hub with its
// online key (kept in the data folder), when targets change and before they expire. The
// repository is served over HTTP under /tuf/ with consistent snapshots (docs/catalog.md).
package updates

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/tufmeta"
)

var (
	// ErrRefused marks metadata the repository does not take (HTTP 400 or 409): not signed by
	// the keys root names, not the next version, expired, or naming targets it cannot serve.
	ErrRefused = errors.New("updates: refused")
	// ErrNoRoot marks a repository whose root has not been set yet (fleetctl keys init).
	ErrNoRoot = errors.New("updates: the repository has no root yet: run fleetctl keys init")
)

// Store is what the repository keeps: its metadata and the targets' bytes.
type Store interface {
	store.Updates
	store.Blobs
}

// Config configures a Repository.
type Config struct {
	Store Store
	// OnlineKey signs snapshot and timestamp (LoadOrCreateKey).
	OnlineKey ed25519.PrivateKey
	Log       *slog.Logger
	Now       func() time.Time // nil: time.Now
	// How long the hub's signatures last; each is renewed when half of it has passed (Refresh).
	// Defaults: timestamp 1 day, snapshot 7 days. A kiosk that cannot reach the hub for longer
	// than the timestamp's life refuses to update (a freeze attack looks the same).
	TimestampTTL, SnapshotTTL time.Duration
	// CacheBytes bounds the targets kept in memory to serve (default 512 MiB).
	CacheBytes int64
}

// Repository is the hub's update repository. Its methods are safe for concurrent use; several
// hub replicas may share one store (a version signed by two replicas at once is kept once).
type Repository struct {
	cfg      Config
	log      *slog.Logger
	onlineID string
	online   *metadata.Key
	mu       sync.Mutex // serialises this process's signing
	cache    *blobCache
	// targetsView is the current targets' hashes by name, for serving (serve.go).
	targetsView atomic.Pointer[signedTargets]
	counts      struct{ targets, hits, misses, bytes, metadata, notModified, ranges atomic.Int64 }
}

// Stats counts what the repository served since it started.
type Stats struct {
	TargetRequests int64 `json:"targetRequests"`
	CacheHits      int64 `json:"cacheHits"`   // targets served from memory
	CacheMisses    int64 `json:"cacheMisses"` // targets read from the store
	TargetBytes    int64 `json:"targetBytes"` // body bytes of targets sent
	Metadata       int64 `json:"metadataRequests"`
	NotModified    int64 `json:"notModified"`   // answered 304
	RangeRequests  int64 `json:"rangeRequests"` // resumed downloads
}

// New returns a Repository.
func New(cfg Config) (*Repository, error) {
	if cfg.Store == nil || cfg.OnlineKey == nil {
		return nil, errors.New("updates: Config needs a Store and an OnlineKey")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.TimestampTTL <= 0 {
		cfg.TimestampTTL = 24 * time.Hour
	}
	if cfg.SnapshotTTL <= 0 {
		cfg.SnapshotTTL = 7 * 24 * time.Hour
	}
	if cfg.CacheBytes <= 0 {
		cfg.CacheBytes = 512 << 20
	}
	key, id, err := tufmeta.PublicKey(cfg.OnlineKey)
	if err != nil {
		return nil, err
	}
	return &Repository{cfg: cfg, log: cfg.Log, online: key, onlineID: id, cache: newBlobCache(cfg.CacheBytes)}, nil
}

// LoadOrCreateKey loads the hub's online key from file, or makes it (mode 0600) at first start.
func LoadOrCreateKey(file string) (ed25519.PrivateKey, error) {
	k, err := tufmeta.ReadKey(file)
	if err == nil {
		return k, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("updates: online key: %w", err)
	}
	if k, err = tufmeta.GenerateKey(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return nil, err
	}
	if err := tufmeta.WriteKey(file, k); err != nil {
		return nil, fmt.Errorf("updates: online key: %w", err)
	}
	return k, nil
}

// OnlineKey returns the hub's online key (public) and its ID: what a root names for snapshot and
// timestamp.
func (r *Repository) OnlineKey() (*metadata.Key, string) { return r.online, r.onlineID }

func (r *Repository) now() time.Time { return r.cfg.Now().UTC() }

func refused(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrRefused, fmt.Sprintf(format, a...))
}

// root returns the latest root.
func (r *Repository) root(ctx context.Context) (*metadata.Metadata[metadata.RootType], error) {
	m, err := r.cfg.Store.LatestMetadata(ctx, tufmeta.Root)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNoRoot
	}
	if err != nil {
		return nil, err
	}
	return metadata.Root().FromBytes(m.Data)
}

// SetRoot takes a new root (the first, or the next version, signed by the threshold of the
// previous root's root keys and of its own): it must have the repository's shape and name the
// hub's online key for snapshot and timestamp (TUF §5.3.4).
func (r *Repository) SetRoot(ctx context.Context, data []byte) error {
	nr, err := metadata.Root().FromBytes(data)
	if err != nil {
		return refused("not root metadata: %v", err)
	}
	if err := tufmeta.CheckRootShape(nr, r.onlineID); err != nil {
		return refused("%v", err)
	}
	if nr.Signed.IsExpired(r.now()) {
		return refused("root version %d expired at %s", nr.Signed.Version, nr.Signed.Expires)
	}
	want := int64(1)
	prev, err := r.root(ctx)
	switch {
	case errors.Is(err, ErrNoRoot):
	case err != nil:
		return err
	default:
		want = prev.Signed.Version + 1
		if err := prev.VerifyDelegate(tufmeta.Root, nr); err != nil {
			return refused("root version %d is not signed by the root keys of version %d: %v", nr.Signed.Version, prev.Signed.Version, err)
		}
	}
	if nr.Signed.Version != want {
		return refused("root version %d: the next one is %d", nr.Signed.Version, want)
	}
	if err := nr.VerifyDelegate(tufmeta.Root, nr); err != nil {
		return refused("root version %d is not signed by its own root keys: %v", nr.Signed.Version, err)
	}
	if err := r.cfg.Store.PutMetadata(ctx, store.TUFMetadata{Role: tufmeta.Root, Version: nr.Signed.Version, Data: data,
		Expires: nr.Signed.Expires, CreatedAt: r.now()}); err != nil {
		if errors.Is(err, store.ErrExists) {
			return refused("root version %d was set meanwhile", nr.Signed.Version)
		}
		return err
	}
	r.log.Info("update repository: root set", "version", nr.Signed.Version)
	// A new root may change the keys: sign the online roles anew so they verify under it.
	if _, err := r.cfg.Store.LatestMetadata(ctx, tufmeta.Targets); err == nil {
		return r.resign(ctx, true)
	}
	return nil
}

// Targets returns the current targets metadata (ErrNoRoot, or store.ErrNotFound while none was
// signed).
func (r *Repository) Targets(ctx context.Context) (*metadata.Metadata[metadata.TargetsType], error) {
	if _, err := r.root(ctx); err != nil {
		return nil, err
	}
	m, err := r.cfg.Store.LatestMetadata(ctx, tufmeta.Targets)
	if err != nil {
		return nil, err
	}
	return metadata.Targets().FromBytes(m.Data)
}

// TargetsData returns the current targets metadata as signed (for fleetctl to extend).
func (r *Repository) TargetsData(ctx context.Context) ([]byte, error) {
	m, err := r.cfg.Store.LatestMetadata(ctx, tufmeta.Targets)
	return m.Data, err
}

// SetTargets takes the next version of the targets metadata, signed by the targets keys root
// names, naming only targets whose bytes the hub holds with that length and hash, and signs a
// snapshot and a timestamp for it.
func (r *Repository) SetTargets(ctx context.Context, data []byte) error {
	root, err := r.root(ctx)
	if err != nil {
		return err
	}
	t, err := metadata.Targets().FromBytes(data)
	if err != nil {
		return refused("not targets metadata: %v", err)
	}
	if err := root.VerifyDelegate(tufmeta.Targets, t); err != nil {
		return refused("targets version %d is not signed by the targets keys of root version %d: %v", t.Signed.Version, root.Signed.Version, err)
	}
	if t.Signed.IsExpired(r.now()) {
		return refused("targets version %d expired at %s", t.Signed.Version, t.Signed.Expires)
	}
	want := int64(1)
	if cur, err := r.cfg.Store.LatestMetadata(ctx, tufmeta.Targets); err == nil {
		want = cur.Version + 1
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if t.Signed.Version != want {
		return refused("targets version %d: the next one is %d", t.Signed.Version, want)
	}
	if t.Signed.Delegations != nil {
		return refused("targets: delegations are not used by this repository")
	}
	for name, tf := range t.Signed.Targets {
		if _, err := tufmeta.CustomOf(tf); err != nil {
			return refused("target %s: %v", name, err)
		}
		sum := tufmeta.SHA256(tf)
		b, err := r.cfg.Store.StatBlob(ctx, sum)
		if errors.Is(err, store.ErrNotFound) {
			return refused("target %s: the hub holds no file with sha256 %s (upload it first)", name, sum)
		}
		if err != nil {
			return err
		}
		if b.Size != tf.Length {
			return refused("target %s: length %d, the file the hub holds has %d bytes", name, tf.Length, b.Size)
		}
	}
	if err := r.cfg.Store.PutMetadata(ctx, store.TUFMetadata{Role: tufmeta.Targets, Version: t.Signed.Version, Data: data,
		Expires: t.Signed.Expires, CreatedAt: r.now()}); err != nil {
		if errors.Is(err, store.ErrExists) {
			return refused("targets version %d was set meanwhile", t.Signed.Version)
		}
		return err
	}
	r.log.Info("update repository: targets set", "version", t.Signed.Version, "targets", len(t.Signed.Targets))
	return r.resign(ctx, true)
}

// Refresh renews the hub's signatures that are past half their life: the timestamp, and the
// snapshot with it. Run calls it periodically; every replica may.
func (r *Repository) Refresh(ctx context.Context) error {
	if _, err := r.cfg.Store.LatestMetadata(ctx, tufmeta.Targets); errors.Is(err, store.ErrNotFound) {
		return nil // nothing to sign for yet
	} else if err != nil {
		return err
	}
	now := r.now()
	snap, err := r.cfg.Store.LatestMetadata(ctx, tufmeta.Snapshot)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if errors.Is(err, store.ErrNotFound) || snap.Expires.Sub(now) < r.cfg.SnapshotTTL/2 {
		return r.resign(ctx, true)
	}
	ts, err := r.cfg.Store.LatestMetadata(ctx, tufmeta.Timestamp)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if errors.Is(err, store.ErrNotFound) || ts.Expires.Sub(now) < r.cfg.TimestampTTL/2 {
		return r.resign(ctx, false)
	}
	return nil
}

// Run refreshes the hub's signatures every interval until ctx ends.
func (r *Repository) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := r.Refresh(ctx); err != nil && ctx.Err() == nil {
			r.log.Error("update repository: refresh failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// resign signs a new timestamp, and first a new snapshot when withSnapshot. Another replica
// that signed the same version first wins; this one then takes its.
func (r *Repository) resign(ctx context.Context, withSnapshot bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	targets, err := r.cfg.Store.LatestMetadata(ctx, tufmeta.Targets)
	if err != nil {
		return err
	}
	snap, err := r.cfg.Store.LatestMetadata(ctx, tufmeta.Snapshot)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if withSnapshot || errors.Is(err, store.ErrNotFound) {
		s := metadata.Snapshot(now.Add(r.cfg.SnapshotTTL).Truncate(time.Second))
		s.Signed.Version = snap.Version + 1
		s.Signed.Meta = map[string]*metadata.MetaFiles{"targets.json": metaFile(targets.Version, targets.Data)}
		if snap, err = r.sign(ctx, tufmeta.Snapshot, s.Signed.Version, s.Signed.Expires, func() ([]byte, error) {
			if err := tufmeta.Sign(s, r.cfg.OnlineKey); err != nil {
				return nil, err
			}
			return s.ToBytes(false)
		}); err != nil {
			return err
		}
	}
	prev, err := r.cfg.Store.LatestMetadata(ctx, tufmeta.Timestamp)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	ts := metadata.Timestamp(now.Add(r.cfg.TimestampTTL).Truncate(time.Second))
	ts.Signed.Version = prev.Version + 1
	// The timestamp pins the snapshot's length and hash, so that a snapshot of the right version
	// but other content is refused (TUF §5.5.2, mix-and-match).
	ts.Signed.Meta = map[string]*metadata.MetaFiles{"snapshot.json": metaFile(snap.Version, snap.Data)}
	_, err = r.sign(ctx, tufmeta.Timestamp, ts.Signed.Version, ts.Signed.Expires, func() ([]byte, error) {
		if err := tufmeta.Sign(ts, r.cfg.OnlineKey); err != nil {
			return nil, err
		}
		return ts.ToBytes(false)
	})
	return err
}

// sign stores a version of an online role made by encode; if another replica stored that
// version first, its is returned.
func (r *Repository) sign(ctx context.Context, role string, version int64, expires time.Time, encode func() ([]byte, error)) (store.TUFMetadata, error) {
	data, err := encode()
	if err != nil {
		return store.TUFMetadata{}, err
	}
	m := store.TUFMetadata{Role: role, Version: version, Data: data, Expires: expires, CreatedAt: r.now()}
	err = r.cfg.Store.PutMetadata(ctx, m)
	if errors.Is(err, store.ErrExists) {
		return r.cfg.Store.GetMetadata(ctx, role, version)
	}
	if err == nil {
		r.log.Debug("update repository: signed", "role", role, "version", version, "expires", expires)
	}
	return m, err
}

func metaFile(version int64, data []byte) *metadata.MetaFiles {
	h := sha256.Sum256(data)
	m := metadata.MetaFile(version)
	m.Length, m.Hashes = int64(len(data)), metadata.Hashes{"sha256": h[:]}
	return m
}

// Target returns the current signed description of a target (store.ErrNotFound if it is not
// one).
func (r *Repository) Target(ctx context.Context, name string) (*metadata.TargetFiles, error) {
	t, err := r.Targets(ctx)
	if err != nil {
		return nil, err
	}
	tf, ok := t.Signed.Targets[name]
	if !ok {
		return nil, fmt.Errorf("%w: target %s is not signed", store.ErrNotFound, name)
	}
	return tf, nil
}

// PutTarget stores a target's bytes (an agent binary; bundles come through the catalog) and
// returns their SHA-256.
func (r *Repository) PutTarget(ctx context.Context, data []byte, mediaType string) (string, error) {
	h := sha256.Sum256(data)
	sum := hex.EncodeToString(h[:])
	return sum, r.cfg.Store.PutBlob(ctx, store.Blob{SHA256: sum, Type: mediaType, Size: int64(len(data)), Data: data, CreatedAt: r.now()})
}

// Stats returns the counts of what the repository served.
func (r *Repository) Stats() Stats {
	c := &r.counts
	return Stats{TargetRequests: c.targets.Load(), CacheHits: c.hits.Load(), CacheMisses: c.misses.Load(), TargetBytes: c.bytes.Load(),
		Metadata: c.metadata.Load(), NotModified: c.notModified.Load(), RangeRequests: c.ranges.Load()}
}

// AgentSigned reports whether some platform's binary of agent version is a current target.
func (r *Repository) AgentSigned(ctx context.Context, version string) (bool, error) {
	t, err := r.Targets(ctx)
	if errors.Is(err, ErrNoRoot) || errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	for _, tf := range t.Signed.Targets {
		if c, err := tufmeta.CustomOf(tf); err == nil && c.Kind == tufmeta.KindAgent && c.Version == version {
			return true, nil
		}
	}
	return false, nil
}
