package daemon

import (
	"encoding/json"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// The agent runs exactly the commands fleetctl and the console offer.
func TestCommandHandlersAreTheAPIList(t *testing.T) {
	got := slices.Sorted(maps.Keys(new(Agent).commandHandlers()))
	want := slices.Sorted(slices.Values(api.CommandNames()))
	if !slices.Equal(got, want) {
		t.Fatalf("handlers %v, api.CommandSpecs %v", got, want)
	}
}

// Every field of the diagnostics answer is camelCase, and every number says its unit in its name.
func TestDiagnosticsFieldsSayTheirUnits(t *testing.T) {
	b, err := json.Marshal(diagnostics{Settings: DefaultSettings()})
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	camel := regexp.MustCompile(`^[a-z][a-zA-Z]*$`)
	unit := regexp.MustCompile(`(Seconds|Bytes|Percent|Records|Version|Sessions)$`)
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if !camel.MatchString(k) {
					t.Errorf("%s.%s: not camelCase", path, k)
				}
				walk(path+"."+k, e)
			}
		case float64:
			if !unit.MatchString(path) {
				t.Errorf("%s: a number without its unit in its name", path)
			}
		case string:
			if strings.HasSuffix(path, "Interval") || strings.HasSuffix(path, "Timeout") {
				if !regexp.MustCompile(`^[0-9.]+(ns|µs|ms|s|m|h)`).MatchString(x) {
					t.Errorf("%s = %q: a duration without its unit", path, x)
				}
			}
		}
	}
	walk("diagnostics", doc)
}

// homeUrl is a path of the shell or an http(s) URL; anything else is refused with the reason.
func TestSettingsHomeURL(t *testing.T) {
	for doc, ok := range map[string]bool{
		`{"homeUrl":"/shell/?care=1"}`:                true,
		`{"homeUrl":"http://127.0.0.1:8090/shell/"}`:  true,
		`{"homeUrl":"https://apps.example.gov.cn/a"}`: true,
		`{"homeUrl":"javascript:alert(1)"}`:           false,
		`{"homeUrl":"//evil.example/"}`:               false,
		`{"homeUrl":"shell"}`:                         false,
		`{"idleTimeout":"5s","homeUrl":"ftp://x/"}`:   false,
		`{"idleTimeout":"15s"}`:                       true,
	} {
		_, err := ParseSettings(json.RawMessage(doc))
		if (err == nil) != ok {
			t.Errorf("%s: %v", doc, err)
		}
		if !ok && err != nil && strings.Contains(doc, "homeUrl") && !strings.Contains(err.Error(), "homeUrl") {
			t.Errorf("%s: the error does not name homeUrl: %v", doc, err)
		}
	}
}

// The metrics are served on loopback only; every bad address is refused with what is wrong.
func TestCheckMetricsAddr(t *testing.T) {
	for addr, want := range map[string]string{
		"": "", "0": "", "127.0.0.1:0": "", "[::1]:0": "", "localhost:0": "",
		"0.0.0.0:9101":  "loopback only",
		"10.0.0.5:9101": "loopback only",
		":9101":         "loopback only",
		"127.0.0.1":     "want host:port",
		"127.0.0.1:x":   "port",
	} {
		err := CheckMetricsAddr(addr)
		if (err == nil) != (want == "") || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("CheckMetricsAddr(%q) = %v, want %q", addr, err, want)
		}
	}
}
