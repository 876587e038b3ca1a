package idcard

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"
)

// TextLen is the size of the text block in a read reply.
const TextLen = 256

var (
	// ErrMisread: the reader returned text that fails a consistency check (see MisreadError).
	ErrMisread = errors.New("idcard: misread")
	// ErrTextBlock: the text block has the wrong size.
	ErrTextBlock = errors.New("idcard: bad text block")
)

// MisreadError says which field failed which check. It never contains the field's value.
type MisreadError struct {
	Field  Field
	Reason string
}

func (e *MisreadError) Error() string {
	return fmt.Sprintf("idcard: misread: %s %s", e.Field, e.Reason)
}

// Is makes errors.Is(err, ErrMisread) true.
func (e *MisreadError) Is(target error) bool { return target == ErrMisread }

// CardType is byte 248 of the text block.
type CardType byte

// Card types (GA 467 and the 2017/2023 permanent residence card specifications).
const (
	Resident      CardType = 0   // resident identity card: any byte 248 but J, I, Y
	HKMOTW        CardType = 'J' // Hong Kong / Macau / Taiwan residents' residence permit
	Foreigner2017 CardType = 'I' // foreigner's permanent residence card, 2017
	Foreigner2023 CardType = 'Y' // foreigner's permanent residence card, 2023
)

func cardType(b byte) CardType {
	switch t := CardType(b); t {
	case HKMOTW, Foreigner2017, Foreigner2023:
		return t
	}
	return Resident
}

func (t CardType) String() string {
	switch t {
	case HKMOTW:
		return "hk-mo-tw-residence-permit"
	case Foreigner2017:
		return "foreigner-permanent-residence-2017"
	case Foreigner2023:
		return "foreigner-permanent-residence-2023"
	}
	return "resident"
}

// Field names a text field.
type Field int

// Fields of the text block; a field a card type does not have reads as "".
const (
	FieldName            Field = iota + 1 // Chinese name
	FieldEnglishName                      // I, Y
	FieldSex                              // "1" male, "2" female
	FieldNation                           // ethnic group code, two digits (resident, J)
	FieldBirthDate                        // YYYYMMDD
	FieldAddress                          // resident, J
	FieldNumber                           // 18-character ID number; the 15-character card number on I
	FieldAuthority                        // issuing authority
	FieldValidFrom                        // YYYYMMDD
	FieldValidTo                          // YYYYMMDD or the word for "long-term"
	FieldPermitNumber                     // J: travel permit number
	FieldIssueCount                       // J: times issued
	FieldNationality                      // I, Y: ISO 3166 alpha-3 code
	FieldCardVersion                      // I
	FieldOffice                           // I: issuing office code
	FieldRenewalCount                     // Y
	FieldPreviousCard                     // Y: link to the previous card number
	FieldAppendedAddress                  // from "read appended address" (30 03), not the text block
)

var fieldNames = [...]string{"", "name", "english name", "sex", "nation", "birth date", "address",
	"number", "issuing authority", "valid from", "valid to", "permit number", "issue count",
	"nationality", "card version", "issuing office", "renewal count", "previous card", "appended address"}

func (f Field) String() string {
	if f > 0 && int(f) < len(fieldNames) {
		return fieldNames[f]
	}
	return fmt.Sprintf("field %d", int(f))
}

// span is a byte range [from, to) of the text block.
type span struct{ from, to int }

// residentLayout is the GA 467 resident card text layout; J adds two fields.
var residentLayout = map[Field][]span{
	FieldName: {{0, 30}}, FieldSex: {{30, 32}}, FieldNation: {{32, 36}}, FieldBirthDate: {{36, 52}},
	FieldAddress: {{52, 122}}, FieldNumber: {{122, 158}}, FieldAuthority: {{158, 188}},
	FieldValidFrom: {{188, 204}}, FieldValidTo: {{204, 220}},
}

var layouts = map[CardType]map[Field][]span{
	Resident: residentLayout,
	HKMOTW: with(residentLayout, map[Field][]span{
		FieldPermitNumber: {{220, 238}}, FieldIssueCount: {{238, 242}},
	}),
	Foreigner2017: {
		FieldEnglishName: {{0, 120}}, FieldSex: {{120, 122}}, FieldNumber: {{122, 152}},
		FieldNationality: {{152, 158}}, FieldName: {{158, 188}}, FieldValidFrom: {{188, 204}},
		FieldValidTo: {{204, 220}}, FieldBirthDate: {{220, 236}}, FieldCardVersion: {{236, 240}},
		FieldOffice: {{240, 248}},
	},
	Foreigner2023: {
		FieldName: {{0, 30}}, FieldSex: {{30, 32}}, FieldRenewalCount: {{32, 36}},
		FieldBirthDate: {{36, 52}}, FieldEnglishName: {{52, 122}, {220, 242}}, FieldNumber: {{122, 158}},
		// Authority and validity are not in the reference layout; the 2023 card is taken to keep
		// the resident card's offsets for them (uncertain).
		FieldAuthority: {{158, 188}}, FieldValidFrom: {{188, 204}}, FieldValidTo: {{204, 220}},
		FieldNationality: {{242, 248}}, FieldPreviousCard: {{250, 256}},
	},
}

func with(base, extra map[Field][]span) map[Field][]span {
	m := make(map[Field][]span, len(base)+len(extra))
	for k, v := range base {
		m[k] = v
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

// ucs2 decodes UCS-2 little-endian text and trims the space (and NUL) padding. Surrogate pairs are
// decoded as UTF-16; a lone surrogate becomes U+FFFD.
func ucs2(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		u = append(u, uint16(b[i])|uint16(b[i+1])<<8)
	}
	return strings.TrimRight(string(utf16.Decode(u)), " \x00")
}

// DecodeText decodes a 256-byte text block into an Identity holding a copy of it, after the
// consistency checks: an 18-character number must pass ISO 7064 MOD 11-2 (and on a resident card
// carry the birth date), the 2017 card number must be three letters and twelve digits, and the
// birth date must be eight digits. A failed check returns a *MisreadError.
func DecodeText(block []byte) (*Identity, error) {
	if len(block) != TextLen {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrTextBlock, len(block), TextLen)
	}
	id := &Identity{typ: cardType(block[248]), text: append([]byte(nil), block...)}
	if err := id.check(); err != nil {
		id.Wipe()
		return nil, err
	}
	return id, nil
}

func (id *Identity) check() error {
	birth := id.Field(FieldBirthDate)
	if !digits(birth, 8) {
		return &MisreadError{FieldBirthDate, "is not YYYYMMDD"}
	}
	num := id.Field(FieldNumber)
	if id.typ == Foreigner2017 {
		if len(num) != 15 || !upper(num[:3]) || !digits(num[3:], 12) {
			return &MisreadError{FieldNumber, "is not three letters and twelve digits"}
		}
		return nil
	}
	if len(num) != 18 || !digits(num[:17], 17) {
		return &MisreadError{FieldNumber, "is not 17 digits and a check character"}
	}
	if CheckChar(num[:17]) != num[17] {
		return &MisreadError{FieldNumber, "check character does not match (ISO 7064 MOD 11-2)"}
	}
	if id.typ != Foreigner2023 && num[6:14] != birth {
		return &MisreadError{FieldNumber, "does not carry the birth date"}
	}
	return nil
}

// CheckChar returns the ISO 7064 MOD 11-2 check character of the first 17 digits of an ID number
// (GB 11643): weights 2^(17-i) mod 11, check = (12 - sum mod 11) mod 11, 10 written X.
// It returns 0 if d is not 17 digits.
func CheckChar(d string) byte {
	if !digits(d, 17) {
		return 0
	}
	sum := 0
	w := 1
	for i := 16; i >= 0; i-- {
		w = w * 2 % 11
		sum += int(d[i]-'0') * w
	}
	return "10X98765432"[sum%11]
}

func digits(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func upper(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}
