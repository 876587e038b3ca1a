package redact

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/kioskfleet/kioskfleet/pkg/gb11643"
)

func TestString(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"card 11010519491231002X read", "card [id] read"},
		{"card 11010519491231002x", "card [id]"},
		{"id=440305199001011234 ok", "id=[id] ok"},
		{"spaced 4403 0519 9001 0112 34.", "spaced [id]."},
		{"hyphen 440305-19900101-1234", "hyphen [id]"},
		{"old 110105491231002", "old [id]"},
		{"full ４４０３０５１９９００１０１１２３Ｘ!", "full [id]!"},
		{"call 13812345678 now", "call [phone] now"},
		{"call 138-1234-5678", "call [phone]"},
		{"call 138 1234 5678", "call [phone]"},
		{"call +86 13812345678", "call +[phone]"},
		{"call +86-138-1234-5678", "call +[phone]"},
		{"call 8613812345678", "call [phone]"},
		{"desk 010-12345678 or 0755-1234567", "desk [phone] or [phone]"},
		{"longer 12345678901234567890123", "longer [id]"},
		// Not personal data: kept as it is.
		{"seq 12345 at 1765000000123 ms", "seq 12345 at 1765000000123 ms"},
		{"time 2026-12-06 15:46:50", "time 2026-12-06 15:46:50"},
		{"count 12345678901", "count 12345678901"}, // 11 digits, not a mobile prefix
		{"v1.2.3 k-0042 10 20 30", "v1.2.3 k-0042 10 20 30"},
		{"", ""},
		{"中文 没有数字", "中文 没有数字"},
	} {
		if got := String(tc.in); got != tc.want {
			t.Errorf("String(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// Whatever String leaves holds nothing gb11643.Contains sees as an ID number, is UTF-8 when its
// input was, and a text without digits is kept whole.
func FuzzString(f *testing.F) {
	for _, s := range []string{"11010519491231002X", "4403 0519 9001 0112 34", "138-1234-5678", "x１１０１０５１９４９１２３１００２Ｘy", "a\xffb1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := String(s)
		if gb11643.Contains(got) {
			t.Fatalf("String(%q) = %q still holds an ID-shaped number", s, got)
		}
		if utf8.ValidString(s) && !utf8.ValidString(got) {
			t.Fatalf("String(%q) = %q is not UTF-8", s, got)
		}
		if strings.IndexFunc(s, func(r rune) bool { return r >= '0' && r <= '9' || r >= '０' && r <= '９' }) < 0 && got != s {
			t.Fatalf("String(%q) = %q changed a text without digits", s, got)
		}
	})
}
