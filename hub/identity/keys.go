package identity

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// keyCache holds the decrypted keys: the signing keys of tokens and the encryption key kiosks
// encrypt their assertions to (JWE, ECDH-ES). Both rotate at KeyRotation; it is reloaded when a
// key is due or at most every keyReload, so that several hub replicas converge.
type keyCache struct {
	mu       sync.Mutex
	loaded   time.Time
	active   *signingKey
	public   []op.Key // active plus retired keys still published
	enc      *signingKey
	decrypt  map[string]*ecdsa.PrivateKey // active and retired encryption keys by ID
	jwksJSON []byte
}

const keyReload = 30 * time.Second

// errNoKey marks an encryption key ID that is neither the active key nor a retired one still
// accepted.
var errNoKey = errors.New("identity: no such encryption key")

// encAlg is the key agreement kiosks use with the hub's encryption key (RFC 7518 §4.6).
const encAlg = wire.AssertionKeyAlg

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

// publishFor is how long a retired key stays in the JWKS (and a retired encryption key is
// accepted): until every ID token it signed has expired, plus a margin for clock skew; longer
// than any kiosk assertion lives.
func (p *Provider) publishFor() time.Duration { return p.cfg.IDTokenTTL + 5*time.Minute }

// signingKey returns the active signing key, creating or rotating keys when needed.
func (p *Provider) signingKey(ctx context.Context) (*signingKey, error) {
	c := &p.keys
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := p.keysLocked(ctx, false); err != nil {
		return nil, err
	}
	return c.active, nil
}

// decryptionKey returns the encryption key with the ID, active or retired but still accepted.
func (p *Provider) decryptionKey(ctx context.Context, id string) (*ecdsa.PrivateKey, error) {
	c := &p.keys
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := p.keysLocked(ctx, false); err != nil {
		return nil, err
	}
	if k := c.decrypt[id]; k != nil {
		return k, nil
	}
	// Another replica may have rotated since the last load.
	if err := p.keysLocked(ctx, true); err != nil {
		return nil, err
	}
	if k := c.decrypt[id]; k != nil {
		return k, nil
	}
	return nil, fmt.Errorf("%w %q", errNoKey, id)
}

// keysLocked reloads the keys when due (or when reload is set) and adds a signing or
// encryption key where there is none or the active one is due for rotation.
func (p *Provider) keysLocked(ctx context.Context, reload bool) error {
	c := &p.keys
	now := p.now()
	due := func(k *signingKey) bool { return k == nil || now.Sub(k.created) >= p.cfg.KeyRotation }
	if !reload && now.Sub(c.loaded) < keyReload && !due(c.active) && !due(c.enc) {
		return nil
	}
	if err := p.loadKeysLocked(ctx, now); err != nil {
		return err
	}
	for use, k := range map[string]*signingKey{store.KeyUseSig: c.active, store.KeyUseEnc: c.enc} {
		if due(k) {
			if err := p.addKeyLocked(ctx, now, use); err != nil {
				return err
			}
		}
	}
	return nil
}

// RotateKey replaces the signing and encryption keys now; the old ones stay published (and
// accepted) until their tokens and assertions expire.
func (p *Provider) RotateKey(ctx context.Context) error {
	p.keys.mu.Lock()
	defer p.keys.mu.Unlock()
	if err := p.addKeyLocked(ctx, p.now(), store.KeyUseSig); err != nil {
		return err
	}
	return p.addKeyLocked(ctx, p.now(), store.KeyUseEnc)
}

func (p *Provider) addKeyLocked(ctx context.Context, now time.Time, use string) error {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return err
	}
	id, alg := randomToken(12), string(jose.ES256)
	if use == store.KeyUseEnc {
		alg = string(encAlg)
	}
	k := store.SigningKey{ID: id, Alg: alg, Use: use, PrivateEnc: seal(p.sec.keyAEAD, der, []byte(id)), CreatedAt: now}
	if err := p.st.AddSigningKey(ctx, k); err != nil {
		return fmt.Errorf("identity: store %s key: %w", use, err)
	}
	if err := p.st.DeleteSigningKeys(ctx, now.Add(-p.publishFor())); err != nil {
		p.log.Warn("delete old keys failed", "err", err)
	}
	p.log.Info("new key", "kid", id, "use", use)
	return p.loadKeysLocked(ctx, now)
}

func (p *Provider) loadKeysLocked(ctx context.Context, now time.Time) error {
	c := &p.keys
	rows, err := p.st.ListSigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("identity: load keys: %w", err)
	}
	c.active, c.public, c.enc, c.decrypt = nil, nil, nil, map[string]*ecdsa.PrivateKey{}
	var set jose.JSONWebKeySet
	for _, r := range rows {
		if !r.RetiredAt.IsZero() && now.Sub(r.RetiredAt) > p.publishFor() {
			continue
		}
		der, err := open(p.sec.keyAEAD, r.PrivateEnc, []byte(r.ID))
		if err != nil {
			return fmt.Errorf("identity: key %s does not decrypt (wrong secret?): %w", r.ID, err)
		}
		priv, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			return fmt.Errorf("identity: key %s: %w", r.ID, err)
		}
		signer, ok := priv.(*ecdsa.PrivateKey)
		if !ok {
			return fmt.Errorf("identity: key %s is %T, want ECDSA", r.ID, priv)
		}
		k := &signingKey{id: r.ID, priv: signer, created: r.CreatedAt, retired: r.RetiredAt}
		newest := func(cur *signingKey) bool {
			return r.RetiredAt.IsZero() && (cur == nil || k.created.After(cur.created))
		}
		if r.Use == store.KeyUseEnc {
			c.decrypt[r.ID] = signer
			if newest(c.enc) {
				c.enc = k
			}
			continue
		}
		if newest(c.active) {
			c.active = k
		}
		c.public = append(c.public, publicKey{k})
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: signer.Public(), KeyID: r.ID, Algorithm: r.Alg, Use: store.KeyUseSig})
	}
	// Only the active encryption key is published: a kiosk encrypts to the one it finds.
	if c.enc != nil {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: c.enc.priv.Public(), KeyID: c.enc.id, Algorithm: string(encAlg), Use: store.KeyUseEnc})
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
