package fleetctl

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

func TestParsePeripheralsShapes(t *testing.T) {
	for _, tc := range []struct {
		body   string
		want   []peripheral
		faults string
	}{
		{ // agent/devices.Peripherals, as the agent sends it
			`{"devices":[{"id":"receipt","class":"receipt-printer","model":"KF-80","connected":true,"status":"fault","reasons":["paper-out","cover-open"],"consumables":[{"name":"paper","level":"empty"}],"since":1},` +
				`{"id":"idcard","class":"id-reader","connected":true,"status":"ok","since":1},` +
				`{"id":"a4","class":"a4-printer","connected":true,"status":"degraded","reasons":["toner-low"],"consumables":[{"name":"toner","level":"low"},{"name":"paper","level":"ok"}],"since":1},` +
				`{"id":"scanner","class":"document-scanner","connected":false,"status":"fault","reasons":["disconnected"],"error":"open /dev/bus/usb/001/004: no such device","since":1}]}`,
			[]peripheral{
				{Name: "receipt", Kind: "receipt-printer", Model: "KF-80", Status: "fault", Reasons: []string{"paper-out", "cover-open"}, Detail: "paper empty"},
				{Name: "idcard", Kind: "id-reader", Status: "ok"},
				{Name: "a4", Kind: "a4-printer", Status: "degraded", Reasons: []string{"toner-low"}, Detail: "toner low"},
				{Name: "scanner", Kind: "document-scanner", Status: "fault", Reasons: []string{"disconnected"}, Detail: "open /dev/bus/usb/001/004: no such device"},
			},
			"receipt: paper-out,cover-open, a4: toner-low, scanner: disconnected"},
		{`[{"name":"receipt","kind":"escpos","status":"paper-out","detail":"paper end"},{"name":"idcard","status":"ok"}]`,
			[]peripheral{{Name: "receipt", Kind: "escpos", Status: "paper-out", Detail: "paper end"}, {Name: "idcard", Status: "ok"}}, "receipt: paper-out"},
		{`{"peripherals":[{"id":"a4","type":"ipp","state":"stopped"}]}`,
			[]peripheral{{Name: "a4", Kind: "ipp", Status: "stopped"}}, "a4: stopped"},
		{`{"scanner":"offline","a4":{"status":{"code":"toner-low","message":"12% left"}}}`,
			[]peripheral{{Name: "a4", Status: "toner-low", Detail: "12% left"}, {Name: "scanner", Status: "offline"}}, "a4: toner-low, scanner: offline"},
		{`[{"name":"qr","ok":false},{"name":"pad","ok":true},{"name":"cam","error":"usb reset"}]`,
			[]peripheral{{Name: "qr", Status: "fault"}, {Name: "pad", Status: "ok"}, {Name: "cam", Status: "error", Detail: "usb reset"}}, "qr: fault, cam: error"},
		{`[{"status":"READY"},{"name":"x","extra":[1,2],"reasons":[3,""]},7]`,
			[]peripheral{{Name: "#1", Status: "READY"}, {Name: "x"}, {Name: "#3"}}, ""},
		{`{}`, nil, ""},
	} {
		got, ok := parsePeripherals(json.RawMessage(tc.body))
		if !ok || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %+v %v, want %+v", tc.body, got, ok, tc.want)
		}
		if f := faultSummary(json.RawMessage(tc.body)); f != tc.faults {
			t.Errorf("%s: faults %q, want %q", tc.body, f, tc.faults)
		}
	}
	for _, body := range []string{`42`, `"ok"`, `true`, `{"a":`, `null`} {
		if _, ok := parsePeripherals(json.RawMessage(body)); ok {
			t.Errorf("%s: read as peripherals", body)
		}
	}
	if f := faultSummary(json.RawMessage(`"broken"`)); f != "?" {
		t.Errorf("unknown shape summarised as %q", f)
	}
	if f := faultSummary(nil); f != "" {
		t.Errorf("no body summarised as %q", f)
	}
}

func TestHealthSummary(t *testing.T) {
	for body, want := range map[string]string{
		`{"cpuPercent":99.6,"memUsedBytes":3,"memTotalBytes":4,"diskFreeBytes":536870912,"diskTotalBytes":1073741824,"outboxDepth":70}`: "cpu 100% mem 75% disk 512M free (50%) outbox 70",
		`{"cpuPercent":1,"outboxDepth":3}`: "cpu 1%",
		`{"diskFreeBytes":2048}`:           "disk 2.0K free",
		`{"temperature":41}`:               "?",
		`[1]`:                              "?",
		``:                                 "",
		`{"cpuPercent":"high"}`:            "?",
		`{"memUsedBytes":1}`:               "?",
		`{"memTotalBytes":0,"memUsedBytes":1,"cpuPercent":0}`: "cpu 0%",
	} {
		if got := healthSummary(json.RawMessage(body)); got != want {
			t.Errorf("%s: %q, want %q", body, got, want)
		}
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
// by the hub) to every function that reads them: none may panic or print invalid UTF-8.
func FuzzDeviceBodies(f *testing.F) {
	for _, s := range []string{
		`[{"name":"receipt","kind":"escpos","status":"paper-out"}]`,
		`{"peripherals":[{"id":"a4","status":{"code":"jam"}}]}`,
		`{"scanner":"offline"}`, `{"uptimeS":1e300,"cpuPercent":-1,"diskFreeBytes":1e308,"diskTotalBytes":0}`,
		`{"a":{"ok":false,"error":"x"}}`, `{"devices":[{"id":"r","status":"fault","reasons":["paper-out"],"consumables":[{"name":"paper","level":"low"},7]}]}`, `[null,[],"s",{}]`, `42`, `"`, `{"uptimeS":-9.2e18}`, "[{\"name\":\"\\u001b[2Jx\",\"status\":\"\u009b31m\"}]",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		raw := json.RawMessage(b)
		out := []string{healthSummary(raw), faultSummary(raw), compact(raw, 80), indentJSON(raw, "  ")}
		for _, l := range healthLines(raw) {
			out = append(out, l[0], l[1])
		}
		ps, _ := parsePeripherals(raw)
		for _, p := range ps {
			out = append(out, p.Name, p.Kind, p.Model, p.Status, p.why(), p.Detail)
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
