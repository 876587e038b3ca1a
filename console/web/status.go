package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/api"
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
	ps, _ := peripherals(d.Peripherals)
	for _, p := range ps {
		var l Level
		switch p.Level {
		case LevelFault:
			l = LevelFault
		case LevelDegraded:
			l = LevelDegraded
		default:
			continue
		}
		worse(l)
		codes := p.Reasons
		if len(codes) == 0 && !p.Connected {
			codes = []string{"disconnected"}
		}
		if len(codes) == 0 {
			codes = []string{"status-" + string(p.Status)}
		}
		for _, c := range codes {
			a.Reasons = append(a.Reasons, Reason{Code: c, Device: p.ID, Class: p.Class, Stale: stale, Warning: l == LevelDegraded})
		}
	}
	h := heartbeat(d.Health)
	if pct := h.DiskFreePercent(); h.DiskTotal > 0 && (pct < diskFreeMinPercent || h.DiskFree < diskFreeMinBytes) {
		worse(LevelDegraded)
		a.Reasons = append(a.Reasons, Reason{Code: "disk-low", Value: fmt.Sprintf("%.0f%%", pct), Stale: stale, Warning: true})
	}
	if pct := h.MemPercent(); pct > memMaxPercent {
		worse(LevelDegraded)
		a.Reasons = append(a.Reasons, Reason{Code: "memory-high", Value: fmt.Sprintf("%.0f%%", pct), Stale: stale, Warning: true})
	}
	if left := d.CertExpiry.Sub(now); !d.CertExpiry.IsZero() && left < certRenewWithin {
		worse(LevelDegraded)
		a.Reasons = append(a.Reasons, Reason{Code: "cert-expiring", Value: fmt.Sprint(max(0, int(left.Hours()/24))), Warning: true})
	}
	if h.OK && h.OutboxDepth > outboxBacklog {
		worse(LevelDegraded)
		a.Reasons = append(a.Reasons, Reason{Code: "outbox-backlog", Value: fmt.Sprint(h.OutboxDepth), Stale: stale, Warning: true})
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

// peripheral is one entry of a kiosk's peripherals body, as the pages show it.
type peripheral struct {
	api.Peripheral
	Level Level
	Since time.Time // when its status last changed, on the kiosk's clock
}

// peripherals decodes a peripherals body; err says why one that is there does not decode.
func peripherals(raw json.RawMessage) ([]peripheral, error) {
	if isEmpty(raw) {
		return nil, nil
	}
	body, err := api.DecodePeripherals(raw)
	if err != nil {
		return nil, err
	}
	ps := make([]peripheral, len(body.Devices))
	for i, p := range body.Devices {
		ps[i] = peripheral{Peripheral: p, Level: LevelOK}
		switch {
		case p.Status == api.PeripheralFault || !p.Connected:
			ps[i].Level = LevelFault
		case p.Status == api.PeripheralDegraded:
			ps[i].Level = LevelDegraded
		}
		if p.Since > 0 {
			ps[i].Since = time.UnixMilli(p.Since)
		}
	}
	return ps, nil
}

// health is a kiosk's latest heartbeat, as the pages show it.
type health struct {
	api.Heartbeat
	OK         bool   // there is one and it decoded
	Unreadable string // why the one there did not decode
}

func heartbeat(raw json.RawMessage) health {
	if isEmpty(raw) {
		return health{}
	}
	h, err := api.DecodeHeartbeat(raw)
	if err != nil {
		return health{Unreadable: err.Error()}
	}
	return health{Heartbeat: h, OK: true}
}

// DiskFreePercent is the share of the disk that is free; 0 when the size is not known.
func (h health) DiskFreePercent() float64 {
	if h.DiskTotal == 0 {
		return 0
	}
	return 100 * float64(h.DiskFree) / float64(h.DiskTotal)
}

// MemPercent is the share of memory in use; 0 when the total is not known.
func (h health) MemPercent() float64 {
	if h.MemTotal == 0 {
		return 0
	}
	return 100 * float64(h.MemUsedBytes) / float64(h.MemTotal)
}

func isEmpty(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || string(t) == "null"
}

// clip cuts s to at most max bytes on a rune boundary.
func clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	return strings.ToValidUTF8(s[:max-1], "") + "…"
}
