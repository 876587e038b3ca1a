package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/fleet"
)

// Level is how badly a kiosk needs attention. Higher is worse, except LevelRevoked, which sorts
// last: a revoked kiosk is out of service on purpose.
type Level int

// Levels, from fine to worst.
const (
	LevelOK       Level = iota
	LevelDegraded       // works, needs attention soon: paper low, disk nearly full, outbox backlog
	LevelFault          // online, but a peripheral cannot serve citizens
	LevelOffline        // no MQTT session
	LevelRevoked        // out of the fleet
)

func (l Level) String() string {
	return [...]string{"ok", "degraded", "fault", "offline", "revoked"}[l]
}

// rank orders levels for "problems first": offline, fault, degraded, ok, revoked.
func (l Level) rank() int { return [...]int{3, 2, 1, 0, 4}[l] }

// Problem reports whether the kiosk needs attention.
func (l Level) Problem() bool { return l >= LevelDegraded && l <= LevelOffline }

// Thresholds above which health values become a reason.
const (
	diskFreeMinPercent = 10                  // disk nearly full below this share free
	diskFreeMinBytes   = 1 << 30             // ... or below 1 GiB free
	outboxBacklog      = 100                 // records waiting to sync
	memMaxPercent      = 95                  // memory nearly exhausted
	certRenewWithin    = 30 * 24 * time.Hour // a certificate this close to expiry needs enrolling again
)

// Reason is one thing wrong with a kiosk, in codes; the page puts it in words.
type Reason struct {
	Code    string    // offline, revoked, disk-low, outbox-backlog, memory-high, or a peripheral reason (paper-out, ...)
	Device  string    // the peripheral's ID, when a peripheral is at fault
	Class   string    // the peripheral's class (receipt-printer, ...)
	Value   string    // a figure that goes with the code: "7%", "312"
	Since   time.Time // when the kiosk went offline
	Stale   bool      // last known before the kiosk went offline
	Warning bool      // degraded rather than a fault
}

// Assessment is a kiosk's level and why.
type Assessment struct {
	Level   Level
	Reasons []Reason
}

// assess decides how a kiosk is doing at now from what the hub reports about it.
func assess(d fleet.Device, now time.Time) Assessment {
	var a Assessment
	switch {
	case d.Revoked:
		return Assessment{Level: LevelRevoked, Reasons: []Reason{{Code: "revoked"}}}
	case !d.Online:
		a.Level = LevelOffline
		a.Reasons = append(a.Reasons, Reason{Code: "offline", Since: d.PresenceAt})
	}
	stale := !d.Online
	worse := func(l Level) {
		if !stale && l > a.Level {
			a.Level = l
		}
	}
	ps, _ := parsePeripherals(d.Peripherals)
	for _, p := range ps {
		var l Level
		switch p.level() {
		case LevelFault:
			l = LevelFault
		case LevelDegraded:
			l = LevelDegraded
		default:
			continue
		}
		worse(l)
		codes := p.Reasons
		if len(codes) == 0 {
			codes = []string{"status-" + p.Status}
		}
		for _, c := range codes {
			a.Reasons = append(a.Reasons, Reason{Code: c, Device: p.ID, Class: p.Class, Stale: stale, Warning: l == LevelDegraded})
		}
	}
	h := parseHealth(d.Health)
	if pct, ok := h.diskFreePercent(); ok && (pct < diskFreeMinPercent || h.DiskFree.V < diskFreeMinBytes) {
		worse(LevelDegraded)
		a.Reasons = append(a.Reasons, Reason{Code: "disk-low", Value: fmt.Sprintf("%.0f%%", pct), Stale: stale, Warning: true})
	}
	if pct, ok := h.memPercent(); ok && pct > memMaxPercent {
		worse(LevelDegraded)
		a.Reasons = append(a.Reasons, Reason{Code: "memory-high", Value: fmt.Sprintf("%.0f%%", pct), Stale: stale, Warning: true})
	}
	if left := d.CertExpiry.Sub(now); !d.CertExpiry.IsZero() && left < certRenewWithin {
		worse(LevelDegraded)
		a.Reasons = append(a.Reasons, Reason{Code: "cert-expiring", Value: fmt.Sprint(max(0, int(left.Hours()/24))), Warning: true})
	}
	if h.Outbox.OK && h.Outbox.V > outboxBacklog {
		worse(LevelDegraded)
		a.Reasons = append(a.Reasons, Reason{Code: "outbox-backlog", Value: fmt.Sprintf("%.0f", h.Outbox.V), Stale: stale, Warning: true})
	}
	return a
}

// row is a kiosk with its assessment, as listed on the overview and devices pages.
type row struct {
	fleet.Device
	Assessment
	SiteName string
}

// sortProblemsFirst orders rows offline, fault, degraded, ok, revoked; then by site and ID.
func sortProblemsFirst(rows []row) {
	sort.SliceStable(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if ra, rb := a.Level.rank(), b.Level.rank(); ra != rb {
			return ra < rb
		}
		if a.SiteID != b.SiteID {
			return a.SiteID < b.SiteID
		}
		return a.ID < b.ID
	})
}

// count is a tally of kiosks by level for one site or region.
type count struct {
	Key, Name                                        string
	Total, Online, Offline, Fault, Degraded, Revoked int
}

func (c *count) add(r row) {
	c.Total++
	switch r.Level {
	case LevelRevoked:
		c.Revoked++
		return
	case LevelOffline:
		c.Offline++
		return
	case LevelFault:
		c.Fault++
	case LevelDegraded:
		c.Degraded++
	}
	c.Online++
}

// Problems reports whether any kiosk counted needs attention.
func (c count) Problems() bool { return c.Offline+c.Fault+c.Degraded > 0 }

// tally counts rows by key, sorted by key, plus a total.
func tally(rows []row, key func(row) (string, string)) (by []count, total count) {
	m := map[string]*count{}
	for _, r := range rows {
		k, name := key(r)
		c := m[k]
		if c == nil {
			c = &count{Key: k, Name: name}
			m[k] = c
		}
		c.add(r)
		total.add(r)
	}
	for _, c := range m {
		by = append(by, *c)
	}
	slices.SortFunc(by, func(a, b count) int { return strings.Compare(a.Key, b.Key) })
	return by, total
}

// peripheral is one entry of a kiosk's peripherals body (agent/devices.DeviceStatus), as far as
// it could be read.
type peripheral struct {
	ID, Class, Model, Manufacturer, Status, Error string
	Connected                                     *bool
	Reasons                                       []string
	Consumables                                   []consumable
	Since                                         time.Time // kiosk clock
}

type consumable struct{ Name, Level string }

// level maps the agent's status (ok, degraded, fault, unknown) and a few other spellings.
func (p peripheral) level() Level {
	switch strings.ToLower(p.Status) {
	case "fault", "error", "failed", "offline":
		return LevelFault
	case "degraded", "warning":
		return LevelDegraded
	}
	if p.Connected != nil && !*p.Connected {
		return LevelFault
	}
	return LevelOK
}

// Level is exported to the templates.
func (p peripheral) Level() Level { return p.level() }

// parsePeripherals reads a peripherals body. The agent sends {"devices": [{"id", "class",
// "connected", "status", "reasons", "consumables", "since", "error", ...}]}; a bare list, or an
// object keyed by peripheral ID, is read too. Unknown fields are ignored; ok is false when the
// body is present but has none of these shapes.
func parsePeripherals(raw json.RawMessage) (ps []peripheral, ok bool) {
	if isEmpty(raw) {
		return nil, true
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return nil, false
	}
	if m, isMap := v.(map[string]any); isMap {
		if l, isList := m["devices"].([]any); isList {
			v = l
		}
	}
	switch x := v.(type) {
	case []any:
		for i, e := range x {
			p := readPeripheral(e)
			if p.ID == "" {
				p.ID = fmt.Sprintf("#%d", i+1)
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
			p := readPeripheral(x[k])
			p.ID = k
			ps = append(ps, p)
		}
	default:
		return nil, false
	}
	return ps, true
}

func readPeripheral(v any) peripheral {
	switch x := v.(type) {
	case string:
		return peripheral{Status: x}
	case map[string]any:
		p := peripheral{
			ID:           str(x, "id"),
			Class:        str(x, "class"),
			Model:        str(x, "model"),
			Manufacturer: str(x, "manufacturer"),
			Status:       str(x, "status"),
			Error:        str(x, "error"),
		}
		if c, ok := x["connected"].(bool); ok {
			p.Connected = &c
		}
		if rs, ok := x["reasons"].([]any); ok {
			for _, r := range rs {
				if s, ok := r.(string); ok && s != "" {
					p.Reasons = append(p.Reasons, s)
				}
			}
		}
		if cs, ok := x["consumables"].([]any); ok {
			for _, c := range cs {
				if m, ok := c.(map[string]any); ok {
					p.Consumables = append(p.Consumables, consumable{Name: str(m, "name"), Level: str(m, "level")})
				}
			}
		}
		if ms, ok := x["since"].(float64); ok && ms > 0 && ms < 1e15 {
			p.Since = time.UnixMilli(int64(ms))
		}
		return p
	}
	return peripheral{Status: "unknown"}
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

// num is a number read from a heartbeat body, with whether it was there.
type num struct {
	V  float64
	OK bool
}

// health is a heartbeat body (wire.Heartbeat) as far as it could be read; Other holds fields it
// does not know, shown as they are.
type health struct {
	CPU, MemUsed, MemTotal, DiskFree, DiskTotal, Outbox, Uptime, RSS num
	AgentVersion                                                     string
	Other                                                            [][2]string
	Unreadable                                                       bool
}

func parseHealth(raw json.RawMessage) health {
	var h health
	if isEmpty(raw) {
		return h
	}
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil || m == nil {
		h.Unreadable = true
		return h
	}
	fields := map[string]*num{
		"cpuPercent": &h.CPU, "memUsedBytes": &h.MemUsed, "memTotalBytes": &h.MemTotal,
		"diskFreeBytes": &h.DiskFree, "diskTotalBytes": &h.DiskTotal, "outboxDepth": &h.Outbox,
		"uptimeS": &h.Uptime, "rssBytes": &h.RSS,
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := m[k]
		if n, known := fields[k]; known {
			if f, isNum := v.(float64); isNum && !math.IsNaN(f) && f >= 0 {
				*n = num{f, true}
				continue
			}
		}
		if k == "agentVersion" {
			if s, isStr := v.(string); isStr {
				h.AgentVersion = s
				continue
			}
		}
		b, _ := json.Marshal(v)
		h.Other = append(h.Other, [2]string{k, clip(string(b), 120)})
	}
	return h
}

func (h health) diskFreePercent() (float64, bool) {
	if !h.DiskFree.OK || !h.DiskTotal.OK || h.DiskTotal.V <= 0 {
		return 0, false
	}
	return 100 * h.DiskFree.V / h.DiskTotal.V, true
}

func (h health) memPercent() (float64, bool) {
	if !h.MemUsed.OK || !h.MemTotal.OK || h.MemTotal.V <= 0 {
		return 0, false
	}
	return 100 * h.MemUsed.V / h.MemTotal.V, true
}

func isEmpty(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || string(t) == "null"
}

// clip cuts s to at most max bytes on a rune boundary, with ID numbers masked.
func clip(s string, max int) string {
	s = maskIDNumbers(s)
	if len(s) <= max {
		return s
	}
	return strings.ToValidUTF8(s[:max-1], "") + "…"
}
