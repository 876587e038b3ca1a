// Package localapitest is a client of the local device API for tests: it dials as an app from a
// given origin, sends commands, and checks that every message it receives has the API's shape
// (Conform), failing the test otherwise.
package localapitest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Header is a received message's header.
type Header struct {
	Name             string `json:"name"`
	RequestID        int64  `json:"requestId"`
	Type             string `json:"type"`
	Version          string `json:"version"`
	Status           string `json:"status"`
	CompletionCode   string `json:"completionCode"`
	ErrorDescription string `json:"errorDescription"`
}

// Msg is a received message: its header, its payload and the bytes as they came.
type Msg struct {
	Header  Header
	Payload json.RawMessage
	Raw     []byte
}

// Decode decodes the payload into v, failing the test if it does not fit.
func (m Msg) Decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(m.Payload, v); err != nil {
		t.Fatalf("localapitest: payload of %s: %v\n%s", m.Header.Name, err, m.Raw)
	}
}

// Client is one connection to the API.
type Client struct {
	t    testing.TB
	Conn *websocket.Conn

	mu     sync.Mutex
	nextID int64
	queue  []Msg    // received but not yet taken
	seen   [][]byte // everything received
}

// Received returns every message received so far, as it came.
func (c *Client) Received() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.seen)
}

// Dial connects to the API at url (ws://host:port/path) as a page from origin ("" sends no
// Origin header). It returns the HTTP response of a refused handshake with a nil Client.
func Dial(t testing.TB, url, origin string) (*Client, *http.Response, error) {
	t.Helper()
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	conn, resp, err := websocket.DefaultDialer.Dial(url, h)
	if err != nil {
		return nil, resp, err
	}
	c := &Client{t: t, Conn: conn}
	t.Cleanup(func() { conn.Close() })
	return c, resp, nil
}

// MustDial is Dial that fails the test when the connection is refused.
func MustDial(t testing.TB, url, origin string) *Client {
	t.Helper()
	c, resp, err := Dial(t, url, origin)
	if err != nil {
		status := ""
		if resp != nil {
			status = resp.Status
		}
		t.Fatalf("localapitest: dial %s as %s: %v %s", url, origin, err, status)
	}
	return c
}

// Send sends a command with the next request ID and returns that ID. timeout is in the header
// when not 0.
func (c *Client) Send(name string, payload any, timeout time.Duration) int64 {
	c.t.Helper()
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	c.mu.Unlock()
	h := map[string]any{"name": name, "requestId": id, "type": "command", "version": "1.0"}
	if timeout > 0 {
		h["timeout"] = timeout.Milliseconds()
	}
	if payload == nil {
		payload = struct{}{}
	}
	b, err := json.Marshal(map[string]any{"header": h, "payload": payload})
	if err != nil {
		c.t.Fatalf("localapitest: %v", err)
	}
	c.SendRaw(b)
	return id
}

// SendRaw sends b as one text message.
func (c *Client) SendRaw(b []byte) {
	c.t.Helper()
	if err := c.Conn.WriteMessage(websocket.TextMessage, b); err != nil {
		c.t.Fatalf("localapitest: send: %v", err)
	}
}

// read reads one message within d and checks its shape.
func (c *Client) read(d time.Duration) (Msg, error) {
	c.Conn.SetReadDeadline(time.Now().Add(d))
	_, b, err := c.Conn.ReadMessage()
	if err != nil {
		return Msg{}, err
	}
	c.mu.Lock()
	c.seen = append(c.seen, b)
	c.mu.Unlock()
	m, err := Conform(b)
	if err != nil {
		c.t.Errorf("localapitest: %v", err)
	}
	return m, nil
}

// Next returns the next message that satisfies match (earlier ones that do not are kept for
// later calls), failing the test after d.
func (c *Client) Next(d time.Duration, match func(Msg) bool) Msg {
	c.t.Helper()
	m, err := c.TryNext(d, match)
	if err != nil {
		c.t.Fatalf("localapitest: no matching message within %v: %v; unmatched: %s", d, err, c.unmatched())
	}
	return m
}

// TryNext is Next that returns the read error (a timeout, the connection closed) instead of
// failing the test. After a timeout the connection cannot be read any more (gorilla/websocket):
// use it only to wait for the end of a connection.
func (c *Client) TryNext(d time.Duration, match func(Msg) bool) (Msg, error) {
	c.mu.Lock()
	for i, m := range c.queue {
		if match(m) {
			c.queue = slices.Delete(c.queue, i, i+1)
			c.mu.Unlock()
			return m, nil
		}
	}
	c.mu.Unlock()
	deadline := time.Now().Add(d)
	for {
		m, err := c.read(time.Until(deadline))
		if err != nil {
			return Msg{}, err
		}
		if match(m) {
			return m, nil
		}
		c.mu.Lock()
		c.queue = append(c.queue, m)
		c.mu.Unlock()
	}
}

func (c *Client) unmatched() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var s []string
	for _, m := range c.queue {
		s = append(s, string(m.Raw))
	}
	return strings.Join(s, "\n")
}

// Of matches the messages of request id of type typ.
func Of(id int64, typ string) func(Msg) bool {
	return func(m Msg) bool { return m.Header.RequestID == id && m.Header.Type == typ }
}

// Named matches messages named name of type typ.
func Named(name, typ string) func(Msg) bool {
	return func(m Msg) bool { return m.Header.Name == name && m.Header.Type == typ }
}

// Result is what a command got: its acknowledge, its events in order and its completion.
type Result struct {
	Ack        Msg
	Events     []Msg
	Completion Msg
}

// Code is the completion's completionCode.
func (r Result) Code() string { return r.Completion.Header.CompletionCode }

// Await collects the messages of request id up to its completion (within d), and checks their
// order: the acknowledge first, then events, then the completion.
func (c *Client) Await(id int64, d time.Duration) Result {
	c.t.Helper()
	var r Result
	r.Ack = c.Next(d, func(m Msg) bool { return m.Header.RequestID == id })
	if r.Ack.Header.Type != "acknowledge" {
		c.t.Fatalf("localapitest: request %d: first message is %s, want the acknowledge: %s", id, r.Ack.Header.Type, r.Ack.Raw)
	}
	if r.Ack.Header.Status != "" {
		return r // refused: nothing follows
	}
	for {
		m := c.Next(d, func(m Msg) bool { return m.Header.RequestID == id })
		switch m.Header.Type {
		case "event":
			r.Events = append(r.Events, m)
		case "completion":
			r.Completion = m
			return r
		default:
			c.t.Fatalf("localapitest: request %d: a %s after the acknowledge: %s", id, m.Header.Type, m.Raw)
		}
	}
}

// Do sends a command and awaits its result.
func (c *Client) Do(name string, payload any, timeout time.Duration) Result {
	c.t.Helper()
	return c.Await(c.Send(name, payload, timeout), timeout+10*time.Second)
}

var (
	namePattern = regexp.MustCompile(`^[A-Z][A-Za-z0-9]*\.[A-Z][A-Za-z0-9]*$`)
	codes       = []string{"success", "commandErrorCode", "canceled", "timeOut", "deviceNotReady", "hardwareError",
		"internalError", "invalidCommand", "invalidRequestID", "timeoutNotSupported", "unsupportedCommand", "invalidData",
		"userError", "unsupportedData", "fraudAttempt", "sequenceError", "auxiliaryDeviceError"}
	statuses = []string{"invalidMessage", "invalidRequestID", "tooManyRequests"}
)

// Conform checks that b is a message as the API defines it (XFS4IoT API, Message Header and
// Message Types) and returns it decoded.
func Conform(b []byte) (Msg, error) {
	var top map[string]json.RawMessage
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&top); err != nil {
		return Msg{}, fmt.Errorf("not a JSON object: %v: %s", err, b)
	}
	if len(top) != 2 || top["header"] == nil || top["payload"] == nil {
		return Msg{}, fmt.Errorf("want exactly header and payload: %s", b)
	}
	m := Msg{Payload: top["payload"], Raw: b}
	if bytes.TrimSpace(m.Payload)[0] != '{' {
		return m, fmt.Errorf("payload is not an object: %s", b)
	}
	var h map[string]any
	if err := json.Unmarshal(top["header"], &h); err != nil {
		return m, fmt.Errorf("header: %v: %s", err, b)
	}
	if err := json.Unmarshal(top["header"], &m.Header); err != nil {
		return m, fmt.Errorf("header: %v: %s", err, b)
	}
	hd := m.Header
	allowed := map[string][]string{
		"acknowledge": {"name", "requestId", "type", "version", "status", "errorDescription"},
		"event":       {"name", "requestId", "type", "version"},
		"completion":  {"name", "requestId", "type", "version", "completionCode", "errorDescription"},
		"unsolicited": {"name", "type", "version"},
	}[hd.Type]
	var problems []string
	if allowed == nil {
		problems = append(problems, fmt.Sprintf("type %q", hd.Type))
	}
	for k := range h {
		if !slices.Contains(allowed, k) {
			problems = append(problems, "header field "+k+" in a "+hd.Type)
		}
	}
	// A reply to a message whose name could not be read has none (an acknowledge, and an
	// invalidData completion or nothing more); one whose requestId could not be read has neither.
	refused := hd.Type == "acknowledge" ||
		hd.Type == "completion" && slices.Contains([]string{"invalidData", "unsupportedData"}, hd.CompletionCode)
	refusedUnread := hd.Type == "acknowledge" && hd.Status != "" && hd.RequestID == 0
	if !namePattern.MatchString(hd.Name) && !(refused && hd.Name == "") {
		problems = append(problems, fmt.Sprintf("name %q", hd.Name))
	}
	if hd.Version != "1.0" {
		problems = append(problems, fmt.Sprintf("version %q", hd.Version))
	}
	if hd.Type != "unsolicited" && hd.RequestID <= 0 && !refusedUnread {
		problems = append(problems, "no requestId")
	}
	if hd.Type == "completion" && !slices.Contains(codes, hd.CompletionCode) {
		problems = append(problems, fmt.Sprintf("completionCode %q", hd.CompletionCode))
	}
	if hd.Type == "completion" && hd.CompletionCode != "success" && hd.ErrorDescription == "" {
		problems = append(problems, "an error completion without errorDescription")
	}
	if hd.Type == "acknowledge" && hd.Status != "" && !slices.Contains(statuses, hd.Status) {
		problems = append(problems, fmt.Sprintf("status %q", hd.Status))
	}
	if len(problems) > 0 {
		return m, fmt.Errorf("message does not conform (%s): %s", strings.Join(problems, "; "), b)
	}
	return m, nil
}
