package localapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Version is the version of every message this API defines and sends (XFS4IoT API, Message
// Header: "version" is per message, major.minor). Commands of another major version are refused.
const Version = "1.0"

// Type is a message type (XFS4IoT API, Message Types).
type Type string

// Message types. A client sends commands; for each command it gets an acknowledge, then any
// number of events, then exactly one completion. Unsolicited events belong to no command.
const (
	TypeCommand     Type = "command"
	TypeAcknowledge Type = "acknowledge"
	TypeEvent       Type = "event"
	TypeCompletion  Type = "completion"
	TypeUnsolicited Type = "unsolicited"
)

// AckStatus is the status of an acknowledge message (XFS4IoT API, Acknowledge Messages): empty
// when the command was accepted (and a completion follows); otherwise the command was refused
// and nothing more follows for it.
type AckStatus string

// Acknowledge statuses.
const (
	AckInvalidMessage   AckStatus = "invalidMessage"   // not a command message: the JSON cannot be read
	AckInvalidRequestID AckStatus = "invalidRequestID" // requestId missing, not a positive integer, or in use
	AckTooManyRequests  AckStatus = "tooManyRequests"  // this connection has too many commands running
)

// Header is a message's header (XFS4IoT API, Message Header). Timeout is only in commands,
// Status and ErrorDescription in acknowledges, CompletionCode and ErrorDescription in completions.
type Header struct {
	Name             string         `json:"name"`
	RequestID        int64          `json:"requestId,omitempty"` // none in unsolicited events
	Type             Type           `json:"type"`
	Version          string         `json:"version"`
	Timeout          int64          `json:"timeout,omitempty"` // ms; 0: no timeout of the client's
	Status           AckStatus      `json:"status,omitempty"`
	CompletionCode   CompletionCode `json:"completionCode,omitempty"`
	ErrorDescription string         `json:"errorDescription,omitempty"`
}

// Message is one WebSocket text message.
type Message struct {
	Header  Header `json:"header"`
	Payload any    `json:"payload"`
}

// Command is a command message the decoder accepted.
type Command struct {
	Name      string
	RequestID int64
	Timeout   time.Duration // 0: none given
	Payload   json.RawMessage
}

// DecodeError is a message the decoder refused. With Status set the message gets an acknowledge
// with that status (and nothing more); otherwise it gets an acknowledge and an error completion
// with Code. RequestID and Name are what could be read (0 and "" when nothing).
type DecodeError struct {
	RequestID int64
	Name      string
	Status    AckStatus
	Code      CompletionCode
	Reason    string
}

func (e *DecodeError) Error() string {
	what := string(e.Status)
	if what == "" {
		what = string(e.Code)
	}
	return fmt.Sprintf("localapi: %s: %s", what, e.Reason)
}

// namePattern is an interface name and a command name: Common.Status, Printer.PrintNative.
var namePattern = regexp.MustCompile(`^[A-Z][A-Za-z0-9]{0,31}\.[A-Z][A-Za-z0-9]{0,63}$`)

// wireHeader is a header as a client may send it: every field raw, so that one bad field does
// not hide the requestId.
type wireHeader struct {
	Name      json.RawMessage `json:"name"`
	RequestID json.RawMessage `json:"requestId"`
	Type      json.RawMessage `json:"type"`
	Version   json.RawMessage `json:"version"`
	Timeout   json.RawMessage `json:"timeout"`
}

// Decode reads a command message. Whatever b holds, it returns a Command or a *DecodeError
// saying how to answer; it never panics (FuzzDecode).
func Decode(b []byte) (Command, error) {
	var msg struct {
		Header  json.RawMessage `json:"header"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := strictUnmarshal(b, &msg); err != nil {
		e := &DecodeError{Status: AckInvalidMessage, Reason: "not a message: " + err.Error()}
		salvage(b, e)
		return Command{}, e
	}
	if len(msg.Header) == 0 || string(msg.Header) == "null" {
		return Command{}, &DecodeError{Status: AckInvalidMessage, Reason: `no "header"`}
	}
	var h wireHeader
	if err := json.Unmarshal(msg.Header, &h); err != nil {
		return Command{}, &DecodeError{Status: AckInvalidMessage, Reason: "header: " + err.Error()}
	}
	id, err := requestID(h.RequestID)
	if err != nil {
		return Command{}, &DecodeError{Status: AckInvalidRequestID, Name: name(h.Name), Reason: err.Error()}
	}
	e := &DecodeError{RequestID: id, Name: name(h.Name), Code: CodeInvalidData}
	// From here on the message has a usable requestId: problems get an error completion.
	if err := strictUnmarshal(msg.Header, &struct {
		wireHeader
		Status           json.RawMessage `json:"status"`
		CompletionCode   json.RawMessage `json:"completionCode"`
		ErrorDescription json.RawMessage `json:"errorDescription"`
	}{}); err != nil {
		e.Reason = "header: " + err.Error()
		return Command{}, e
	}
	var typ, ver, nm string
	switch {
	case json.Unmarshal(h.Type, &typ) != nil || Type(typ) != TypeCommand:
		e.Reason = fmt.Sprintf("header.type is %s, want %q", clip(h.Type), TypeCommand)
	case json.Unmarshal(h.Name, &nm) != nil || !namePattern.MatchString(nm):
		e.Reason = fmt.Sprintf("header.name %s is not a command name such as \"Common.Status\"", clip(h.Name))
	case len(h.Version) > 0 && (json.Unmarshal(h.Version, &ver) != nil || !versionOK(ver)):
		e.Code, e.Reason = CodeUnsupportedData, fmt.Sprintf("header.version %s is not supported (this API speaks %s)", clip(h.Version), Version)
	}
	if e.Reason != "" {
		return Command{}, e
	}
	timeout, err := timeoutOf(h.Timeout)
	if err != nil {
		e.Reason = err.Error()
		return Command{}, e
	}
	payload := bytes.TrimSpace(msg.Payload)
	if len(payload) == 0 || string(payload) == "null" {
		payload = []byte("{}")
	}
	if payload[0] != '{' {
		e.Reason = "payload must be a JSON object"
		return Command{}, e
	}
	return Command{Name: nm, RequestID: id, Timeout: timeout, Payload: payload}, nil
}

// strictUnmarshal decodes exactly one JSON value into v, refusing unknown fields and trailing data.
func strictUnmarshal(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if _, err := d.Token(); err != io.EOF {
		return errors.New("data after the JSON object")
	}
	return nil
}

// salvage finds the requestId (and name) of a message that is not well formed, when its header
// can still be read, so that the refusal names the request.
func salvage(b []byte, e *DecodeError) {
	var loose struct {
		Header wireHeader `json:"header"`
	}
	if json.NewDecoder(bytes.NewReader(b)).Decode(&loose) != nil { // the first JSON value only
		return
	}
	if id, err := requestID(loose.Header.RequestID); err == nil {
		e.RequestID, e.Name = id, name(loose.Header.Name)
	}
}

// requestID reads a requestId: a positive integer (XFS4IoT API, Message Header).
func requestID(raw json.RawMessage) (int64, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, errors.New("header.requestId is missing")
	}
	id, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || id <= 0 || id > 1<<53 {
		return 0, fmt.Errorf("header.requestId %s is not a positive integer", clip(raw))
	}
	return id, nil
}

func timeoutOf(raw json.RawMessage) (time.Duration, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	ms, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || ms < 0 || ms > int64(24*time.Hour/time.Millisecond) {
		return 0, fmt.Errorf("header.timeout %s is not a number of milliseconds (0 to 86400000)", clip(raw))
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// versionOK accepts versions of this API's major version (1.0, 1.1, ...).
func versionOK(v string) bool {
	major, minor, ok := strings.Cut(v, ".")
	_, err := strconv.ParseUint(minor, 10, 16)
	return ok && major == strings.Split(Version, ".")[0] && err == nil
}

// name returns raw as a name if it is one, else "" (a client's bytes are not echoed).
func name(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) != nil || !namePattern.MatchString(s) {
		return ""
	}
	return s
}

// clip shows at most 40 bytes of a client's JSON in an error description.
func clip(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "(missing)"
	}
	if len(raw) > 40 {
		return string(raw[:40]) + "..."
	}
	return string(raw)
}
