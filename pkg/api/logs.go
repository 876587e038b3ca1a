package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Bounds of a log tail (the log-tail command): how long a kiosk streams its log when asked.
const (
	LogTailDefault = 5 * time.Minute
	LogTailMax     = 15 * time.Minute
	// LogTailTTL is how long a tail request waits for an offline kiosk (the command's TTL) when
	// the caller does not say: a tail that starts an hour later helps nobody.
	LogTailTTL = 10 * time.Minute
)

// NoticeLog is the kind of Notice sent when lines of the kiosk's log tail arrived (or it ended).
const NoticeLog = "log"

// LogTailArgs are the arguments of the log-tail command: {"for": "5m"} streams for that long
// (default LogTailDefault, at most LogTailMax); {"stop": true} ends a running tail.
type LogTailArgs struct {
	For  string `json:"for,omitempty"`
	Stop bool   `json:"stop,omitempty"`
}

// ParseLogTail reads the log-tail command's arguments (empty: the default): how long to stream,
// 0 to stop.
func ParseLogTail(args json.RawMessage) (time.Duration, error) {
	var a LogTailArgs
	if len(args) > 0 && string(args) != "null" {
		if err := json.Unmarshal(args, &a); err != nil {
			return 0, fmt.Errorf(`log-tail: args must be {"for": "5m"} or {"stop": true}: %w`, err)
		}
	}
	switch {
	case a.Stop && a.For != "":
		return 0, fmt.Errorf(`log-tail: "for" and "stop" together`)
	case a.Stop:
		return 0, nil
	case a.For == "":
		return LogTailDefault, nil
	}
	d, err := time.ParseDuration(a.For)
	if err != nil || d < time.Second || d > LogTailMax {
		return 0, fmt.Errorf("log-tail: for %q: want a duration from 1s to %s", a.For, LogTailMax)
	}
	return d, nil
}

// LogLine is one line of a kiosk's log tail as the hub keeps it (redacted by the agent, and
// again by the hub).
type LogLine struct {
	N        uint64    `json:"n"`        // the hub's number of the line for this kiosk, from 1
	At       time.Time `json:"at"`       // the kiosk's clock
	Received time.Time `json:"received"` // the hub's clock
	Level    string    `json:"level"`    // DEBUG, INFO, WARN, ERROR
	Text     string    `json:"text"`
}

// DeviceLog is GET /api/v1/devices/{id}/log: the lines of the kiosk's recent log tails the hub
// still holds (a bounded number, in memory: a restart of the hub forgets them), after a line
// number.
type DeviceLog struct {
	DeviceID string    `json:"deviceId"`
	Lines    []LogLine `json:"lines"`
	Next     uint64    `json:"next"` // pass as after= to continue
	// Active: a tail runs now, until Until (the hub's clock); it ended otherwise.
	Active  bool      `json:"active"`
	Until   time.Time `json:"until,omitzero"`
	Tail    string    `json:"tail,omitempty"`    // the command that started the latest tail
	Dropped int64     `json:"dropped,omitempty"` // lines the kiosk or the hub skipped (rate or size bounds)
}

// DeviceLog returns the kiosk's log tail lines after line number after (0: all the hub holds).
func (c *Client) DeviceLog(ctx context.Context, id string, after uint64) (DeviceLog, error) {
	var out DeviceLog
	path := Prefix + "/devices/" + url.PathEscape(id) + "/log"
	if after > 0 {
		path += "?after=" + strconv.FormatUint(after, 10)
	}
	return out, c.Do(ctx, http.MethodGet, path, nil, &out)
}
