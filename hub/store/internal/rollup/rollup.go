// Package rollup is what the hub's SQL stores share of the event rollups (store.Events): the
// distinct-citizen Sketch, the rollup rows that newly stored events add to (Of), and the folding
// of rows read back into the answers of heat, funnel and search-miss queries, with cells under
// the suppression threshold left out. The backends only read and write the rows.
//
// Every rollup lives in one table, rollups (kind, k1, k2, k3, bucket, events, citizens):
//
//	kind     k1       k2       k3      bucket
//	hh:MASK  service  channel  region  hour (Unix hours)
//	hd:MASK  service  channel  region  day
//	fn:MASK  service  channel  stage   day
//	sm       query    -        -       day
//
// Heat and funnels are kept as cubes: MASK says which dimensions a row keeps ("scr" all three,
// "s--" the service only, "---" the total; "sc" and "s-" for funnels), the others are empty and
// counted over. An event adds to a row of every mask, so that a query reads only the rows of the
// mask of its grouping and filters, one per answer group and bucket, never the whole cube.
//
// Days are China Standard Time days (UTC+8, no daylight saving): a day's bucket starts at its
// local midnight.
package rollup

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

// Rollup kinds.
const (
	HeatHour = "hh"
	HeatDay  = "hd"
	Funnel   = "fn"
	Miss     = "sm"
)

// DayOffset is the offset of the zone whose days the daily rollups count (China Standard Time).
const DayOffset = 8 * time.Hour

// Hour returns t's hour bucket.
func Hour(t time.Time) int64 { return floorDiv(t.Unix(), 3600) }

// Day returns t's day bucket.
func Day(t time.Time) int64 { return floorDiv(t.Add(DayOffset).Unix(), 86400) }

// HourTime is the start of an hour bucket.
func HourTime(h int64) time.Time { return time.Unix(h*3600, 0).UTC() }

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// IsDayStart reports whether t is the start of a day bucket.
func IsDayStart(t time.Time) bool { return t.Add(DayOffset).Unix()%86400 == 0 }

// Key is a rollup row's key.
type Key struct {
	Kind       string
	K1, K2, K3 string
	Bucket     int64
}

// Compare orders keys (the order in which a backend locks rows).
func (k Key) Compare(o Key) int {
	return cmp.Or(strings.Compare(k.Kind, o.Kind), strings.Compare(k.K1, o.K1), strings.Compare(k.K2, o.K2),
		strings.Compare(k.K3, o.K3), cmp.Compare(k.Bucket, o.Bucket))
}

// Cell is what a rollup row holds.
type Cell struct {
	Events   int64
	Citizens Sketch
}

// Use is a pseudonym's first use of a service seen in a commit.
type Use struct {
	Pseudonym, Service string
	At                 int64 // Unix nanoseconds
}

// Delta is what a group of newly stored events adds to the rollups.
type Delta struct {
	Cells map[Key]*Cell
	Uses  []Use
}

// Keys returns the delta's keys in Compare order.
func (d Delta) Keys() []Key {
	return slices.SortedFunc(maps.Keys(d.Cells), Key.Compare)
}

// Of computes what evs, each stored for the first time, add to the rollups.
func Of(evs []store.Event) Delta {
	d := Delta{Cells: map[Key]*Cell{}}
	add := func(k Key, citizen uint64) {
		c := d.Cells[k]
		if c == nil {
			c = &Cell{}
			d.Cells[k] = c
		}
		c.Events++
		if citizen != 0 {
			c.Citizens.Add(citizen)
		}
	}
	seen := map[[2]string]bool{}
	for _, e := range evs {
		var h uint64
		if e.Pseudonym != "" {
			h = Hash(e.Pseudonym)
		}
		day := Day(e.DeviceTS)
		if e.Service != "" {
			hour := Hour(e.DeviceTS)
			for i, m := range heatMasks {
				k1, k2, k3 := m.pick(e.Service, e.Channel, e.Region)
				add(Key{Kind: hourKinds[i], K1: k1, K2: k2, K3: k3, Bucket: hour}, h)
				add(Key{Kind: dayKinds[i], K1: k1, K2: k2, K3: k3, Bucket: day}, h)
			}
			if slices.Contains(store.FunnelStages, e.Type) {
				add(Key{Kind: funnelSC, K1: e.Service, K2: e.Channel, K3: e.Type, Bucket: day}, h)
				add(Key{Kind: funnelS, K1: e.Service, K3: e.Type, Bucket: day}, h)
			}
			k := [2]string{e.Pseudonym, e.Service}
			if e.Pseudonym != "" && slices.Contains(store.UseTypes, e.Type) && !seen[k] {
				seen[k] = true
				d.Uses = append(d.Uses, Use{Pseudonym: e.Pseudonym, Service: e.Service, At: e.DeviceTS.UnixNano()})
			}
		}
		if e.Type == store.EventSearch && e.Props["results"] == "0" {
			if q := NormalizeQuery(e.Props["query"]); q != "" {
				add(Key{Kind: Miss, K1: q, Bucket: day}, h)
			}
		}
	}
	return d
}

// mask says which of service, channel and region a cube row keeps: "scr", "s-r", "---", ...
type mask string

// heatMasks are every mask of the heat cube, and hourKinds and dayKinds their rows' kinds.
var (
	heatMasks           = []mask{"scr", "sc-", "s-r", "-cr", "s--", "-c-", "--r", "---"}
	hourKinds, dayKinds []string
	funnelSC, funnelS   = Funnel + ":sc", Funnel + ":s-"
)

func init() {
	for _, m := range heatMasks {
		hourKinds = append(hourKinds, HeatHour+":"+string(m))
		dayKinds = append(dayKinds, HeatDay+":"+string(m))
	}
}

// pick returns the kept dimensions, the others empty.
func (m mask) pick(service, channel, region string) (string, string, string) {
	keep := func(i int, v string) string {
		if m[i] == '-' {
			return ""
		}
		return v
	}
	return keep(0, service), keep(1, channel), keep(2, region)
}

// heatMask is the mask of a heat query: the dimensions it groups by or filters on.
func heatMask(q store.HeatQuery) mask {
	m := []byte("---")
	if slices.Contains(q.By, store.ByService) || q.Service != "" {
		m[0] = 's'
	}
	if slices.Contains(q.By, store.ByChannel) || q.Channel != "" {
		m[1] = 'c'
	}
	if slices.Contains(q.By, store.ByRegion) || q.Region != "" {
		m[2] = 'r'
	}
	return mask(m)
}

// NormalizeQuery lowercases a search query, collapses its spaces and keeps at most
// store.MaxSearchQuery runes.
func NormalizeQuery(q string) string {
	q = strings.Join(strings.Fields(strings.ToLower(q)), " ")
	if utf8.RuneCountInString(q) > store.MaxSearchQuery {
		q = string([]rune(q)[:store.MaxSearchQuery])
	}
	return q
}

// Scan is the rows a query reads: kind, bucket in [From, To), k1 and k2 equal to K1 and K2
// unless empty, k3 starting with K3Prefix.
type Scan struct {
	Kind     string
	From, To int64
	K1, K2   string
	K3Prefix string
}

// SQL returns the query of a scan's rows (k1, k2, k3, bucket, events, citizens) and its
// arguments, in a dialect's placeholders (ph returns the n-th, from 1). Only the filters given
// are in it, so that the primary key (kind, k1, ...) serves a query of one service.
func (sc Scan) SQL(ph func(n int) string) (string, []any) {
	args := []any{sc.Kind, sc.From, sc.To}
	q := `SELECT k1, k2, k3, bucket, events, citizens FROM rollups WHERE kind = ` + ph(1) + ` AND bucket >= ` + ph(2) +
		` AND bucket < ` + ph(3)
	for _, f := range []struct{ col, v string }{{"k1", sc.K1}, {"k2", sc.K2}} {
		if f.v != "" {
			args = append(args, f.v)
			q += ` AND ` + f.col + ` = ` + ph(len(args))
		}
	}
	if sc.K3Prefix != "" {
		args = append(args, sc.K3Prefix+"%")
		q += ` AND k3 LIKE ` + ph(len(args))
	}
	return q, args
}

// Row is a rollup row read back.
type Row struct {
	Key
	Events   int64
	Citizens []byte
}

// HeatScan is what a heat query reads: the daily rollup when its range is whole days and it
// does not group by hour, else the hourly one.
func HeatScan(q store.HeatQuery) Scan {
	m := string(heatMask(q))
	s := Scan{Kind: HeatHour + ":" + string(m), From: Hour(q.From), To: Hour(q.To.Add(time.Hour - 1)), K1: q.Service, K2: q.Channel, K3Prefix: q.Region}
	if !slices.Contains(q.By, store.ByHour) && IsDayStart(q.From) && IsDayStart(q.To) {
		s.Kind, s.From, s.To = HeatDay+":"+m, Day(q.From), Day(q.To)
	}
	return s
}

// FunnelScan is what a funnel query reads.
func FunnelScan(q store.FunnelQuery) Scan {
	kind := Funnel + ":s-"
	if q.Channel != "" {
		kind = Funnel + ":sc"
	}
	return Scan{Kind: kind, From: Day(q.From), To: Day(q.To.Add(24*time.Hour - 1)), K1: q.Service, K2: q.Channel}
}

// MissScan is what a search-miss query reads.
func MissScan(q store.MissQuery) Scan {
	return Scan{Kind: Miss, From: Day(q.From), To: Day(q.To.Add(24*time.Hour - 1))}
}

// group is one group of a query's answer.
type group struct {
	events   int64
	citizens Sketch
}

// Folder folds the rows of a query into its groups.
type Folder[K comparable] struct {
	key    func(Row) K
	groups map[K]*group
	err    error
}

func newFolder[K comparable](key func(Row) K) *Folder[K] {
	return &Folder[K]{key: key, groups: map[K]*group{}}
}

// Add folds a row in; a corrupt sketch is remembered and reported by Err. r.Citizens is only
// read while Add runs (a backend may pass bytes it reuses).
func (f *Folder[K]) Add(r Row) {
	k := f.key(r)
	g := f.groups[k]
	if g == nil {
		g = &group{}
		f.groups[k] = g
	}
	if err := g.citizens.MergeEncoded(r.Citizens); err != nil {
		f.err = err
		return
	}
	g.events += r.Events
}

// Err is the first corrupt sketch met.
func (f *Folder[K]) Err() error { return f.err }

// each calls fn for every group of at least min citizens.
func (f *Folder[K]) each(least int, fn func(K, *group)) {
	for k, g := range f.groups {
		if g.citizens.Count() >= int64(least) {
			fn(k, g)
		}
	}
}

// HeatFolder folds heat rows into the groups of q.
func HeatFolder(q store.HeatQuery) *Folder[store.HeatCell] {
	by := func(d string) bool { return slices.Contains(q.By, d) }
	return newFolder(func(r Row) store.HeatCell {
		var c store.HeatCell
		if by(store.ByService) {
			c.Service = r.K1
		}
		if by(store.ByChannel) {
			c.Channel = r.K2
		}
		if by(store.ByRegion) {
			c.Region = r.K3
		}
		if by(store.ByHour) {
			c.Hour = HourTime(r.Bucket)
		}
		return c
	})
}

// HeatCells returns the groups of at least min citizens, by service, channel, region, hour.
func HeatCells(f *Folder[store.HeatCell], least int) []store.HeatCell {
	out := []store.HeatCell{}
	f.each(least, func(k store.HeatCell, g *group) {
		k.Events, k.Citizens = g.events, g.citizens.Count()
		out = append(out, k)
	})
	slices.SortFunc(out, func(a, b store.HeatCell) int {
		return cmp.Or(strings.Compare(a.Service, b.Service), strings.Compare(a.Channel, b.Channel),
			strings.Compare(a.Region, b.Region), a.Hour.Compare(b.Hour))
	})
	return out
}

// FunnelFolder folds funnel rows by service and stage.
func FunnelFolder() *Folder[[2]string] {
	return newFolder(func(r Row) [2]string { return [2]string{r.K1, r.K3} })
}

// FunnelSteps returns the steps of at least min citizens, by service and stage order.
func FunnelSteps(f *Folder[[2]string], least int) []store.FunnelStep {
	out := []store.FunnelStep{}
	f.each(least, func(k [2]string, g *group) {
		out = append(out, store.FunnelStep{Service: k[0], Stage: k[1], Citizens: g.citizens.Count()})
	})
	slices.SortFunc(out, func(a, b store.FunnelStep) int {
		return cmp.Or(strings.Compare(a.Service, b.Service),
			cmp.Compare(slices.Index(store.FunnelStages, a.Stage), slices.Index(store.FunnelStages, b.Stage)))
	})
	return out
}

// MissFolder folds search-miss rows by query.
func MissFolder() *Folder[string] { return newFolder(func(r Row) string { return r.K1 }) }

// Misses returns the queries of at least min citizens, most citizens first, at most limit.
func Misses(f *Folder[string], least, limit int) []store.SearchMiss {
	out := []store.SearchMiss{}
	f.each(least, func(q string, g *group) {
		out = append(out, store.SearchMiss{Query: q, Searches: g.events, Citizens: g.citizens.Count()})
	})
	slices.SortFunc(out, func(a, b store.SearchMiss) int {
		return cmp.Or(cmp.Compare(b.Citizens, a.Citizens), cmp.Compare(b.Searches, a.Searches), strings.Compare(a.Query, b.Query))
	})
	if limit <= 0 {
		limit = 100
	}
	return out[:min(len(out), limit)]
}

// CoUsePairs returns the (from, to) pairs that a pseudonym's new uses add: every pair, both ways,
// among old and new services but those among old ones only.
func CoUsePairs(old, added []string) [][2]string {
	var out [][2]string
	for i, a := range added {
		for _, b := range old {
			out = append(out, [2]string{a, b}, [2]string{b, a})
		}
		for _, b := range added[i+1:] {
			out = append(out, [2]string{a, b}, [2]string{b, a})
		}
	}
	return out
}

// ScanFunc reads the rows of a Scan from a backend, calling add for each. A row's Citizens bytes
// need only stay valid until add returns.
type ScanFunc func(ctx context.Context, sc Scan, add func(Row)) error

// QueryHeat answers a heat query with a backend's scan.
func QueryHeat(ctx context.Context, scan ScanFunc, q store.HeatQuery) ([]store.HeatCell, error) {
	f := HeatFolder(q)
	if err := scan(ctx, HeatScan(q), f.Add); err != nil {
		return nil, err
	}
	return HeatCells(f, q.MinCitizens), f.Err()
}

// QueryFunnel answers a funnel query with a backend's scan.
func QueryFunnel(ctx context.Context, scan ScanFunc, q store.FunnelQuery) ([]store.FunnelStep, error) {
	f := FunnelFolder()
	if err := scan(ctx, FunnelScan(q), f.Add); err != nil {
		return nil, err
	}
	return FunnelSteps(f, q.MinCitizens), f.Err()
}

// QueryMisses answers a search-miss query with a backend's scan.
func QueryMisses(ctx context.Context, scan ScanFunc, q store.MissQuery) ([]store.SearchMiss, error) {
	f := MissFolder()
	if err := scan(ctx, MissScan(q), f.Add); err != nil {
		return nil, err
	}
	return Misses(f, q.MinCitizens, q.Limit), f.Err()
}
