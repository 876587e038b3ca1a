package fleet

import (
	"fmt"
	"slices"
	"strings"
)

// A region scope limits a staff member to the kiosks under some administrative divisions: a
// list of GB/T 2260 code prefixes, each of 2 digits (a province, "44" Guangdong), 4 (a city,
// "4403" Shenzhen) or 6 (a county, "440305" Nanshan). An empty scope is the whole country.

// ValidScopePrefix reports whether p is a prefix a scope may hold: 2, 4 or 6 digits, not a
// province 00.
func ValidScopePrefix(p string) bool {
	if (len(p) != 2 && len(p) != 4 && len(p) != 6) || strings.Trim(p, "0123456789") != "" {
		return false
	}
	return !strings.HasPrefix(p, "00")
}

// CheckScope says which prefixes of scope are not valid, all at once.
func CheckScope(scope []string) error {
	var bad []string
	for _, p := range scope {
		if !ValidScopePrefix(p) {
			bad = append(bad, fmt.Sprintf("%q", p))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("region scope %s: want GB/T 2260 prefixes of 2, 4 or 6 digits (province, city, county)", strings.Join(bad, ", "))
	}
	return nil
}

// InScope reports whether region (a six-digit code) lies under scope.
func InScope(region string, scope []string) bool {
	return len(scope) == 0 || slices.ContainsFunc(scope, func(p string) bool { return strings.HasPrefix(region, p) })
}
