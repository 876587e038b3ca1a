package identity

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

// keyCache holds the decrypted signing keys; it is reloaded when the active key is due for
// rotation or at most every keyReload, so that several hub replicas converge.
type keyCache struct {
	mu       sync.Mutex
	loaded   time.Time
	active   *signingKey
	public   []op.Key // active plus retired keys still published
	jwksJSON []byte
}

const keyReload = 30 * time.Second

type signingKey struct {
	id      string
	priv    crypto.Signer
	created time.Time
	retired time.Time
}

func (k *signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.ES256 }
func (k *signingKey) Key() any                                    { return k.priv }
func (k *signingKey) ID() string                                  { return k.id }

type publicKey struct{ *signingKey }

func (k publicKey) Algorithm() jose.SignatureAlgorithm { return jose.ES256 }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return k.priv.Public() }

// publishFor is how long a retired key stays in the JWKS: until every ID token it signed has
// expired, plus a margin for clock skew.
func (p *Provider) publishFor() time.Duration { return p.cfg.IDTokenTTL + 5*time.Minute }

// signingKey returns the active key, creating or rotating it when needed.
func (p *Provider) signingKey(ctx context.Context) (*signingKey, error) {
	c := &p.keys
	c.mu.Lock()
	defer c.mu.Unlock()
	now := p.now()
	if c.active != nil && now.Sub(c.loaded) < keyReload && now.Sub(c.active.created) < p.cfg.KeyRotation {
		return c.active, nil
	}
	if err := p.loadKeysLocked(ctx, now); err != nil {
		return nil, err
	}
	if c.active == nil || now.Sub(c.active.created) >= p.cfg.KeyRotation {
		if err := p.addKeyLocked(ctx, now); err != nil {
			return nil, err
		}
	}
	return c.active, nil
}

// RotateKey replaces the signing key now; the old key stays published until its tokens expire.
func (p *Provider) RotateKey(ctx context.Context) error {
	p.keys.mu.Lock()
	defer p.keys.mu.Unlock()
	return p.addKeyLocked(ctx, p.now())
}

func (p *Provider) addKeyLocked(ctx context.Context, now time.Time) error {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return err
	}
	id := randomToken(12)
	k := store.SigningKey{ID: id, Alg: string(jose.ES256), PrivateEnc: seal(p.sec.keyAEAD, der, []byte(id)), CreatedAt: now}
	if err := p.st.AddSigningKey(ctx, k); err != nil {
		return fmt.Errorf("identity: store signing key: %w", err)
	}
	if err := p.st.DeleteSigningKeys(ctx, now.Add(-p.publishFor())); err != nil {
		p.log.Warn("delete old signing keys failed", "err", err)
	}
	p.log.Info("new signing key", "kid", id)
	return p.loadKeysLocked(ctx, now)
}

func (p *Provider) loadKeysLocked(ctx context.Context, now time.Time) error {
	c := &p.keys
	rows, err := p.st.ListSigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("identity: load signing keys: %w", err)
	}
	c.active, c.public = nil, nil
	var set jose.JSONWebKeySet
	for _, r := range rows {
		if !r.RetiredAt.IsZero() && now.Sub(r.RetiredAt) > p.publishFor() {
			continue
		}
		der, err := open(p.sec.keyAEAD, r.PrivateEnc, []byte(r.ID))
		if err != nil {
			return fmt.Errorf("identity: signing key %s does not decrypt (wrong secret?): %w", r.ID, err)
		}
		priv, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			return fmt.Errorf("identity: signing key %s: %w", r.ID, err)
		}
		signer, ok := priv.(crypto.Signer)
		if !ok {
			return fmt.Errorf("identity: signing key %s is no signer", r.ID)
		}
		k := &signingKey{id: r.ID, priv: signer, created: r.CreatedAt, retired: r.RetiredAt}
		if r.RetiredAt.IsZero() && (c.active == nil || k.created.After(c.active.created)) {
			c.active = k
		}
		c.public = append(c.public, publicKey{k})
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: signer.Public(), KeyID: r.ID, Algorithm: r.Alg, Use: "sig"})
	}
	c.jwksJSON, err = jsonMarshal(set)
	c.loaded = now
	return err
}

// ForgetKeys makes the next use of the signing keys reload them, after another replica added
// one.
func (p *Provider) ForgetKeys() {
	p.keys.mu.Lock()
	p.keys.loaded = time.Time{}
	p.keys.mu.Unlock()
}

func (p *Provider) publicKeys(ctx context.Context) ([]op.Key, []byte, error) {
	if _, err := p.signingKey(ctx); err != nil {
		return nil, nil, err
	}
	p.keys.mu.Lock()
	defer p.keys.mu.Unlock()
	return p.keys.public, p.keys.jwksJSON, nil
}
