package fleetctl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/kioskfleet/kioskfleet/console/internal/mask"
	"github.com/kioskfleet/kioskfleet/pkg/api"
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

// timeLayout shows a time to the second with its UTC offset: "2026-11-26 04:14:50 +08:00".
const timeLayout = "2006-01-02 15:04:05 -07:00"

// stamp shows a time in the local zone with its offset and its age:
// "2026-11-26 04:14:50 +08:00 (12s ago)".
func (a *app) stamp(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.In(a.env.Location).Format(timeLayout) + " (" + ago(a.env.Now(), t) + ")"
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

// outboxBacklog is the outbox depth above which the health summary shows it.
const outboxBacklog = 10

// isEmpty reports whether a body is absent.
func isEmpty(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || string(t) == "null"
}

// healthSummary condenses a heartbeat body to "cpu 12% mem 21% disk 19.6G free (31%)"; a body
// that does not decode shows as "?".
func healthSummary(raw json.RawMessage) string {
	if isEmpty(raw) {
		return ""
	}
	h, err := api.DecodeHeartbeat(raw)
	if err != nil {
		return "?"
	}
	parts := []string{fmt.Sprintf("cpu %.0f%%", h.CPUPercent)}
	if h.MemTotal > 0 {
		parts = append(parts, fmt.Sprintf("mem %.0f%%", 100*float64(h.MemUsedBytes)/float64(h.MemTotal)))
	}
	if h.DiskTotal > 0 {
		parts = append(parts, fmt.Sprintf("disk %s free (%.0f%%)", humanBytes(float64(h.DiskFree)), 100*float64(h.DiskFree)/float64(h.DiskTotal)))
	}
	// A few records are always in flight (the heartbeat itself); a backlog is worth a look.
	if h.OutboxDepth > outboxBacklog {
		parts = append(parts, fmt.Sprintf("outbox %d", h.OutboxDepth))
	}
	return strings.Join(parts, " ")
}

// healthLines shows a heartbeat body field by field, each with its unit; a body that does not
// decode is shown as it is, with why.
func healthLines(raw json.RawMessage) [][2]string {
	h, err := api.DecodeHeartbeat(raw)
	if err != nil {
		return [][2]string{{"unreadable", compact(raw, 200)}, {"why", err.Error()}}
	}
	pct := func(n, of uint64) string {
		if of == 0 {
			return humanBytes(float64(n))
		}
		return fmt.Sprintf("%s of %s (%.0f%%)", humanBytes(float64(n)), humanBytes(float64(of)), 100*float64(n)/float64(of))
	}
	return [][2]string{
		{"cpu", fmt.Sprintf("%.1f%%", h.CPUPercent)},
		{"memory used", pct(h.MemUsedBytes, h.MemTotal)},
		{"disk free", pct(h.DiskFree, h.DiskTotal)},
		{"uptime", (time.Duration(h.UptimeS) * time.Second).String()},
		{"agent", h.AgentVersion},
		{"agent memory", humanBytes(float64(h.RSSBytes))},
		{"outbox", fmt.Sprintf("%d records waiting", h.OutboxDepth)},
	}
}

// faulty reports whether a peripheral is not fine.
func faulty(p api.Peripheral) bool {
	return p.Status == api.PeripheralFault || p.Status == api.PeripheralDegraded || !p.Connected
}

// why is the short reason a peripheral is not ok: its reasons, else its status.
func why(p api.Peripheral) string {
	if len(p.Reasons) > 0 {
		return strings.Join(p.Reasons, ",")
	}
	return string(p.Status)
}

// detail is a peripheral's last error and the consumables that are not ok: "paper empty".
func detail(p api.Peripheral) string {
	var d []string
	if p.Error != "" {
		d = append(d, p.Error)
	}
	for _, c := range p.Consumables {
		if c.Level != api.ConsumableOK {
			d = append(d, c.Name+" "+c.Level)
		}
	}
	return strings.Join(d, "; ")
}

// faultSummary lists the peripherals that are not fine: "receipt0: paper-out, scanner0: disconnected".
// A body that does not decode shows as "?".
func faultSummary(raw json.RawMessage) string {
	if isEmpty(raw) {
		return ""
	}
	ps, err := api.DecodePeripherals(raw)
	if err != nil {
		return "?"
	}
	var f []string
	for _, p := range ps.Devices {
		if faulty(p) {
			f = append(f, p.ID+": "+why(p))
		}
	}
	return strings.Join(f, ", ")
}

// compact shows a JSON value on one line, with identity fields masked, cut to at most max bytes.
func compact(raw json.RawMessage, max int) string {
	b, ok := mask.JSON(raw)
	if !ok {
		b = raw
	}
	s := string(b)
	if len(s) > max {
		s = strings.ToValidUTF8(s[:max-3], "") + "..."
	}
	return printable(s, false)
}

// indentJSON pretty-prints a JSON value, with identity fields masked, with a prefix on every line.
func indentJSON(raw json.RawMessage, prefix string) string {
	m, ok := mask.JSON(raw)
	var b bytes.Buffer
	if !ok || json.Indent(&b, m, prefix, "  ") != nil {
		return prefix + printable(string(raw), false)
	}
	return prefix + printable(b.String(), true)
}
