package wire

import (
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// The encryption of a kiosk assertion (RFC 7516 JWE, compact): ECDH-ES key agreement (RFC 7518
// §4.6) with the hub's encryption key, the key of its JWKS with "use":"enc", and A256GCM content
// encryption; the header names the key (kid) and says the content is a JWT (cty, RFC 7519 §5.2).
const (
	AssertionKeyAlg = jose.ECDH_ES
	AssertionEnc    = jose.A256GCM
)

// ErrNoEncryptionKey marks a JWKS without a usable encryption key for kiosk assertions.
var ErrNoEncryptionKey = errors.New("wire: the hub publishes no encryption key (JWKS key with use enc, alg ECDH-ES, P-256)")

// EncryptionKey returns the hub's key for kiosk assertions from its JWKS document (the one key
// with use "enc", alg ECDH-ES, on P-256).
func EncryptionKey(jwks []byte) (jose.JSONWebKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(jwks, &set); err != nil {
		return jose.JSONWebKey{}, fmt.Errorf("wire: JWKS: %w", err)
	}
	for _, raw := range set.Keys {
		var k jose.JSONWebKey
		if k.UnmarshalJSON(raw) != nil || k.Use != "enc" || k.Algorithm != string(AssertionKeyAlg) || !k.Valid() || !k.IsPublic() {
			continue // keys of other uses, or of kinds this side does not know, are not for it
		}
		if pub, ok := k.Key.(*ecdsa.PublicKey); ok && pub.Curve.Params().Name == "P-256" && k.KeyID != "" {
			return k, nil
		}
	}
	return jose.JSONWebKey{}, ErrNoEncryptionKey
}

// SealAssertion encrypts a signed assertion (a compact JWS of KioskClaims) to the hub's key.
func SealAssertion(signed string, hubKey jose.JSONWebKey) (string, error) {
	enc, err := jose.NewEncrypter(AssertionEnc, jose.Recipient{Algorithm: AssertionKeyAlg, Key: hubKey.Key, KeyID: hubKey.KeyID},
		(&jose.EncrypterOptions{}).WithType("JWT").WithContentType("JWT"))
	if err != nil {
		return "", fmt.Errorf("wire: seal assertion: %w", err)
	}
	obj, err := enc.Encrypt([]byte(signed))
	if err != nil {
		return "", fmt.Errorf("wire: seal assertion: %w", err)
	}
	return obj.CompactSerialize()
}

// KioskClaims are the claims of a kiosk assertion (RFC 7523 §3): a JWT that the agent
// (agent/kiosklogin) signs with the kiosk's enrolled device key, the key of its client
// certificate, and exchanges at the hub's token endpoint with the JWT bearer grant (RFC 7523 §2.1)
// after an ID-card read; the hub (hub/identity) verifies it against the enrolled kiosk.
//
//	iss, sub  the kiosk's device ID
//	aud       the hub's issuer URL (or its token endpoint)
//	iat, exp  at most the hub's maximum assertion age apart (2 minutes by default)
//	jti       unique; the hub refuses a replay
//	id_card   for the ID-card login: the card's ID number and name, as read
//
// An assertion carrying id_card travels only encrypted to the hub (SealAssertion): a nested JWT
// (RFC 7519 §5.2), so that no TLS-terminating proxy, access log or captured request holds the card.
type KioskClaims struct {
	Issuer   string      `json:"iss"`
	Subject  string      `json:"sub"`
	Audience Audience    `json:"aud"`
	IssuedAt NumericDate `json:"iat"`
	Expiry   NumericDate `json:"exp"`
	ID       string      `json:"jti"`
	Card     *IDCard     `json:"id_card,omitempty"`
}

// Audience is a JWT's aud claim: one string or an array of strings (RFC 7519 §4.1.3). One
// audience is encoded as a string.
type Audience []string

// MarshalJSON implements json.Marshaler.
func (a Audience) MarshalJSON() ([]byte, error) {
	if len(a) == 1 {
		return json.Marshal(a[0])
	}
	return json.Marshal([]string(a))
}

// UnmarshalJSON implements json.Unmarshaler.
func (a *Audience) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = Audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("aud must be a string or an array of strings")
	}
	*a = many
	return nil
}

// NumericDate is a JWT time: seconds since the Unix epoch (RFC 7519 §2). A fractional value is
// read and its fraction dropped.
type NumericDate int64

// NewNumericDate returns t as a NumericDate.
func NewNumericDate(t time.Time) NumericDate { return NumericDate(t.Unix()) }

// Time returns d as a time; zero for 0.
func (d NumericDate) Time() time.Time {
	if d == 0 {
		return time.Time{}
	}
	return time.Unix(int64(d), 0)
}

// UnmarshalJSON implements json.Unmarshaler.
func (d *NumericDate) UnmarshalJSON(b []byte) error {
	var f float64
	if err := json.Unmarshal(b, &f); err != nil || f < 0 || f >= 1<<62 {
		return errors.New("a NumericDate must be a number of seconds since 1970")
	}
	*d = NumericDate(f)
	return nil
}

// IDCard is what a kiosk read from a resident ID card, as carried in a kiosk assertion. It is
// personal data: it never prints its fields, and Wipe clears them after use.
type IDCard struct {
	Number Secret `json:"number"` // the 18-character ID number (GB 11643)
	Name   string `json:"name"`
}

func (c IDCard) String() string { return "IDCard{number:***, name:***}" }

// GoString masks %#v.
func (c IDCard) GoString() string { return c.String() }

// LogValue masks the card in log records of any handler.
func (c IDCard) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Wipe zeroes the card data; it may be called on nil.
func (c *IDCard) Wipe() {
	if c != nil {
		clear(c.Number)
		c.Number, c.Name = nil, ""
	}
}

// Secret is sensitive text: masked in String, %v, %#v and logs, and wipeable with clear. In JSON
// it is a string.
type Secret []byte

func (s Secret) String() string { return "***" }

// GoString masks %#v too.
func (s Secret) GoString() string { return "***" }

// LogValue masks the secret in log records of any handler (JSON ones included).
func (s Secret) LogValue() slog.Value { return slog.StringValue("***") }

// MarshalJSON implements json.Marshaler: the secret as a JSON string.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(string(s)) }

// UnmarshalJSON implements json.Unmarshaler.
func (s *Secret) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var v string
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*s = Secret(v)
	return nil
}
