// Package redact removes text shaped like personal data from free text, such as a log line
// leaving a kiosk: anything shaped like a GB 11643 citizen identity number (18 characters, or
// the 15 digits of the first generation, whatever the check character) and Chinese phone
// numbers (mobile, with or without +86, and landline with its area code). It is defence in
// depth: the agent never logs ID-card data in the first place.
//
// A number is a run of ASCII or full-width digits in which single spaces or hyphens may
// separate digits ("138-1234-5678", "4403 0519 9001 0112 34"), and whose last character after
// 17 digits may be X. Runs of 15 digits or more are redacted whatever they hold (a longer run
// may hide an ID number); shorter ones only when they are shaped like a phone number.
package redact

import (
	"slices"
	"strings"
)

// Markers that replace what was redacted.
const (
	IDMarker    = "[id]"
	PhoneMarker = "[phone]"
)

// String returns s with every ID-shaped and phone-shaped number replaced by its marker. It
// returns s itself when there is nothing to redact.
func String(s string) string {
	var b strings.Builder
	last := 0 // s[last:] is not yet copied to b
	for i := 0; i < len(s); {
		d, w := digit(s, i)
		if d < 0 {
			i += w
			continue
		}
		end, digits, groups := scan(s, i)
		if marker := classify(digits, groups); marker != "" {
			if b.Len() == 0 && last == 0 {
				b.Grow(len(s))
			}
			b.WriteString(s[last:i])
			b.WriteString(marker)
			last = end
		}
		i = end
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// scan reads the number starting at s[i] (a digit) and returns where it ends, its digits
// (ASCII, 'X' for a final X) and the lengths of its groups of digits between separators.
func scan(s string, i int) (end int, digits string, groups []int) {
	var ds []byte
	groups = []int{0}
	end = i
	for j := i; j < len(s); {
		if d, w := digit(s, j); d >= 0 {
			ds = append(ds, byte('0'+d))
			groups[len(groups)-1]++
			j += w
			end = j
			continue
		}
		if w := xWidth(s, j); w > 0 && len(ds) == 17 {
			ds = append(ds, 'X')
			end = j + w
			break
		}
		// A single separator between two digits belongs to the number.
		if (s[j] == ' ' || s[j] == '-') && j+1 < len(s) {
			if d, _ := digit(s, j+1); d >= 0 {
				groups = append(groups, 0)
				j++
				continue
			}
		}
		break
	}
	return end, string(ds), groups
}

// classify says what a number is shaped like: an ID number whatever its grouping; a phone
// number only as phone numbers are written (whole, or mobile 3-4-4, or area code and number).
func classify(d string, groups []int) string {
	n := len(d)
	is := func(shape ...int) bool { return slices.Equal(groups, shape) }
	switch {
	case n >= 15:
		return IDMarker
	case n == 11 && mobile(d) && (is(11) || is(3, 4, 4)):
		return PhoneMarker
	case n == 13 && strings.HasPrefix(d, "86") && mobile(d[2:]) && (is(13) || is(2, 11) || is(2, 3, 4, 4)):
		return PhoneMarker
	case n >= 10 && n <= 12 && d[0] == '0' && (len(groups) == 1 || (len(groups) == 2 && (groups[0] == 3 || groups[0] == 4) && groups[1] >= 7)):
		return PhoneMarker // landline: 0 and a 2-3 digit area code, then 7-8 digits
	}
	return ""
}

// mobile: 1, then 3 to 9 (the mainland's mobile prefixes).
func mobile(d string) bool { return d[0] == '1' && d[1] >= '3' && d[1] <= '9' }

// digit returns the value of the ASCII or full-width digit at s[i] and its width in bytes, or
// -1 and the width of whatever is there.
func digit(s string, i int) (int, int) {
	c := s[i]
	if c >= '0' && c <= '9' {
		return int(c - '0'), 1
	}
	// Full-width digits U+FF10..U+FF19 are EF BC 90..99 in UTF-8.
	if c == 0xEF && i+2 < len(s) && s[i+1] == 0xBC && s[i+2] >= 0x90 && s[i+2] <= 0x99 {
		return int(s[i+2] - 0x90), 3
	}
	return -1, 1
}

// xWidth returns the width of an X (ASCII or full-width, either case) at s[i], 0 if none.
func xWidth(s string, i int) int {
	switch c := s[i]; {
	case c == 'X' || c == 'x':
		return 1
	case c == 0xEF && i+2 < len(s) && ((s[i+1] == 0xBC && s[i+2] == 0xB8) || (s[i+1] == 0xBD && s[i+2] == 0x98)):
		return 3 // Ｘ U+FF38, ｘ U+FF58
	}
	return 0
}
