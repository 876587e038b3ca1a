package fleetctl

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/kioskfleet/kioskfleet/pkg/api"
)

func TestFaultSummary(t *testing.T) {
	for body, want := range map[string]string{
		// As the agent sends it (wire.Peripherals).
		`{"devices":[{"id":"receipt0","class":"receipt-printer","model":"KF-80","connected":true,"status":"fault","reasons":["paper-out","cover-open"],"consumables":[{"name":"paper","level":"empty"}],"since":1},` +
			`{"id":"idcard0","class":"id-reader","connected":true,"status":"ok","since":1},` +
			`{"id":"a4","class":"document-printer","connected":true,"status":"degraded","reasons":["toner-low"],"consumables":[{"name":"toner","level":"low"}],"since":1},` +
			`{"id":"scanner0","class":"document-scanner","connected":false,"status":"fault","reasons":["disconnected"],"error":"open /dev/bus/usb/001/004: no such device","since":1}]}`: "receipt0: paper-out,cover-open, a4: toner-low, scanner0: disconnected",
		`{"devices":[{"id":"qr0","class":"qr-scanner","connected":false,"status":"unknown","since":1}]}`: "qr0: unknown",
		`{"devices":[]}`: "",
		``:               "",
		`null`:           "",
		// Anything else is not guessed at.
		`{"scanner":"offline"}`:                 "?",
		`[{"name":"receipt","status":"fault"}]`: "?",
		`42`:                                    "?",
	} {
		if got := faultSummary(json.RawMessage(body)); got != want {
			t.Errorf("%s: %q, want %q", body, got, want)
		}
	}
	p := api.Peripheral{ID: "receipt0", Status: api.PeripheralFault, Connected: true, Error: "paper end",
		Consumables: []api.Consumable{{Name: "paper", Level: "empty"}, {Name: "ribbon", Level: "ok"}}}
	if d := detail(p); d != "paper end; paper empty" {
		t.Errorf("detail %q", d)
	}
}

func TestHealthSummary(t *testing.T) {
	for body, want := range map[string]string{
		`{"cpuPercent":99.6,"memUsedBytes":3,"memTotalBytes":4,"diskFreeBytes":536870912,"diskTotalBytes":1073741824,"outboxDepth":70}`: "cpu 100% mem 75% disk 512M free (50%) outbox 70",
		`{"cpuPercent":1,"outboxDepth":3}`: "cpu 1%",
		`{"diskFreeBytes":2048}`:           "cpu 0%",
		``:                                 "",
		`{"temperature":41}`:               "?",
		`[1]`:                              "?",
		`{"cpuPercent":"high"}`:            "?",
	} {
		if got := healthSummary(json.RawMessage(body)); got != want {
			t.Errorf("%s: %q, want %q", body, got, want)
		}
	}
}

// Every figure of a heartbeat is shown with its unit.
func TestHealthLinesHaveUnits(t *testing.T) {
	lines := healthLines(json.RawMessage(`{"uptimeS":8123,"cpuPercent":12.293682123456789,"memUsedBytes":858993459,"memTotalBytes":4294967296,` +
		`"diskFreeBytes":22548578304,"diskTotalBytes":68719476736,"agentVersion":"0.1.0","outboxDepth":2,"rssBytes":41943040}`))
	want := map[string]string{"cpu": "12.3%", "memory used": "819M of 4.0G (20%)", "disk free": "21G of 64G (33%)",
		"uptime": "2h15m23s", "agent": "0.1.0", "agent memory": "40M", "outbox": "2 records waiting"}
	for _, l := range lines {
		if want[l[0]] != l[1] {
			t.Errorf("%s: %q, want %q", l[0], l[1], want[l[0]])
		}
		delete(want, l[0])
	}
	if len(want) > 0 {
		t.Errorf("missing %v", want)
	}
	if l := healthLines(json.RawMessage(`{"cpu":"high"}`)); l[0][0] != "unreadable" || !strings.Contains(l[1][1], `unknown field "cpu"`) {
		t.Errorf("unreadable body shown as %q", l)
	}
}

func TestAgo(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "just now", 12 * time.Second: "12s ago", 90 * time.Second: "1m ago", 3 * time.Hour: "3h ago",
		47 * time.Hour: "47h ago", 72 * time.Hour: "3d ago", -5 * time.Second: "in 5s",
	} {
		if got := ago(now, now.Add(-d)); got != want {
			t.Errorf("%v: %q, want %q", d, got, want)
		}
	}
	if got := ago(now, time.Time{}); got != "never" {
		t.Errorf("zero time: %q", got)
	}
}

func TestCompactKeepsUTF8(t *testing.T) {
	s := compact(json.RawMessage(`{"message":"打印机缺纸，请联系工作人员"}`), 20)
	if !utf8.ValidString(s) || len(s) > 20 {
		t.Errorf("%q", s)
	}
}

// FuzzDeviceBodies feeds arbitrary health and peripherals bodies (sent by kiosks, passed through
// by the hub) to every function that shows them: none may panic or print anything unsafe for a
// terminal, and a body the decoder refuses is never half-shown as peripherals.
func FuzzDeviceBodies(f *testing.F) {
	for _, s := range []string{
		`{"devices":[{"id":"r","class":"receipt-printer","connected":true,"status":"fault","reasons":["paper-out"],"consumables":[{"name":"paper","level":"low"}],"since":1}]}`,
		`{"devices":[{"id":"\u001b[2Jx","class":"\u009b31m","status":"ok","error":"\u0007"}]}`,
		`{"uptimeS":1e300,"cpuPercent":1,"diskFreeBytes":1e308,"diskTotalBytes":0}`, `{"uptimeS":9223372036854775807,"memTotalBytes":1}`,
		`{"scanner":"offline"}`, `[null,[],"s",{}]`, `42`, `"`, `{"id_card":{"number":"11010519491231002X"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		raw := json.RawMessage(b)
		out := []string{healthSummary(raw), faultSummary(raw), compact(raw, 80), indentJSON(raw, "  ")}
		for _, l := range healthLines(raw) {
			out = append(out, l[0], l[1])
		}
		if ps, err := api.DecodePeripherals(raw); err == nil {
			for _, p := range ps.Devices {
				out = append(out, p.ID, p.Class, p.Model, why(p), detail(p))
			}
		} else if s := faultSummary(raw); s != "?" && s != "" {
			t.Fatalf("refused body summarised as %q", s)
		}
		var tb strings.Builder
		tab := newTable(&tb)
		tab.row(out...)
		tab.flush()
		for _, s := range []string{compact(raw, 80), indentJSON(raw, ""), tb.String()} {
			if !utf8.ValidString(s) || strings.ContainsFunc(strings.TrimSuffix(s, "\n"), func(r rune) bool { return r != '\n' && unicode.IsControl(r) }) {
				t.Errorf("unsafe for a terminal: %q", s)
			}
		}
	})
}
