package api

import (
	"encoding/json"

	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// Event is one event of the unified stream (defined once, in pkg/wire, where kiosks send it too).
type Event = wire.Event

// EventVersion is the schema version events carry.
const EventVersion = wire.EventVersion

// EventsPath takes batches of events: POST, authenticated as a channel (docs/api.md).
const EventsPath = Prefix + "/events"

// EventBatch is the body of POST /api/v1/events: at most 500 events. Each is checked on its own:
// a malformed one is refused with its fields, the others are stored.
type EventBatch struct {
	Events []json.RawMessage `json:"events"`
}

// EventsResult answers an EventBatch once every accepted event is durable. Accepted counts the
// events stored now, Duplicates those stored before (by ID); both are safe to forget.
type EventsResult struct {
	Accepted   int             `json:"accepted"`
	Duplicates int             `json:"duplicates"`
	Rejected   []EventRejected `json:"rejected,omitempty"`
}

// EventRejected is an event refused: its index in the batch, its ID if it had one, and every
// problem, one per field ("props.note: holds an ID number").
type EventRejected struct {
	Index  int      `json:"index"`
	ID     string   `json:"id,omitempty"`
	Fields []string `json:"fields"`
}
