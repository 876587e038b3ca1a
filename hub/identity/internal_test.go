package identity

import (
	"strings"
	"testing"
)

func FuzzNormalizeUserCode(f *testing.F) {
	for _, s := range []string{"BCDF-GHJK", "bcdfghjk", " bc df-gh jk ", "", "ééé", strings.Repeat("-", 100)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := normalizeUserCode(s)
		if normalizeUserCode(n) != n {
			t.Fatalf("not idempotent: %q -> %q -> %q", s, n, normalizeUserCode(n))
		}
	})
}
