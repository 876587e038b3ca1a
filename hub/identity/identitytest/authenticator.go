package identitytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
)

// Authenticator is a software WebAuthn authenticator, as a phone's passkey manager is to the
// browser: it makes discoverable ES256 credentials ("none" attestation, user present and
// verified) and signs assertions with them, with the client data a browser at Origin makes.
// Synced makes its credentials backup eligible and backed up (a synced passkey); their
// signature counter stays 0, as synced passkeys' does.
type Authenticator struct {
	Origin string // e.g. http://localhost:PORT
	Synced bool
	// Tamper changes the authenticator data of assertions after they are signed (as an
	// attacker who alters a captured one does): the signature no longer covers them.
	Tamper bool

	mu    sync.Mutex
	creds []*softCred
}

type softCred struct {
	id   []byte
	key  *ecdsa.PrivateKey
	user []byte
	rpID string
}

var b64 = base64.RawURLEncoding

// creationOptions is what Create reads of PublicKeyCredentialCreationOptions (JSON).
type creationOptions struct {
	Challenge string `json:"challenge"`
	RP        struct {
		ID string `json:"id"`
	} `json:"rp"`
	User struct {
		ID string `json:"id"`
	} `json:"user"`
	Exclude []struct {
		ID string `json:"id"`
	} `json:"excludeCredentials"`
}

// Create answers navigator.credentials.create for the options the provider sent (its publicKey
// member) with the JSON the page posts back.
func (a *Authenticator) Create(options []byte) ([]byte, error) {
	var o creationOptions
	if err := json.Unmarshal(options, &o); err != nil {
		return nil, err
	}
	user, err := b64.DecodeString(o.User.ID)
	if err != nil {
		return nil, fmt.Errorf("user id: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, x := range o.Exclude {
		if slices.ContainsFunc(a.creds, func(c *softCred) bool { return b64.EncodeToString(c.id) == x.ID }) {
			return nil, errors.New("InvalidStateError: a credential of this authenticator is excluded")
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	c := &softCred{id: make([]byte, 32), key: key, user: user, rpID: o.RP.ID}
	rand.Read(c.id)
	a.creds = append(a.creds, c)
	var x, y [32]byte
	key.PublicKey.X.FillBytes(x[:])
	key.PublicKey.Y.FillBytes(y[:])
	cose, err := webauthncbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: x[:], -3: y[:]}) // EC2, ES256, P-256
	if err != nil {
		return nil, err
	}
	auth := a.authData(c.rpID, 0x40) // AT: attested credential data follows
	auth = append(auth, make([]byte, 16)...)
	auth = binary.BigEndian.AppendUint16(auth, uint16(len(c.id)))
	auth = append(append(auth, c.id...), cose...)
	att, err := webauthncbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": auth})
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{"id": b64.EncodeToString(c.id), "rawId": b64.EncodeToString(c.id), "type": "public-key",
		"response": map[string]any{"attestationObject": b64.EncodeToString(att),
			"clientDataJSON": b64.EncodeToString(a.clientData("webauthn.create", o.Challenge)), "transports": []string{"internal"}}})
}

// authData is the authenticator data (WebAuthn §6.1) up to the signature counter.
func (a *Authenticator) authData(rpID string, flags byte) []byte {
	h := sha256.Sum256([]byte(rpID))
	flags |= 0x01 | 0x04 // UP, UV
	if a.Synced {
		flags |= 0x08 | 0x10 // BE, BS
	}
	return append(append(h[:], flags), 0, 0, 0, 0)
}

func (a *Authenticator) clientData(typ, challenge string) []byte {
	b, _ := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": a.Origin, "crossOrigin": false})
	return b
}

// Get answers navigator.credentials.get for the options the provider sent (its publicKey
// member) with the JSON the page posts back, using the newest credential for the relying party.
func (a *Authenticator) Get(options []byte) ([]byte, error) {
	var o struct {
		Challenge string `json:"challenge"`
		RPID      string `json:"rpId"`
	}
	if err := json.Unmarshal(options, &o); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var c *softCred
	for _, x := range a.creds {
		if x.rpID == o.RPID {
			c = x
		}
	}
	if c == nil {
		return nil, errors.New("NotAllowedError: no credential for " + o.RPID)
	}
	return a.sign(c, o.Challenge)
}

func (a *Authenticator) sign(c *softCred, challenge string) ([]byte, error) {
	auth := a.authData(c.rpID, 0)
	cd := a.clientData("webauthn.get", challenge)
	h := sha256.Sum256(cd)
	digest := sha256.Sum256(append(slices.Clip(auth), h[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, c.key, digest[:])
	if err != nil {
		return nil, err
	}
	if a.Tamper {
		auth[len(auth)-1]++ // the signature counter
	}
	return json.Marshal(map[string]any{"id": b64.EncodeToString(c.id), "rawId": b64.EncodeToString(c.id), "type": "public-key",
		"response": map[string]any{"authenticatorData": b64.EncodeToString(auth), "clientDataJSON": b64.EncodeToString(cd),
			"signature": b64.EncodeToString(sig), "userHandle": b64.EncodeToString(c.user)}})
}

// Forget drops the authenticator's credentials (a phone wiped, a passkey deleted on it).
func (a *Authenticator) Forget() {
	a.mu.Lock()
	a.creds = nil
	a.mu.Unlock()
}
