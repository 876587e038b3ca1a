package fleet

import "testing"

func TestScope(t *testing.T) {
	for p, want := range map[string]bool{"44": true, "4403": true, "440305": true, "4": false, "440": false,
		"4403051": false, "00": false, "0012": false, "44a3": false, "": false} {
		if ValidScopePrefix(p) != want {
			t.Errorf("ValidScopePrefix(%q) = %v", p, !want)
		}
	}
	if err := CheckScope([]string{"44", "x", "440"}); err == nil || err.Error() != `region scope "x", "440": want GB/T 2260 prefixes of 2, 4 or 6 digits (province, city, county)` {
		t.Errorf("CheckScope: %v", err)
	}
	if CheckScope(nil) != nil || CheckScope([]string{"4403"}) != nil {
		t.Error("CheckScope refused a good scope")
	}
	for _, c := range []struct {
		region string
		scope  []string
		want   bool
	}{
		{"440305", nil, true},
		{"440305", []string{"4403"}, true},
		{"440305", []string{"4401", "440305"}, true},
		{"440104", []string{"4403"}, false},
		{"440104", []string{"45"}, false},
	} {
		if InScope(c.region, c.scope) != c.want {
			t.Errorf("InScope(%s, %v) = %v", c.region, c.scope, !c.want)
		}
	}
}
