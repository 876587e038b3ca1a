package semver

import (
	"errors"
	"testing"
)

func TestOrder(t *testing.T) {
	// SemVer §11's example, in order.
	order := []string{"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
		"1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.2.0", "1.10.0", "2.0.0"}
	for i := range order {
		for j := range order {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := Compare(order[i], order[j]); got != want {
				t.Errorf("Compare(%s, %s) = %d, want %d", order[i], order[j], got, want)
			}
		}
	}
	if Compare("1.0.0+a", "1.0.0+b") != 0 {
		t.Error("build metadata must not order")
	}
	if Compare("junk", "0.0.1") != -1 || Compare("0.0.1", "junk") != 1 {
		t.Error("invalid versions sort first")
	}
}

func TestParse(t *testing.T) {
	for _, s := range []string{"1.2.3", "0.0.0", "1.2.3-rc.1+build.7", "10.20.30-x-y.0"} {
		if !Valid(s) {
			t.Errorf("%q refused", s)
		}
	}
	for _, s := range []string{"", "1", "1.2", "v1.2.3", "01.2.3", "1.2.3-", "1.2.3-01", "1.2.3+", "1.2.3-a..b", "1.2.3.4", "1.2.-3", "1.2.3 "} {
		if _, err := Parse(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q accepted", s)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"1.2.3", "1.0.0-alpha.1+x", "0.0.0-0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := Parse(s)
		if err != nil {
			return
		}
		if v.Compare(v) != 0 || Compare(s, s) != 0 {
			t.Fatalf("%q does not equal itself", s)
		}
	})
}
