package wire

import (
	"bytes"
	"encoding/binary"

	"github.com/kioskfleet/kioskfleet/pkg/strictjson"
)

// fastBatch is DecodeBatch's fast path: the strict check every payload gets (strictjson: UTF-8,
// no duplicate keys at any depth, record bodies included), then scanBatch. ok false: the general
// decoder decides.
func fastBatch(b []byte) (m Batch, ok bool) {
	if len(b) > MaxPayloadBytes || strictjson.Check(b) != nil {
		return Batch{}, false
	}
	return scanBatch(b)
}

// scanBatch parses an up payload in one pass without reflection, the hub's hot path (a fleet
// sends tens of thousands of records a second). It takes only the plain form agents send
// (AppendBatch): exact lower-case keys, each at most once, no escapes in keys, epoch, kind and
// class, integers without fraction or exponent. It never refuses: anything else, valid or not,
// gets ok false, and the strict encoding/json decoder decides and words the error. It leaves
// UTF-8 and duplicate keys in bodies to strictjson: what it accepts of what strictjson.Check
// accepts, that decoder accepts with the same value (FuzzScanBatch checks it). Record bodies
// share b's memory.
func scanBatch(b []byte) (m Batch, ok bool) {
	s := scanner{b: b}
	s.ws()
	seen, ok := s.object(func(key []byte) (bit uint8, ok bool) {
		switch string(key) {
		case "v":
			v, ok := s.uint()
			m.V = Version
			return 1, ok && v == Version
		case "epoch":
			e, ok := s.plainString()
			m.Epoch = string(e)
			return 2, ok
		case "records":
			m.Records, ok = s.records()
			return 4, ok
		}
		return 0, false
	})
	s.ws()
	if !ok || s.i != len(s.b) || seen&1 == 0 {
		return Batch{}, false
	}
	return m, true
}

// scanner reads JSON from b at i; every method reports false rather than fail.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// wsThen skips white space and reports true, for use in conditions.
func (s *scanner) wsThen() bool { s.ws(); return true }

func (s *scanner) take(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// key reads an object key and its colon.
func (s *scanner) key() ([]byte, bool) {
	k, ok := s.plainString()
	if !ok {
		return nil, false
	}
	s.ws()
	if !s.take(':') {
		return nil, false
	}
	s.ws()
	return k, true
}

// plainString reads a string of printable ASCII without escapes and returns its contents.
func (s *scanner) plainString() ([]byte, bool) {
	b, i := s.b, s.i
	if i >= len(b) || b[i] != '"' {
		return nil, false
	}
	i++
	start := i
	for i < len(b) && ascii[b[i]] {
		i++
	}
	if i >= len(b) || b[i] != '"' {
		return nil, false
	}
	s.i = i + 1
	return b[start:i], true
}

// ascii: printable ASCII but '"' and '\\'. inString: what a JSON string holds unescaped (RFC 8259 §7),
// with encoding/json's leniency: any byte from 0x80 (it lets invalid UTF-8 through).
var ascii, inString = func() (p, in [256]bool) {
	for c := 0x20; c < 256; c++ {
		in[c] = c != '"' && c != '\\'
		p[c] = in[c] && c < 0x80
	}
	return p, in
}()

// uint reads a JSON integer without sign, fraction or exponent that fits in a uint64.
func (s *scanner) uint() (uint64, bool) {
	b, i := s.b, s.i
	start := i
	var v uint64
	for i < len(b) && b[i]-'0' <= 9 {
		v = v*10 + uint64(b[i]-'0')
		i++
	}
	switch n := i - start; {
	case n == 0 || n > 1 && b[start] == '0':
		return 0, false
	case n > 20 || n == 20 && string(b[start:i]) > "18446744073709551615":
		return 0, false // overflows
	}
	if i < len(b) && (b[i] == '.' || b[i] == 'e' || b[i] == 'E') {
		return 0, false
	}
	s.i = i
	return v, true
}

// int reads a JSON integer without fraction or exponent that fits in an int64.
func (s *scanner) int() (int64, bool) {
	neg := s.take('-')
	u, ok := s.uint()
	switch {
	case !ok:
		return 0, false
	case neg && u <= 1<<63:
		return -int64(u), true // wraps to math.MinInt64 for 1<<63, as it should
	case !neg && u < 1<<63:
		return int64(u), true
	}
	return 0, false
}

// records reads the records array.
func (s *scanner) records() ([]Record, bool) {
	if !s.take('[') {
		return nil, false
	}
	s.ws()
	if s.take(']') {
		return []Record{}, true
	}
	var recs []Record
	start := s.i
	for {
		r, ok := s.record(recs)
		if !ok {
			return nil, false
		}
		if recs == nil {
			// Size the slice from the first record: an agent's records are much alike.
			recs = make([]Record, 0, min(MaxBatchRecords+1, len(s.b)/(s.i-start)+1))
		}
		recs = append(recs, r)
		s.ws()
		if s.take(']') {
			return recs, true
		}
		if !s.take(',') {
			return nil, false
		}
		s.ws()
	}
}

// record reads one record; prev are the records before it.
func (s *scanner) record(prev []Record) (r Record, ok bool) {
	_, ok = s.object(func(key []byte) (bit uint8, ok bool) {
		switch string(key) {
		case "seq":
			r.Seq, ok = s.uint()
			return 1, ok
		case "ts":
			r.TS, ok = s.int()
			return 2, ok
		case "kind":
			k, ok := s.plainString()
			if n := len(prev); ok && n > 0 && prev[n-1].Kind == string(k) {
				r.Kind = prev[n-1].Kind // one string for a batch of one kind
			} else {
				r.Kind = string(k)
			}
			return 4, ok
		case "class":
			c, ok := s.plainString()
			switch string(c) {
			case string(Telemetry):
				r.Class = Telemetry
			case string(Business):
				r.Class = Business
			default:
				r.Class = Class(c)
			}
			return 8, ok
		case "body":
			start := s.i
			if ok = s.value(0); ok {
				r.Body = s.b[start:s.i:s.i]
			}
			return 16, ok
		}
		return 0, false
	})
	return r, ok
}

// object reads a JSON object in the plain form: field reads the value of each key and returns
// the key's bit (or false for a key it does not take or a value it cannot read); a key seen twice
// is refused. It returns the bits of the keys seen.
func (s *scanner) object(field func(key []byte) (bit uint8, ok bool)) (seen uint8, ok bool) {
	if !s.take('{') {
		return 0, false
	}
	for first := true; ; first = false {
		s.ws()
		if s.take('}') {
			return seen, true
		}
		if !first && !(s.take(',') && s.wsThen()) {
			return 0, false
		}
		key, ok := s.key()
		if !ok {
			return 0, false
		}
		bit, ok := field(key)
		if !ok || seen&bit != 0 {
			return 0, false
		}
		seen |= bit
	}
}

// maxScanDepth is how deeply nested a body the scanner follows; deeper ones go to encoding/json.
const maxScanDepth = 64

// value skips one JSON value (RFC 8259 §3), checking it as encoding/json's scanner does.
func (s *scanner) value(depth int) bool {
	if s.i >= len(s.b) || depth > maxScanDepth {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '{':
		s.i++
		s.ws()
		if s.take('}') {
			return true
		}
		for {
			if !s.string() {
				return false
			}
			s.ws()
			if !s.take(':') {
				return false
			}
			s.ws()
			if !s.value(depth + 1) {
				return false
			}
			s.ws()
			if s.take('}') {
				return true
			}
			if !s.take(',') {
				return false
			}
			s.ws()
		}
	case c == '[':
		s.i++
		s.ws()
		if s.take(']') {
			return true
		}
		for {
			if !s.value(depth + 1) {
				return false
			}
			s.ws()
			if s.take(']') {
				return true
			}
			if !s.take(',') {
				return false
			}
			s.ws()
		}
	case c == '"':
		return s.string()
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return false
}

func (s *scanner) literal(lit string) bool {
	if bytes.HasPrefix(s.b[s.i:], []byte(lit)) {
		s.i += len(lit)
		return true
	}
	return false
}

// string skips a string (RFC 8259 §7): no control characters, only the defined escapes.
func (s *scanner) string() bool {
	b, i := s.b, s.i
	if i >= len(b) || b[i] != '"' {
		return false
	}
	for i++; i < len(b); i++ {
		for i+8 <= len(b) && !special(binary.LittleEndian.Uint64(b[i:])) {
			i += 8
		}
		for i < len(b) && inString[b[i]] {
			i++
		}
		if i >= len(b) || b[i] < 0x20 {
			return false
		}
		if b[i] == '"' {
			s.i = i + 1
			return true
		}
		// A backslash.
		if i++; i >= len(b) {
			return false
		}
		switch b[i] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		case 'u':
			if i+4 >= len(b) {
				return false
			}
			for _, h := range b[i+1 : i+5] {
				if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
					return false
				}
			}
			i += 4
		default:
			return false
		}
	}
	return false
}

// special reports whether one of the 8 bytes in v is '"', '\\' or below 0x20 ("Determine if a
// word has a byte less than n", Bit Twiddling Hacks; exact for n <= 128).
func special(v uint64) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	q, bs := v^(lo*'"'), v^(lo*'\\')
	return ((q-lo)&^q|(bs-lo)&^bs|(v-lo*0x20)&^v)&hi != 0
}

// number skips a number (RFC 8259 §6).
func (s *scanner) number() bool {
	s.take('-')
	switch {
	case s.take('0'):
	case s.digits() == 0:
		return false
	}
	if s.take('.') && s.digits() == 0 {
		return false
	}
	if s.take('e') || s.take('E') {
		if !s.take('+') {
			s.take('-')
		}
		if s.digits() == 0 {
			return false
		}
	}
	return true
}

func (s *scanner) digits() int {
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i - start
}
