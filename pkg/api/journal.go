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

// SecurityEvent is something wrong in a kiosk's journal: kind journal.tampered, journal.break,
// journal.gap, journal.reordered, journal.forged-checkpoint, journal.malformed or
// journal.restarted (a new chain after the kiosk's data was reset).
type SecurityEvent struct {
	ID       int64     `json:"id"`
	DeviceID string    `json:"deviceId"`
	Kind     string    `json:"kind"`
	RecordID int64     `json:"recordId"` // the record that showed it
	Index    uint64    `json:"index"`    // the entry's index (0: not an entry)
	Detail   string    `json:"detail"`
	At       time.Time `json:"at"` // hub clock
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
