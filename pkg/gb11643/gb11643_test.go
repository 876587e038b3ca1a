package gb11643

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// valid returns a valid number for a region, birth date and sequence.
func valid(region string, birth time.Time, seq int) string {
	n := fmt.Sprintf("%s%s%03d", region, birth.Format("20060102"), seq)
	return n + string(CheckChar([]byte(n)))
}

func TestCheck(t *testing.T) {
	n := valid("440305", time.Date(1966, 3, 7, 0, 0, 0, 0, time.UTC), 123)
	if err := Check([]byte(n)); err != nil {
		t.Fatal(err)
	}
	bad := []byte(n)
	bad[17] = "10X98765432"[(strings.IndexByte("10X98765432", n[17])+1)%11]
	for _, c := range []struct {
		n    string
		want error
	}{{string(bad), ErrCheck}, {n[:17], ErrLength}, {"4403051966030712A" + "1", ErrDigits}} {
		if err := Check([]byte(c.n)); err != c.want && !strings.Contains(fmt.Sprint(err), c.want.Error()) {
			t.Errorf("Check(%q) = %v, want %v", c.n, err, c.want)
		}
		if err := Check([]byte(c.n)); err != nil && strings.Contains(err.Error(), c.n[:10]) {
			t.Errorf("error %q shows the number", err)
		}
	}
	// A number from GB 11643-1999's annex: 11010519491231002X.
	if err := Check([]byte("11010519491231002x")); err != nil {
		t.Errorf("lower-case x: %v", err)
	}
	b, err := BirthDate([]byte("11010519491231002X"))
	if err != nil || !b.Equal(time.Date(1949, 12, 31, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("BirthDate = %v, %v", b, err)
	}
	// A valid check character over an impossible date.
	x := "44030519991341" + "123"
	if _, err := BirthDate([]byte(x + string(CheckChar([]byte(x))))); err != ErrBirth {
		t.Errorf("BirthDate of month 13 = %v", err)
	}
}

func TestContains(t *testing.T) {
	yes := []string{
		"11010519491231002X", "id: 11010519491231002X.", "110105194912310021", // a wrong check character still counts
		"1101 0519 4912 3100 2X", "110105-19491231-002x", "证件号１１０１０５１９４９１２３１００２１号",
		"a11010519491231002Xb", "x110105194912310021", "440305199001011234 5 items",
	}
	no := []string{"", "1101051949123100", "12345678901234567890", "11010519491231002X9", "phone 13800138000",
		"1101051949123100  2X", "X11010519491231002", "order 2026-11-25 12:00"}
	for _, s := range yes {
		if !Contains(s) {
			t.Errorf("Contains(%q) = false", s)
		}
	}
	for _, s := range no {
		if Contains(s) {
			t.Errorf("Contains(%q) = true", s)
		}
	}
}

// TestContainsEmbedded: every valid number, written with or without separators inside any text
// that does not touch it with more digits, is found.
func TestContainsEmbedded(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		birth := time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, rapid.IntRange(0, 45000).Draw(t, "days"))
		n := valid(fmt.Sprintf("%06d", rapid.IntRange(110000, 659999).Draw(t, "region")), birth, rapid.IntRange(0, 999).Draw(t, "seq"))
		var b strings.Builder
		for i, c := range n {
			if i > 0 && rapid.IntRange(0, 5).Draw(t, "sep") == 0 {
				b.WriteByte(" -"[rapid.IntRange(0, 1).Draw(t, "which")])
			}
			b.WriteRune(c)
		}
		text := rapid.StringMatching(`[a-w ,.:号码]{0,12}`)
		s := text.Draw(t, "before") + b.String() + text.Draw(t, "after")
		if !Contains(s) {
			t.Fatalf("Contains(%q) = false", s)
		}
	})
}

func FuzzContains(f *testing.F) {
	f.Add("11010519491231002X")
	f.Add("1101 0519 4912 3100 2X")
	f.Fuzz(func(t *testing.T, s string) {
		got := Contains(s)
		// Removing everything but the characters of a number from a plain 18-character match
		// must keep finding it.
		if len(s) == 18 && Check([]byte(s)) == nil && !got {
			t.Fatalf("valid number %q not found", s)
		}
	})
}
