package wire

// EventVersion is the version of the unified event schema.
const EventVersion = 1

// Event is one event of the unified stream that every channel sends, in one schema: web, mobile
// and mini-program pages post it to the hub's /api/v1/events (pkg/api), and a kiosk sends it as
// the body of a KindEvent record through its outbox, so that it reaches the hub exactly once.
// The hub validates every field (hub/events), replaces who sent it by an analytics pseudonym,
// and refuses any event whose properties hold an ID number.
//
// The channel, client, kiosk and site are not in the body: the hub takes them from how the event
// came (the client's credentials or token, the kiosk's certificate).
type Event struct {
	V       int    `json:"v"`                 // EventVersion
	ID      string `json:"id"`                // unique per client, the same on every retry: 8-64 of [A-Za-z0-9._:-]
	Type    string `json:"type"`              // view, search, start, submit, complete, print, scan, rate, error, login, logout, click
	TS      int64  `json:"ts"`                // when it happened, the sender's clock, Unix milliseconds
	Session string `json:"session,omitempty"` // the sender's session (opaque, at most 64 characters)
	Service string `json:"service,omitempty"` // the service or app (catalog ID)
	Region  string `json:"region,omitempty"`  // GB/T 2260 code (6 digits); a kiosk's is its site's
	// AnonymousID identifies a browser or app install that sends events without a citizen's
	// token (opaque, at most 64 characters, random: never an account or ID number).
	AnonymousID string `json:"anonymousId,omitempty"`
	// Subject is, in a kiosk record only, the logged-in citizen's subject at the kiosk shell's
	// client (from its ID token); the hub never stores it.
	Subject string            `json:"sub,omitempty"`
	Props   map[string]string `json:"props,omitempty"` // at most 16; search: query, results
}
