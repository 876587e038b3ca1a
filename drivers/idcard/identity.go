package idcard

import (
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"strings"
	"unicode/utf8"
)

// ErrNoPhotoDecoder: no WLT decoder was given.
var ErrNoPhotoDecoder = errors.New("idcard: no WLT photo decoder")

// Identity is what a card holds: the text block, the photo and, if read, the fingerprint and
// appended address. It is personal data: String, every fmt verb, GoString, MarshalJSON and
// LogValue print only the card type and the masked name and number (4401**********123X). Read the
// fields with Field, Name and Number; call Wipe when the citizen's session ends.
type Identity struct {
	typ         CardType
	text        []byte // the 256-byte block, UCS-2 LE
	photo       []byte // WLT, 1024 bytes
	fingerprint []byte
	appended    []byte // UCS-2 LE
}

var (
	_ fmt.Formatter  = Identity{}
	_ fmt.Stringer   = Identity{}
	_ fmt.GoStringer = Identity{}
	_ json.Marshaler = Identity{}
	_ slog.LogValuer = Identity{}
)

// Type is the card type.
func (id Identity) Type() CardType { return id.typ }

// Field returns a field in clear, or "" if the card type has no such field.
func (id Identity) Field(f Field) string {
	if f == FieldAppendedAddress {
		return ucs2(id.appended)
	}
	spans := layouts[id.typ][f]
	if len(spans) == 0 || len(id.text) != TextLen {
		return ""
	}
	if len(spans) == 1 {
		return ucs2(id.text[spans[0].from:spans[0].to])
	}
	var b []byte // a field continued elsewhere is one text: trim only its end
	for _, sp := range spans {
		b = append(b, id.text[sp.from:sp.to]...)
	}
	s := ucs2(b)
	clear(b)
	return s
}

// Name returns the Chinese name in clear (for a 2017 foreigner's card without one, the English name).
func (id Identity) Name() string {
	if n := id.Field(FieldName); n != "" {
		return n
	}
	return id.Field(FieldEnglishName)
}

// Number returns the ID number (card number on a 2017 foreigner's card) in clear.
func (id Identity) Number() string { return id.Field(FieldNumber) }

// Photo returns the WLT photo bytes (not a copy: Wipe zeroes them).
func (id Identity) Photo() []byte { return id.photo }

// Fingerprint returns the fingerprint data read with ReadOptions.Fingerprint (not a copy).
func (id Identity) Fingerprint() []byte { return id.fingerprint }

// PhotoDecoder turns WLT photo data into an image (102x126). Decoding WLT needs a licensed vendor
// library, so it is optional.
type PhotoDecoder interface {
	DecodeWLT(wlt []byte) (image.Image, error)
}

// Image decodes the photo with d.
func (id Identity) Image(d PhotoDecoder) (image.Image, error) {
	if d == nil {
		return nil, ErrNoPhotoDecoder
	}
	return d.DecodeWLT(id.photo)
}

// Wipe zeroes the text, photo, fingerprint and appended address in place (copies of the Identity
// share them and are wiped too). Strings returned earlier by Field are the caller's to drop.
func (id Identity) Wipe() {
	clear(id.text)
	clear(id.photo)
	clear(id.fingerprint)
	clear(id.appended)
}

// MaskNumber keeps the first and last four characters: 4401**********123X.
func MaskNumber(s string) string {
	if n := utf8.RuneCountInString(s); n <= 8 {
		return strings.Repeat("*", n)
	}
	r := []rune(s)
	return string(r[:4]) + strings.Repeat("*", len(r)-8) + string(r[len(r)-4:])
}

// MaskName keeps the first character: 张**.
func MaskName(s string) string {
	r := []rune(s)
	if len(r) == 0 {
		return ""
	}
	return string(r[0]) + strings.Repeat("*", len(r)-1)
}

func (id Identity) String() string {
	return fmt.Sprintf("idcard.Identity{type: %s, name: %s, number: %s}", id.typ, MaskName(id.Name()), MaskNumber(id.Number()))
}

// GoString is String: %#v must not print the fields either.
func (id Identity) GoString() string { return id.String() }

// Format prints String for every verb and flag (%v, %+v, %#v, %s, %q, %x, ...).
func (id Identity) Format(f fmt.State, _ rune) { fmt.Fprint(f, id.String()) }

// MarshalJSON writes the type and the masked name and number.
func (id Identity) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Type   string `json:"type"`
		Name   string `json:"name"`
		Number string `json:"number"`
	}{id.typ.String(), MaskName(id.Name()), MaskNumber(id.Number())})
}

// LogValue logs the type and the masked name and number.
func (id Identity) LogValue() slog.Value {
	return slog.GroupValue(slog.String("type", id.typ.String()),
		slog.String("name", MaskName(id.Name())), slog.String("number", MaskNumber(id.Number())))
}
