package web

import (
	"regexp"
	"strings"
)

// digitRun finds runs of digits that could be a resident identity card number (GB 11643: 17
// digits and a check digit or X; the old form: 15 digits).
var digitRun = regexp.MustCompile(`[0-9]{15,}[Xx]?`)

// maskIDNumbers keeps the region code (first six digits) of every ID number in s and masks the
// rest. The hub returns no ID card data, but text a kiosk sent — command output, errors, unknown
// fields — is shown as it came, so it passes through here: a number that slipped into it anyway
// never reaches a screen.
func maskIDNumbers(s string) string {
	return digitRun.ReplaceAllStringFunc(s, func(m string) string {
		if len(m) != 18 && (len(m) != 15 || strings.ContainsAny(m, "Xx")) {
			return m
		}
		return m[:6] + strings.Repeat("*", len(m)-6)
	})
}
