package shell

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"

	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// EventSink takes the kiosk's events of the unified event stream (wire.Event, docs/api.md
// "Events"): the agent's outbox, whose KindEvent records reach the hub's stream exactly once.
type EventSink interface {
	Track(ctx context.Context, e wire.Event) error
}

// Outbox is the agent's outbox as OutboxEvents uses it (agent/outbox).
type Outbox interface {
	Append(ctx context.Context, kind string, class wire.Class, body []byte) (uint64, error)
}

// OutboxEvents is an EventSink on the agent's outbox: each event a business record (never
// evicted), sent to the hub with the kiosk's other records.
type OutboxEvents struct{ Outbox Outbox }

var _ EventSink = OutboxEvents{}

// Track implements EventSink.
func (o OutboxEvents) Track(ctx context.Context, e wire.Event) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	_, err = o.Outbox.Append(ctx, wire.KindEvent, wire.Business, b)
	return err
}

// dotted writes a random hex ID with a dot after every eight characters: no run of digits long
// enough to look like a resident ID number, which the hub refuses in any field.
func dotted(hexID string) string {
	var b strings.Builder
	for i := 0; i < len(hexID); i += 8 {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(hexID[i:min(i+8, len(hexID))])
	}
	return b.String()
}

// track sends an event of cur's session (what the citizen did at the kiosk: no document, no
// personal data; the hub files it under her analytics pseudonym from her subject, or under the
// session for a guest). A sink that fails is logged; the citizen goes on.
func (s *Shell) track(ctx context.Context, cur *session, typ, service string, props map[string]string) {
	if s.cfg.Events == nil || cur == nil {
		return
	}
	s.mu.Lock()
	e := wire.Event{V: wire.EventVersion, ID: "k." + dotted(newID()), Type: typ, TS: s.cfg.Now().UnixMilli(),
		Session: dotted(cur.id), Service: service, Subject: cur.subject, Props: props}
	s.mu.Unlock()
	if e.Subject == "" {
		e.AnonymousID = e.Session // a guest, or a login whose subject the shell does not know
	}
	if err := s.cfg.Events.Track(context.WithoutCancel(ctx), e); err != nil {
		s.log.Warn("shell: event not recorded", "type", typ, "err", err)
	}
}

// currentSession returns the session in progress, nil if none.
func (s *Shell) currentSession() *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// idTokenSubject returns the sub claim of the ID token the hub's token endpoint answered the
// agent's login with (over TLS: OpenID Connect Core §3.1.3.7 allows relying on it), "" if none.
func idTokenSubject(idToken string) string {
	parts := strings.Split(idToken, ".")
	if len(parts) != 3 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		Sub string `json:"sub"`
	}
	_ = json.Unmarshal(b, &c)
	return c.Sub
}
