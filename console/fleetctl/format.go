package fleetctl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"
)

// table writes aligned columns; empty cells show as "-".
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	if len(header) > 0 {
		t.row(header...)
	}
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		if c == "" {
			c = "-"
		}
		cells[i] = printable(c, false)
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

// printable makes text from the hub (and so from kiosks) safe for a terminal: invalid UTF-8 and
// control characters (escape sequences, tabs, and newlines unless keepNewlines) become U+FFFD or a
// space.
func printable(s string, keepNewlines bool) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n' && keepNewlines:
			return r
		case r == '\t' || r == '\n' || r == '\r':
			return ' '
		case unicode.IsControl(r):
			return utf8.RuneError
		}
		return r
	}, strings.ToValidUTF8(s, string(utf8.RuneError)))
}

// ago says how long before now t was, in one unit: "12s ago", "5m ago", "3h ago", "2d ago", or
// "in 3d" for a time after now.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d, future := now.Sub(t), false
	if d < 0 {
		d, future = -d, true // a future time, or the hub's clock is ahead of ours
	}
	var u string
	switch {
	case d < time.Second:
		return "just now"
	case d < time.Minute:
		u = fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		u = fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		u = fmt.Sprintf("%dh", int(d/time.Hour))
	default:
		u = fmt.Sprintf("%dd", int(d/(24*time.Hour)))
	}
	if future {
		return "in " + u
	}
	return u + " ago"
}

// stamp shows a time in UTC with its age: "2026-11-25 20:14:50Z (12s ago)".
func stamp(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z") + " (" + ago(now, t) + ")"
}

// humanBytes shows a byte count in binary units: "512B", "3.5K", "19.6G".
func humanBytes(n float64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return fmt.Sprintf("%.0fB", n)
	}
	i := -1
	for n >= 1024 && i < len(units)-1 {
		n /= 1024
		i++
	}
	if n < 10 {
		return fmt.Sprintf("%.1f%c", n, units[i])
	}
	return fmt.Sprintf("%.0f%c", n, units[i])
}

// jsonObject decodes raw as a JSON object, or reports false.
func jsonObject(raw json.RawMessage) (map[string]any, bool) {
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil || m == nil {
		return nil, false
	}
	return m, true
}

func num(m map[string]any, key string) (float64, bool) {
	f, ok := m[key].(float64)
	return f, ok && !math.IsNaN(f)
}

// outboxBacklog is the outbox depth above which the health summary shows it.
const outboxBacklog = 10

// healthSummary condenses a heartbeat body (wire.Heartbeat) to "cpu 12% mem 21% disk 19.6G free
// (31%)". It tolerates missing and unknown fields; a body it cannot read at all shows as "?".
func healthSummary(raw json.RawMessage) string {
	if len(bytes.TrimSpace(raw)) == 0 || string(raw) == "null" {
		return ""
	}
	m, ok := jsonObject(raw)
	if !ok {
		return "?"
	}
	var parts []string
	if v, ok := num(m, "cpuPercent"); ok {
		parts = append(parts, fmt.Sprintf("cpu %.0f%%", v))
	}
	if used, ok := num(m, "memUsedBytes"); ok {
		if total, ok := num(m, "memTotalBytes"); ok && total > 0 {
			parts = append(parts, fmt.Sprintf("mem %.0f%%", 100*used/total))
		}
	}
	if free, ok := num(m, "diskFreeBytes"); ok {
		s := "disk " + humanBytes(free) + " free"
		if total, ok := num(m, "diskTotalBytes"); ok && total > 0 {
			s += fmt.Sprintf(" (%.0f%%)", 100*free/total)
		}
		parts = append(parts, s)
	}
	// A few records are always in flight (the heartbeat itself); a backlog is worth a look.
	if v, ok := num(m, "outboxDepth"); ok && v > outboxBacklog {
		parts = append(parts, fmt.Sprintf("outbox %.0f", v))
	}
	if len(parts) == 0 {
		return "?"
	}
	return strings.Join(parts, " ")
}

// healthLines shows every field of a heartbeat body, sorted, with byte counts and uptime made
// readable; a body that is not an object is shown as it is.
func healthLines(raw json.RawMessage) [][2]string {
	m, ok := jsonObject(raw)
	if !ok {
		return [][2]string{{"raw", compact(raw, 200)}}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([][2]string, 0, len(keys))
	for _, k := range keys {
		v := m[k]
		s := fmt.Sprint(v)
		if f, ok := v.(float64); ok {
			s = strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", f), "0"), ".")
			switch {
			case strings.HasSuffix(k, "Bytes"):
				s = humanBytes(f)
			case k == "uptimeS":
				s = (time.Duration(f) * time.Second).String()
			}
		} else if _, isStr := v.(string); !isStr {
			b, _ := json.Marshal(v)
			s = string(b)
		}
		out = append(out, [2]string{k, s})
	}
	return out
}

// peripheral is one entry of a device's peripherals body, as far as it could be read.
type peripheral struct {
	Name, Kind, Model, Status string
	Reasons                   []string // why the status is not ok: paper-out, cover-open, ...
	Detail                    string   // last error, consumables running low
}

// fault reports whether the peripheral reports a status that is not a healthy one. A missing
// status is not a fault: the body's shape is not ours to insist on.
func (p peripheral) fault() bool {
	switch strings.ToLower(p.Status) {
	case "", "ok", "ready", "idle", "online", "normal", "busy", "printing", "scanning", "in-use":
		return false
	}
	return true
}

// why is the short reason a peripheral is not ok: its reasons, else its status.
func (p peripheral) why() string {
	if len(p.Reasons) > 0 {
		return strings.Join(p.Reasons, ",")
	}
	return p.Status
}

// parsePeripherals reads a peripherals body. The agent sends {"devices": [{"id", "class",
// "status", "reasons", "consumables", "error", ...}]} (agent/devices.Peripherals); other shapes are
// tolerated: a bare list of objects, a list wrapped as "peripherals" or "items", or an object keyed
// by peripheral name whose values are objects or status strings. ok is false for anything else.
func parsePeripherals(raw json.RawMessage) (ps []peripheral, ok bool) {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return nil, false
	}
	if m, isMap := v.(map[string]any); isMap {
		for _, k := range []string{"devices", "peripherals", "items"} {
			if l, isList := m[k].([]any); isList {
				v = l
				break
			}
		}
	}
	switch x := v.(type) {
	case []any:
		for i, e := range x {
			p := entry(e)
			if p.Name == "" {
				p.Name = fmt.Sprintf("#%d", i+1)
			}
			ps = append(ps, p)
		}
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := entry(x[k])
			p.Name = k
			ps = append(ps, p)
		}
	default:
		return nil, false
	}
	return ps, true
}

func entry(v any) peripheral {
	switch x := v.(type) {
	case string:
		return peripheral{Status: x}
	case map[string]any:
		p := peripheral{
			Name:   firstString(x, "id", "name", "device", "role"),
			Kind:   firstString(x, "class", "kind", "type", "driver"),
			Model:  firstString(x, "model"),
			Detail: firstString(x, "error", "detail", "message", "reason", "fault"),
		}
		switch s := x["status"].(type) {
		case string:
			p.Status = s
		case map[string]any:
			p.Status = firstString(s, "code", "state", "status")
			if p.Detail == "" {
				p.Detail = firstString(s, "detail", "message", "error")
			}
		default:
			p.Status = firstString(x, "state", "health")
		}
		if ok, isBool := x["ok"].(bool); isBool && p.Status == "" {
			p.Status = map[bool]string{true: "ok", false: "fault"}[ok]
		}
		if p.Status == "" && p.Detail != "" && x["error"] != nil {
			p.Status = "error"
		}
		if rs, isList := x["reasons"].([]any); isList {
			for _, r := range rs {
				if s, isStr := r.(string); isStr && s != "" {
					p.Reasons = append(p.Reasons, s)
				}
			}
		}
		if cs, isList := x["consumables"].([]any); isList {
			for _, c := range cs {
				if m, isMap := c.(map[string]any); isMap {
					if lvl := firstString(m, "level"); lvl != "" && lvl != "ok" {
						p.Detail = strings.TrimPrefix(p.Detail+"; "+firstString(m, "name")+" "+lvl, "; ")
					}
				}
			}
		}
		return p
	}
	return peripheral{}
}

func firstString(m map[string]any, keys ...string) string {
	for _, k := range keys {
		if s, ok := m[k].(string); ok && s != "" {
			return s
		}
	}
	return ""
}

// faultSummary lists the peripherals that report a fault: "receipt: paper-out, idcard: no-sam".
// An unreadable body shows as "?".
func faultSummary(raw json.RawMessage) string {
	if len(bytes.TrimSpace(raw)) == 0 || string(raw) == "null" {
		return ""
	}
	ps, ok := parsePeripherals(raw)
	if !ok {
		return "?"
	}
	var f []string
	for _, p := range ps {
		if p.fault() {
			f = append(f, p.Name+": "+p.why())
		}
	}
	return strings.Join(f, ", ")
}

// compact shows a JSON value on one line, cut to at most max bytes.
func compact(raw json.RawMessage, max int) string {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		b.Reset()
		b.Write(raw)
	}
	s := b.String()
	if len(s) > max {
		s = strings.ToValidUTF8(s[:max-3], "") + "..."
	}
	return printable(s, false)
}

// indentJSON pretty-prints a JSON value with a prefix on every line.
func indentJSON(raw json.RawMessage, prefix string) string {
	var b bytes.Buffer
	if json.Indent(&b, raw, prefix, "  ") != nil {
		return prefix + printable(string(raw), false)
	}
	return prefix + printable(b.String(), true)
}
