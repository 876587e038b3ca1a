package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Journal is the body of GET /api/v1/devices/{id}/journal: how far the hub has verified the
// kiosk's transaction journal (a hash chain with signed checkpoints) and its security events.
type Journal struct {
	DeviceID   string          `json:"deviceId"`
	Chain      string          `json:"chain,omitempty"` // the chain's ID ("" before the first entry)
	Index      uint64          `json:"index"`           // the last entry verified
	Hash       string          `json:"hash,omitempty"`  // its hash
	Checkpoint uint64          `json:"checkpoint"`      // the last entry whose device signature verified
	Entries    int64           `json:"entries"`         // entries verified
	Intact     bool            `json:"intact"`          // no security event ever
	UpdatedAt  time.Time       `json:"updatedAt,omitzero"`
	Events     []SecurityEvent `json:"events"` // the newest (up to 100), oldest first
}

// SecurityEvent is something a person watching the fleet's security should see. Something wrong
// in a kiosk's journal: kind journal.tampered, journal.break, journal.gap, journal.reordered,
// journal.forged-checkpoint, journal.malformed or journal.restarted (a new chain after the
// kiosk's data was reset), one event each. Or refusals, counted per minute and per kiosk, staff
// member and client address: login.failed, login.unknown-account, login.throttled, login.locked,
// identity.rate-limited, mqtt.acl-denied, mqtt.connect-refused, tls.refused, tls.cert-refused,
// mqtt.session-cut, device.revoked, api.forbidden.
type SecurityEvent struct {
	ID       int64     `json:"id"`
	DeviceID string    `json:"deviceId"` // "" when no kiosk is known
	Kind     string    `json:"kind"`
	RecordID int64     `json:"recordId"` // the record that showed it
	Index    uint64    `json:"index"`    // the entry's index (0: not an entry)
	Detail   string    `json:"detail"`
	At       time.Time `json:"at"`               // hub clock; of a counted row, the first in its minute
	Staff    string    `json:"staff,omitempty"`  // the staff member it concerns (username)
	Source   string    `json:"source,omitempty"` // the client address ("*": many, past the hub's bound)
	Count    int64     `json:"count"`            // occurrences
	Last     time.Time `json:"last"`             // the last occurrence
}

// SecurityQuery selects security events (GET /api/v1/security-events).
type SecurityQuery struct {
	Device string
	Staff  string
	Kind   string    // a kind, or a family: "login"
	Since  time.Time // still happening at or after
	After  int64
	Newest bool // the newest first
	Limit  int  // 0: 100
}

// Values encodes q as query parameters.
func (q SecurityQuery) Values() url.Values {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("device", q.Device)
	set("staff", q.Staff)
	set("kind", q.Kind)
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339))
	}
	if q.After > 0 {
		v.Set("after", fmt.Sprint(q.After))
	}
	if q.Newest {
		v.Set("order", "newest")
	}
	if q.Limit > 0 {
		v.Set("limit", fmt.Sprint(q.Limit))
	}
	return v
}

// ListSecurityEvents lists the security events q selects.
func (c *Client) ListSecurityEvents(ctx context.Context, q SecurityQuery) (SecurityEvents, error) {
	var out SecurityEvents
	return out, c.Do(ctx, http.MethodGet, Prefix+"/security-events?"+q.Values().Encode(), nil, &out)
}

// SecurityEvents is the body of GET /api/v1/security-events.
type SecurityEvents struct {
	Events []SecurityEvent `json:"events"`
	Next   int64           `json:"next"` // pass as after= to continue
}

// Journal returns the verification state of a device's journal.
func (c *Client) Journal(ctx context.Context, deviceID string) (Journal, error) {
	var out Journal
	return out, c.Do(ctx, http.MethodGet, Prefix+"/devices/"+url.PathEscape(deviceID)+"/journal", nil, &out)
}

// SecurityEvents lists security events after an ID, of one device or ("") of all.
func (c *Client) SecurityEvents(ctx context.Context, deviceID string, after int64) (SecurityEvents, error) {
	v := url.Values{}
	if deviceID != "" {
		v.Set("device", deviceID)
	}
	if after > 0 {
		v.Set("after", fmt.Sprint(after))
	}
	var out SecurityEvents
	return out, c.Do(ctx, http.MethodGet, Prefix+"/security-events?"+v.Encode(), nil, &out)
}
