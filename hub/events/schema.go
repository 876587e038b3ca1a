package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/gb11643"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// Origin is how events came: the channel client that sent them, the channel, and the citizen
// they speak for, as the hub authenticated them (never as the events say).
type Origin struct {
	ClientID string
	Channel  string
	// Account is the citizen's account ID, from their access token or (for a kiosk record) the
	// subject at the kiosk shell's client; empty when the sender spoke for nobody.
	Account string
	// For kiosk events: the enrolled kiosk, its site and the site's region.
	KioskID, SiteID, Region string
}

// FieldErrors is every problem of one event, one per field: "ts: ...", "props.note: ...".
type FieldErrors []string

func (f FieldErrors) Error() string { return "invalid event: " + strings.Join(f, "; ") }

func (f *FieldErrors) check(ok bool, field, format string, a ...any) {
	if !ok {
		*f = append(*f, field+": "+fmt.Sprintf(format, a...))
	}
}

var (
	idRE      = regexp.MustCompile(`^[A-Za-z0-9._:-]{8,64}$`)
	serviceRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	propKeyRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.-]{0,31}$`)
	digitsRE  = regexp.MustCompile(`^[0-9]{1,9}$`)
)

// MaxSkew is how far ahead of the hub's clock an event's time may be.
const MaxSkew = 5 * time.Minute

// maxEventBytes bounds one event's JSON.
const maxEventBytes = 8 << 10

// provinces are the first two digits of GB/T 2260 codes in use.
var provinces = map[string]bool{}

func init() {
	for _, p := range strings.Fields("11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 61 62 63 64 65 71 81 82") {
		provinces[p] = true
	}
}

// ValidRegion reports whether r is shaped like a GB/T 2260 code: six digits of a province in use.
func ValidRegion(r string) bool {
	return len(r) == 6 && strings.Trim(r, "0123456789") == "" && provinces[r[:2]]
}

// decodeStrict decodes one JSON object into v: unknown fields, trailing data and more than
// maxEventBytes refused.
func decodeStrict(raw []byte, v any) error {
	if len(raw) > maxEventBytes {
		return fmt.Errorf("over %d bytes", maxEventBytes)
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := d.Token(); err != io.EOF {
		return errors.New("trailing data after the event")
	}
	return nil
}

// check validates a decoded event against the schema and returns every problem. recv is the
// hub's clock, oldest the earliest time an event may carry (the retention).
func check(e *wire.Event, o Origin, recv time.Time, retention time.Duration) FieldErrors {
	var f FieldErrors
	f.check(e.V == wire.EventVersion, "v", "schema version %d is not known (want %d)", e.V, wire.EventVersion)
	f.check(idRE.MatchString(e.ID), "id", "want 8 to 64 of A-Z a-z 0-9 . _ : -")
	f.check(!gb11643.Contains(e.ID), "id", "holds an ID number: never send one")
	f.check(slices.Contains(store.EventTypes, e.Type), "type", "%q is not an event type (want one of %s)", clip(e.Type), strings.Join(store.EventTypes, ", "))
	ts := time.UnixMilli(e.TS)
	switch {
	case e.TS <= 0:
		f.check(false, "ts", "required: Unix milliseconds")
	case ts.After(recv.Add(MaxSkew)):
		f.check(false, "ts", "%s is more than %s ahead of the hub's clock", ts.UTC().Format(time.RFC3339), MaxSkew)
	case ts.Before(recv.Add(-retention)):
		f.check(false, "ts", "older than the retention (%s)", retention)
	}
	text := func(field, v string) {
		f.check(len(v) <= store.MaxFieldLen && utf8.ValidString(v), field, "at most %d bytes of UTF-8", store.MaxFieldLen)
		f.check(!gb11643.Contains(v), field, "holds an ID number: never send one")
	}
	text("session", e.Session)
	text("anonymousId", e.AnonymousID)
	f.check(e.Service == "" || serviceRE.MatchString(e.Service), "service", "want a catalog ID: 1 to 64 of a-z 0-9 . _ -, starting with a letter or digit")
	f.check(e.Region == "" || ValidRegion(e.Region), "region", "want a GB/T 2260 code (6 digits)")
	if o.KioskID != "" {
		f.check(e.Region == "" || e.Region == o.Region, "region", "a kiosk's region is its site's (%s)", o.Region)
	} else {
		f.check(e.Subject == "", "sub", "only a kiosk's records carry it")
	}
	f.check(len(e.Props) <= store.MaxProps, "props", "at most %d properties", store.MaxProps)
	for _, k := range slices.Sorted(maps.Keys(e.Props)) {
		v := e.Props[k]
		field := "props." + clip(k)
		if !propKeyRE.MatchString(k) {
			f.check(false, field, "key must be 1 to 32 of A-Z a-z 0-9 _ . -, starting with a letter")
			continue
		}
		f.check(len(v) <= store.MaxPropValLen && utf8.ValidString(v), field, "at most %d bytes of UTF-8", store.MaxPropValLen)
		f.check(!gb11643.Contains(v), field, "holds an ID number: never send one")
	}
	if e.Type == store.EventSearch {
		_, ok := e.Props["query"]
		f.check(ok, "props.query", "a search needs its query")
		r, ok := e.Props["results"]
		f.check(ok && digitsRE.MatchString(r), "props.results", "a search needs its result count (digits)")
	}
	return f
}

// clip shortens what a client sent before it is quoted back, and masks an ID number in it.
func clip(s string) string {
	if gb11643.Contains(s) {
		return "(redacted)"
	}
	if len(s) > 32 {
		s = s[:32] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}
