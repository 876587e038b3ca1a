// Package strictjson checks that JSON from outside is I-JSON (RFC 7493) before a decoder reads
// it: Go's encoding/json replaces invalid UTF-8 with U+FFFD and lets the last of two members of
// the same name win, so a body that says two things, or stores replacement characters, would be
// taken as valid. Check refuses:
//
//   - invalid UTF-8 anywhere (RFC 7493 §2.1), and escaped lone surrogates (\ud800 alone: §2.1);
//   - two members of one object with the same name (§2.3), at every depth, names compared after
//     unescaping ("a" and "\u0061" are the same), and names equal but for case ("seq" and "SEQ"),
//     since encoding/json matches struct fields case-insensitively;
//   - anything that is not one JSON text (RFC 8259): syntax errors, trailing data, and nesting
//     deeper than MaxDepth.
//
// It allocates nothing for objects of up to 16 members without escaped names.
package strictjson

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Sentinel errors; every error of Check is an *Error that matches one of them with errors.Is.
var (
	ErrInvalidUTF8   = errors.New("invalid UTF-8")
	ErrLoneSurrogate = errors.New("escaped lone surrogate")
	ErrDuplicateKey  = errors.New("duplicate key")
	ErrSyntax        = errors.New("invalid JSON")
	ErrTooDeep       = errors.New("nested too deep")
)

// MaxDepth is the deepest nesting of objects and arrays accepted (encoding/json's own limit).
const MaxDepth = 10000

// Error says what was refused and where.
type Error struct {
	Offset int   // byte offset in the input
	Kind   error // one of the sentinels
	Detail string
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("%v at byte %d", e.Kind, e.Offset)
	}
	return fmt.Sprintf("%v at byte %d: %s", e.Kind, e.Offset, e.Detail)
}

// Unwrap makes errors.Is(err, ErrDuplicateKey) and the like work.
func (e *Error) Unwrap() error { return e.Kind }

// Check reports whether b is one strict JSON text (see the package documentation); whitespace
// around it is allowed.
func Check(b []byte) error {
	if !utf8.Valid(b) {
		i := 0
		for i < len(b) {
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			i += n
		}
		return &Error{Offset: i, Kind: ErrInvalidUTF8}
	}
	s := scanners.Get().(*scanner)
	defer s.release()
	s.b, s.i, s.keys = b, 0, s.keyBuf[:0]
	s.skipSpace()
	if err := s.value(0); err != nil {
		return err
	}
	s.skipSpace()
	if s.i < len(b) {
		return s.fail(ErrSyntax, "trailing data after the JSON value")
	}
	return nil
}

var scanners = sync.Pool{New: func() any { return new(scanner) }}

// release returns s to the pool holding nothing of the input.
func (s *scanner) release() {
	clear(s.keyBuf[:])
	s.b, s.keys = nil, nil
	scanners.Put(s)
}

type scanner struct {
	b      []byte
	i      int
	keys   [][]byte // member names of the open objects, innermost last
	keyBuf [64][]byte
}

func (s *scanner) fail(kind error, format string, a ...any) *Error {
	return &Error{Offset: s.i, Kind: kind, Detail: fmt.Sprintf(format, a...)}
}

func (s *scanner) skipSpace() {
	b, i := s.b, s.i
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\t' || b[i] == '\r') {
		i++
	}
	s.i = i
}

func (s *scanner) value(depth int) error {
	if s.i >= len(s.b) {
		return s.fail(ErrSyntax, "unexpected end of input")
	}
	switch c := s.b[s.i]; {
	case c == '{':
		return s.object(depth + 1)
	case c == '[':
		return s.array(depth + 1)
	case c == '"':
		_, err := s.str(false)
		return err
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	default:
		return s.fail(ErrSyntax, "unexpected %q", rune(c))
	}
}

func (s *scanner) literal(lit string) error {
	if !bytes.HasPrefix(s.b[s.i:], []byte(lit)) {
		return s.fail(ErrSyntax, "invalid literal")
	}
	s.i += len(lit)
	return nil
}

func (s *scanner) number() error {
	start := s.i
	if s.b[s.i] == '-' {
		s.i++
	}
	digits := func() int {
		n := 0
		for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
			s.i++
			n++
		}
		return n
	}
	switch {
	case s.i < len(s.b) && s.b[s.i] == '0':
		s.i++
	case digits() == 0:
		return s.fail(ErrSyntax, "invalid number %q", s.b[start:s.i])
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if digits() == 0 {
			return s.fail(ErrSyntax, "invalid number: no digit after the point")
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if digits() == 0 {
			return s.fail(ErrSyntax, "invalid number: no digit in the exponent")
		}
	}
	return nil
}

func (s *scanner) array(depth int) error {
	if depth > MaxDepth {
		return s.fail(ErrTooDeep, "more than %d levels", MaxDepth)
	}
	s.i++ // [
	s.skipSpace()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return nil
	}
	for {
		s.skipSpace()
		if err := s.value(depth); err != nil {
			return err
		}
		s.skipSpace()
		if s.i >= len(s.b) {
			return s.fail(ErrSyntax, "unexpected end of input in an array")
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case ']':
			s.i++
			return nil
		default:
			return s.fail(ErrSyntax, "expected ',' or ']' in an array")
		}
	}
}

// linearKeys is the number of members an object is checked for duplicates by comparing each
// name with those before it; a larger object gets a set of folded names.
const linearKeys = 16

func (s *scanner) object(depth int) error {
	if depth > MaxDepth {
		return s.fail(ErrTooDeep, "more than %d levels", MaxDepth)
	}
	s.i++ // {
	first := len(s.keys)
	defer func() { s.keys = s.keys[:first] }()
	var seen map[string][]byte // folded name -> name, once the object has more than linearKeys
	s.skipSpace()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return nil
	}
	for {
		s.skipSpace()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return s.fail(ErrSyntax, "expected a member name")
		}
		at := s.i
		name, err := s.str(true)
		if err != nil {
			return err
		}
		if prev, dup := s.seen(name, s.keys[first:], seen); dup {
			s.i = at
			if bytes.Equal(prev, name) {
				return s.fail(ErrDuplicateKey, "%q", clip(name))
			}
			return s.fail(ErrDuplicateKey, "%q and %q differ only in case", clip(prev), clip(name))
		}
		switch n := len(s.keys) - first; {
		case seen != nil:
			seen[fold(name)] = name
		case n+1 > linearKeys:
			seen = make(map[string][]byte, 2*linearKeys)
			for _, k := range s.keys[first:] {
				seen[fold(k)] = k
			}
			seen[fold(name)] = name
		}
		s.keys = append(s.keys, name)
		s.skipSpace()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return s.fail(ErrSyntax, "expected ':' after a member name")
		}
		s.i++
		s.skipSpace()
		if err := s.value(depth); err != nil {
			return err
		}
		s.skipSpace()
		if s.i >= len(s.b) {
			return s.fail(ErrSyntax, "unexpected end of input in an object")
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return s.fail(ErrSyntax, "expected ',' or '}' in an object")
		}
	}
}

// seen returns the earlier name of the object that name duplicates, if any.
func (s *scanner) seen(name []byte, earlier [][]byte, set map[string][]byte) ([]byte, bool) {
	if set != nil {
		prev, ok := set[fold(name)]
		return prev, ok
	}
	for _, k := range earlier {
		if bytes.EqualFold(k, name) {
			return k, true
		}
	}
	return nil, false
}

// fold maps a name to one representative of its case-folding class, so that names equal under
// bytes.EqualFold (simple Unicode folding) fold to the same string.
func fold(name []byte) string {
	ascii := true
	for _, c := range name {
		if c >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return string(bytes.ToLower(name))
	}
	out := make([]byte, 0, len(name))
	for _, r := range string(name) {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		out = utf8.AppendRune(out, least)
	}
	return string(out)
}

func clip(name []byte) []byte {
	const most = 64
	if len(name) <= most {
		return name
	}
	n := most
	for n > 0 && !utf8.RuneStart(name[n]) {
		n--
	}
	return name[:n]
}

// needsCare marks the bytes that end a run of plain string content: the quote, the backslash and
// the control characters (RFC 8259 §7).
var needsCare = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// str scans a string at s.i (the opening quote) and checks its escapes. For a member name it
// returns the name unescaped (the input itself when it has no escape).
func (s *scanner) str(name bool) ([]byte, error) {
	s.i++
	start := s.i
	var out []byte // the unescaped name, once an escape was seen
	for {
		run := s.i
		s.skipPlain()
		if out != nil {
			out = append(out, s.b[run:s.i]...)
		}
		if s.i >= len(s.b) {
			return nil, s.fail(ErrSyntax, "unterminated string")
		}
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			if out != nil {
				return out, nil
			}
			return s.b[start : s.i-1], nil
		case c < 0x20:
			return nil, s.fail(ErrSyntax, "control character %#02x in a string", c)
		}
		// A backslash.
		if name && out == nil {
			out = append(make([]byte, 0, 2*(s.i-start)+8), s.b[start:s.i]...)
		}
		if s.i+1 >= len(s.b) {
			return nil, s.fail(ErrSyntax, "unterminated escape")
		}
		if esc := s.b[s.i+1]; esc != 'u' {
			un := unescape[esc]
			if un == 0 {
				return nil, s.fail(ErrSyntax, "invalid escape \\%c", esc)
			}
			if out != nil {
				out = append(out, un)
			}
			s.i += 2
			continue
		}
		r, ok := s.hex4(s.i + 2)
		if !ok {
			return nil, s.fail(ErrSyntax, "invalid \\u escape")
		}
		switch {
		case isHighSurrogate(r):
			lo, ok := rune(0), s.i+7 < len(s.b) && s.b[s.i+6] == '\\' && s.b[s.i+7] == 'u'
			if ok {
				lo, ok = s.hex4(s.i + 8)
			}
			if !ok || !isLowSurrogate(lo) {
				return nil, s.fail(ErrLoneSurrogate, "\\u%04x without a low surrogate after it", r)
			}
			r = (r-0xd800)<<10 | (lo - 0xdc00) + 0x10000
			s.i += 6
		case isLowSurrogate(r):
			return nil, s.fail(ErrLoneSurrogate, "\\u%04x without a high surrogate before it", r)
		}
		s.i += 6
		if out != nil {
			out = utf8.AppendRune(out, r)
		}
	}
}

// skipPlain moves past string content that needs no care; the hot loop, on locals.
func (s *scanner) skipPlain() {
	b, i := s.b, s.i
	for i < len(b) && !needsCare[b[i]] {
		i++
	}
	s.i = i
}

// unescape maps the character after a backslash to what it stands for; 0: not an escape.
var unescape = [256]byte{'"': '"', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}

func (s *scanner) hex4(at int) (rune, bool) {
	if at+4 > len(s.b) {
		return 0, false
	}
	var r rune
	for _, c := range s.b[at : at+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

func isHighSurrogate(r rune) bool { return r >= 0xd800 && r < 0xdc00 }
func isLowSurrogate(r rune) bool  { return r >= 0xdc00 && r < 0xe000 }
