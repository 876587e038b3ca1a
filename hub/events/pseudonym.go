package events

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
)

// DefaultDomain is the analytics domain of clients the configuration does not name.
const DefaultDomain = "public"

// Pseudonyms derives analytics pseudonyms: HMAC-SHA256 under a key of their own (HKDF-SHA256 of
// the hub's master secret, RFC 5869), over the analytics domain and the account ID, so that one
// citizen has one pseudonym per domain on every channel, a pseudonym reveals neither the account,
// nor the OIDC subject, nor an ID number, and pseudonyms of two domains cannot be joined without
// the key. Citizens who send events without a token (an anonymous browser or app install) get a
// pseudonym of the client and their install ID, which never meets an account's.
type Pseudonyms struct {
	key     []byte
	domains map[string]string // client ID -> analytics domain
}

// NewPseudonyms returns pseudonyms keyed from the master secret (at least 32 bytes); domains
// maps client IDs to analytics domains (others are in DefaultDomain).
func NewPseudonyms(secret []byte, domains map[string]string) (*Pseudonyms, error) {
	if len(secret) < 32 {
		return nil, errors.New("events: master secret must have at least 32 bytes")
	}
	key, err := hkdf.Key(sha256.New, secret, nil, "kioskfleet analytics pseudonym", 32)
	if err != nil {
		return nil, err
	}
	return &Pseudonyms{key: key, domains: domains}, nil
}

// Domain returns the analytics domain of a client.
func (p *Pseudonyms) Domain(clientID string) string {
	if d, ok := p.domains[clientID]; ok {
		return d
	}
	return DefaultDomain
}

// Citizen returns the pseudonym of an account in the client's analytics domain.
func (p *Pseudonyms) Citizen(clientID, account string) string {
	return p.citizenIn(p.Domain(clientID), account)
}

func (p *Pseudonyms) citizenIn(domain, account string) string {
	return p.mac("account", domain, account)
}

// all returns the pseudonyms of an account in every analytics domain.
func (p *Pseudonyms) all(account string) []string {
	ds := map[string]bool{DefaultDomain: true}
	for _, d := range p.domains {
		ds[d] = true
	}
	out := make([]string, 0, len(ds))
	for d := range ds {
		out = append(out, p.citizenIn(d, account))
	}
	return out
}

// Anonymous returns the pseudonym of an anonymous install of a client.
func (p *Pseudonyms) Anonymous(clientID, installID string) string {
	return p.mac("anonymous", p.Domain(clientID), clientID, installID)
}

// mac is 128 bits of HMAC over the parts, each followed by a zero byte, base64url.
func (p *Pseudonyms) mac(parts ...string) string {
	m := hmac.New(sha256.New, p.key)
	for _, s := range parts {
		m.Write([]byte(s))
		m.Write([]byte{0})
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}
