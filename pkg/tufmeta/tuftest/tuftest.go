// Package tuftest makes keys, roots, bundles and targets of the update repository's shape for
// tests (of hub/updates, agent/bundles, fleetctl).
package tuftest

import (
	"crypto/ed25519"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/kioskfleet/kioskfleet/pkg/bundle"
	"github.com/kioskfleet/kioskfleet/pkg/tufmeta"
)

// Key makes an ed25519 key.
func Key(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	k, err := tufmeta.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Keys are the offline keys of a repository.
type Keys struct{ RootKey, TargetsKey ed25519.PrivateKey }

// NewKeys makes a root and a targets key.
func NewKeys(t testing.TB) Keys { return Keys{RootKey: Key(t), TargetsKey: Key(t)} }

// RootOption changes how Root signs.
type RootOption func(*rootOpts)

type rootOpts struct {
	unsigned bool
	also     []ed25519.PrivateKey
}

// Unsigned leaves the root without signatures.
var Unsigned RootOption = func(o *rootOpts) { o.unsigned = true }

// AlsoSignedBy adds a signature of k (a previous root key, for a rotation).
func AlsoSignedBy(k ed25519.PrivateKey) RootOption {
	return func(o *rootOpts) { o.also = append(o.also, k) }
}

// Root makes a root of the repository's shape with these keys and the hub's online key, signed
// by the root key.
func (k Keys) Root(t testing.TB, version int64, expires time.Time, online *metadata.Key, opts ...RootOption) []byte {
	t.Helper()
	var o rootOpts
	for _, f := range opts {
		f(&o)
	}
	rk, _, _ := tufmeta.PublicKey(k.RootKey)
	tk, _, _ := tufmeta.PublicKey(k.TargetsKey)
	r, err := tufmeta.NewRoot(version, expires, rk, tk, online)
	if err != nil {
		t.Fatal(err)
	}
	if !o.unsigned {
		for _, s := range append([]ed25519.PrivateKey{k.RootKey}, o.also...) {
			if err := tufmeta.Sign(r, s); err != nil {
				t.Fatal(err)
			}
		}
	}
	b, err := r.ToBytes(false)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Bundle makes a bundle archive with manifest m, an index.html and about size bytes of
// incompressible content.
func Bundle(t testing.TB, m bundle.Manifest, size int) []byte {
	t.Helper()
	data := make([]byte, size)
	r := rand.New(rand.NewPCG(uint64(size), uint64(len(m.Version))))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	b, err := bundle.Build(m, map[string][]byte{"index.html": []byte(fmt.Sprintf("<!doctype html><title>%s %s</title>", m.App, m.Version)), "assets/blob.bin": data})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Target describes a bundle archive as the target of app's version.
func Target(t testing.TB, archive []byte, app, version string) *metadata.TargetFiles {
	t.Helper()
	b, err := bundle.Read(archive)
	if err != nil {
		t.Fatal(err)
	}
	tf, err := tufmeta.NewTarget(archive, tufmeta.Custom{Kind: tufmeta.KindBundle, App: app, Version: version, Manifest: &b.Manifest})
	if err != nil {
		t.Fatal(err)
	}
	return tf
}
