package wire

import (
	"encoding/json"
	"errors"
	"log/slog"
	"time"
)

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
