// Package logring keeps the agent's recent log records in a bounded ring in memory, for the log
// tail the hub may ask for: a slog.Handler wrapper formats each record into one line, redacts
// anything shaped like personal data (pkg/redact), keeps it in the ring, and passes the record
// on to the handler it wraps unchanged.
package logring

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/kioskfleet/kioskfleet/pkg/redact"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// Line is one kept record. N numbers the lines from 1 in the order they were kept.
type Line struct {
	N uint64
	wire.LogLine
}

// Ring holds the last lines logged. The zero value is not usable: call New.
type Ring struct {
	level slog.Level
	size  int // lines held at most

	mu     sync.Mutex
	lines  []Line // circular once full (len == size); grown as lines come until then
	next   uint64 // N of the next line
	notify chan struct{}
}

// New returns a ring of capacity lines that keeps records of level and above.
func New(capacity int, level slog.Level) *Ring {
	return &Ring{level: level, size: max(capacity, 1), next: 1, notify: make(chan struct{}, 1)}
}

// Notify is signalled (at most one pending signal) when a line is kept.
func (r *Ring) Notify() <-chan struct{} { return r.notify }

// Next returns the N the next line kept will get.
func (r *Ring) Next() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.next
}

// Since returns up to limit lines with N > after, oldest first, and how many lines after
// after the ring no longer holds (they were overwritten).
func (r *Ring) Since(after uint64, limit int) (lines []Line, gone uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	oldest := r.next - uint64(len(r.lines)) // N of the oldest line held
	if after+1 < oldest {
		gone = oldest - after - 1
		after = oldest - 1
	}
	start := after + 1 - oldest // index in ring order
	for k := start; k < uint64(len(r.lines)) && len(lines) < limit; k++ {
		lines = append(lines, r.at(k))
	}
	return lines, gone
}

// at returns the k-th oldest line held. r.mu is held.
func (r *Ring) at(k uint64) Line {
	if len(r.lines) < r.size {
		return r.lines[k]
	}
	first := int((r.next - 1) % uint64(r.size)) // slot of the oldest once full
	return r.lines[(first+int(k))%r.size]
}

func (r *Ring) add(l wire.LogLine) {
	r.mu.Lock()
	line := Line{N: r.next, LogLine: l}
	if len(r.lines) < r.size {
		r.lines = append(r.lines, line)
	} else {
		r.lines[(r.next-1)%uint64(r.size)] = line
	}
	r.next++
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

// Handler returns a handler that keeps records in r and passes them on to next.
func (r *Ring) Handler(next slog.Handler) slog.Handler { return &handler{ring: r, next: next} }

type handler struct {
	ring   *Ring
	next   slog.Handler
	attrs  string // preformatted attributes of WithAttrs, with a leading space each
	prefix string // group prefix of later attributes, "a.b."
}

var _ slog.Handler = (*handler)(nil)

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.ring.level || h.next.Enabled(ctx, l)
}

func (h *handler) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Level >= h.ring.level {
		var b strings.Builder
		b.WriteString(rec.Message)
		b.WriteString(h.attrs)
		rec.Attrs(func(a slog.Attr) bool {
			appendAttr(&b, h.prefix, a)
			return true
		})
		ts := rec.Time
		if ts.IsZero() {
			ts = time.Now()
		}
		h.ring.add(wire.LogLine{TS: ts.UnixMilli(), Level: levelName(rec.Level), Text: clip(redact.String(b.String()), wire.MaxLogLineBytes)})
	}
	if h.next.Enabled(ctx, rec.Level) {
		return h.next.Handle(ctx, rec)
	}
	return nil
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	var b strings.Builder
	b.WriteString(h.attrs)
	for _, a := range as {
		appendAttr(&b, h.prefix, a)
	}
	return &handler{ring: h.ring, next: h.next.WithAttrs(as), attrs: b.String(), prefix: h.prefix}
}

func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &handler{ring: h.ring, next: h.next.WithGroup(name), attrs: h.attrs, prefix: h.prefix + name + "."}
}

// appendAttr writes " key=value" (slog's text form: quoted when needed), groups flattened.
func appendAttr(b *strings.Builder, prefix string, a slog.Attr) {
	v := a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if v.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, g := range v.Group() {
			appendAttr(b, p, g)
		}
		return
	}
	b.WriteByte(' ')
	b.WriteString(prefix + a.Key)
	b.WriteByte('=')
	s := v.String()
	if s == "" || strings.ContainsAny(s, " =\"\n\t") || !utf8.ValidString(s) {
		s = strconv.Quote(s)
	}
	b.WriteString(s)
}

func levelName(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "ERROR"
	case l >= slog.LevelWarn:
		return "WARN"
	case l >= slog.LevelInfo:
		return "INFO"
	}
	return "DEBUG"
}

// clip cuts s to at most n bytes on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
