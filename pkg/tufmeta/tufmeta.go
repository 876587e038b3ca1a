// Package tufmeta is what the hub (hub/updates), fleetctl (which holds the offline keys) and the
// agent (agent/bundles) share of the update repository, The Update Framework
// (https://theupdateframework.github.io/specification/latest/) through go-tuf: ed25519 key files,
// signing, the names of targets (kiosk bundles and agent binaries) and the custom fields a target
// carries, and the shape of the repository's root.
//
// Roles and keys: root and targets are signed offline, with keys that only fleetctl keys ever
// reads; snapshot and timestamp are signed online by the hub with one key of its own. The
// repository uses consistent snapshots (TUF §4.4): metadata files are VERSION.ROLE.json, targets
// HASH.NAME, so that every file is immutable once served.
package tufmeta

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/kioskfleet/kioskfleet/pkg/bundle"
	"github.com/kioskfleet/kioskfleet/pkg/semver"
)

// ErrInvalid marks metadata or a key file that is not what it must be.
var ErrInvalid = errors.New("tufmeta: invalid")

// Top-level role names.
const (
	Root      = metadata.ROOT
	Targets   = metadata.TARGETS
	Snapshot  = metadata.SNAPSHOT
	Timestamp = metadata.TIMESTAMP
)

// GenerateKey makes a new ed25519 key.
func GenerateKey() (ed25519.PrivateKey, error) {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	return k, err
}

// WriteKey writes a private key to a new file (mode 0600, PKCS #8 in PEM); it never overwrites.
func WriteKey(file string, k ed25519.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ReadKey reads a private key written by WriteKey.
func ReadKey(file string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%w: %s: not a PEM private key", ErrInvalid, file)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, file, err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: %s: not an ed25519 key", ErrInvalid, file)
	}
	return ek, nil
}

// PublicKey is the TUF key of k's public half, and its key ID.
func PublicKey(k ed25519.PrivateKey) (*metadata.Key, string, error) {
	key, err := metadata.KeyFromPublicKey(k.Public())
	if err != nil {
		return nil, "", err
	}
	id, err := key.ID()
	return key, id, err
}

// Sign adds k's signature to m.
func Sign[T metadata.Roles](m *metadata.Metadata[T], k ed25519.PrivateKey) error {
	s, err := signature.LoadSigner(k, crypto.Hash(0))
	if err != nil {
		return err
	}
	_, err = m.Sign(s)
	return err
}

// NewRoot makes a root of the repository's shape: consistent snapshots, root and targets keys
// (offline) with threshold 1 each, snapshot and timestamp signed by the hub's online key.
func NewRoot(version int64, expires time.Time, rootKey, targetsKey, onlineKey *metadata.Key) (*metadata.Metadata[metadata.RootType], error) {
	r := metadata.Root(expires.UTC().Truncate(time.Second))
	r.Signed.Version = version
	r.Signed.ConsistentSnapshot = true
	for role, k := range map[string]*metadata.Key{Root: rootKey, Targets: targetsKey, Snapshot: onlineKey, Timestamp: onlineKey} {
		if err := r.Signed.AddKey(k, role); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// CheckRootShape checks that a root has the repository's shape and names onlineKeyID, the hub's
// key, for snapshot and timestamp.
func CheckRootShape(r *metadata.Metadata[metadata.RootType], onlineKeyID string) error {
	var p []string
	if !r.Signed.ConsistentSnapshot {
		p = append(p, "consistent_snapshot must be true")
	}
	for _, role := range []string{Root, Targets, Snapshot, Timestamp} {
		rr, ok := r.Signed.Roles[role]
		switch {
		case !ok:
			p = append(p, "no role "+role)
		case rr.Threshold < 1 || rr.Threshold > len(rr.KeyIDs):
			p = append(p, fmt.Sprintf("role %s: threshold %d of %d keys", role, rr.Threshold, len(rr.KeyIDs)))
		case (role == Snapshot || role == Timestamp) && (len(rr.KeyIDs) != 1 || rr.KeyIDs[0] != onlineKeyID):
			p = append(p, fmt.Sprintf("role %s: must be signed by the hub's online key %s alone", role, onlineKeyID))
		case (role == Root || role == Targets) && containsKey(rr.KeyIDs, onlineKeyID):
			p = append(p, fmt.Sprintf("role %s: the hub's online key must not sign it (it is kept offline)", role))
		}
	}
	if len(p) > 0 {
		return fmt.Errorf("%w: root: %s", ErrInvalid, strings.Join(p, "; "))
	}
	return nil
}

func containsKey(ids []string, id string) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// Target kinds.
const (
	KindBundle = "bundle"
	KindAgent  = "agent"
)

// Custom is what a target says of itself in its custom field.
type Custom struct {
	Kind     string           `json:"kind"` // bundle or agent
	App      string           `json:"app,omitempty"`
	Version  string           `json:"version"`
	Manifest *bundle.Manifest `json:"manifest,omitempty"` // a bundle's
}

// BundleTarget is the target name of a kiosk bundle.
func BundleTarget(app, version string) string {
	return path.Join("bundles", app, version+".tar.gz")
}

// AgentTarget is the target name of an agent binary for one platform (GOOS-GOARCH).
func AgentTarget(version, platform string) string {
	return path.Join("agent", platform, version, "kiosk-agent")
}

// NewTarget describes data as a target (SHA-256 and length) with its custom field.
func NewTarget(data []byte, c Custom) (*metadata.TargetFiles, error) {
	if err := c.Check(); err != nil {
		return nil, err
	}
	h := sha256.Sum256(data)
	raw, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	rm := json.RawMessage(raw)
	return &metadata.TargetFiles{Length: int64(len(data)), Hashes: metadata.Hashes{"sha256": h[:]}, Custom: &rm}, nil
}

// Check checks a custom field.
func (c Custom) Check() error {
	switch {
	case c.Kind != KindBundle && c.Kind != KindAgent:
		return fmt.Errorf("%w: target kind %q: want bundle or agent", ErrInvalid, c.Kind)
	case !semver.Valid(c.Version):
		return fmt.Errorf("%w: target version %q: not a semantic version", ErrInvalid, c.Version)
	case c.Kind == KindBundle && (c.Manifest == nil || c.Manifest.App != c.App || c.Manifest.Version != c.Version):
		return fmt.Errorf("%w: a bundle target needs the bundle's manifest, of app %s version %s", ErrInvalid, c.App, c.Version)
	}
	return nil
}

// CustomOf reads a target's custom field.
func CustomOf(t *metadata.TargetFiles) (Custom, error) {
	var c Custom
	if t == nil || t.Custom == nil {
		return c, fmt.Errorf("%w: target without custom field", ErrInvalid)
	}
	if err := json.Unmarshal(*t.Custom, &c); err != nil {
		return c, fmt.Errorf("%w: target custom field: %v", ErrInvalid, err)
	}
	return c, c.Check()
}

// SHA256 returns a target's SHA-256 in hex ("" if it has none).
func SHA256(t *metadata.TargetFiles) string {
	return hex.EncodeToString(t.Hashes["sha256"])
}

// RemoteName is where a repository with consistent snapshots serves a target: HASH.NAME in the
// target's directory (TUF §5.7.3).
func RemoteName(name, sha256hex string) string {
	dir, base := path.Split(name)
	return dir + sha256hex + "." + base
}

// VerifySignedBy checks that targets metadata carries a valid signature of key (threshold 1),
// as root would check it for a targets role of that one key.
func VerifySignedBy(t *metadata.Metadata[metadata.TargetsType], key *metadata.Key) error {
	r := metadata.Root()
	if err := r.Signed.AddKey(key, Targets); err != nil {
		return err
	}
	return r.VerifyDelegate(Targets, t)
}

// NewTargets makes targets metadata of version with the given targets, signed by k.
func NewTargets(version int64, expires time.Time, targets map[string]*metadata.TargetFiles, k ed25519.PrivateKey) ([]byte, error) {
	t := metadata.Targets(expires.UTC().Truncate(time.Second))
	t.Signed.Version = version
	for n, tf := range targets {
		t.Signed.Targets[n] = tf
	}
	if err := Sign(t, k); err != nil {
		return nil, err
	}
	return t.ToBytes(false)
}

// AddTargets makes the next version of current (signed targets metadata, which must carry k's
// signature: an offline key never signs on top of something it did not sign) with targets added
// or replaced, expiring at expires, signed by k.
func AddTargets(current []byte, k ed25519.PrivateKey, targets map[string]*metadata.TargetFiles, expires time.Time) ([]byte, error) {
	t, err := metadata.Targets().FromBytes(current)
	if err != nil {
		return nil, fmt.Errorf("%w: current targets: %v", ErrInvalid, err)
	}
	pub, _, err := PublicKey(k)
	if err != nil {
		return nil, err
	}
	if err := VerifySignedBy(t, pub); err != nil {
		return nil, fmt.Errorf("%w: the current targets metadata (version %d) is not signed by this targets key: %v", ErrInvalid, t.Signed.Version, err)
	}
	all := t.Signed.Targets
	for n, tf := range targets {
		all[n] = tf
	}
	return NewTargets(t.Signed.Version+1, expires, all, k)
}
