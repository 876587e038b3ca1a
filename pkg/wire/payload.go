package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/kioskfleet/kioskfleet/pkg/strictjson"
)

// Version is the payload version this package speaks. Every payload carries it as "v".
const Version = 1

// Limits on what a decoder accepts. A batch is also bounded by the broker's maximum packet size.
const (
	MaxPayloadBytes = 256 << 10 // one MQTT payload
	MaxBatchRecords = 1000      // records in one uplink batch
	MaxRecordBytes  = 64 << 10  // one record body
	MaxKindLen      = 64
	MaxEpochLen     = 64
)

var (
	// ErrMalformed marks a payload that is not valid for its topic.
	ErrMalformed = errors.New("wire: malformed payload")
	// ErrUnknownVersion marks a payload whose "v" this package does not speak.
	ErrUnknownVersion = errors.New("wire: unknown payload version")
	// ErrTooLarge marks a payload over MaxPayloadBytes.
	ErrTooLarge = errors.New("wire: payload too large")
)

// Class says how the agent's outbox treats a record when it is full.
type Class string

const (
	// Telemetry records may be evicted oldest-first when the outbox hits its size cap.
	Telemetry Class = "t"
	// Business records (journal entries, command results, alerts) are never evicted.
	Business Class = "b"
)

// Well-known record kinds. Kinds are free-form ([a-z0-9._-], starting with a letter); these carry
// meaning for the hub.
const (
	KindHeartbeat   = "heartbeat"      // body: Heartbeat
	KindCmdResult   = "cmd.result"     // body: CommandResult
	KindReported    = "state.reported" // body: Reported
	KindPeripherals = "peripherals"    // body: Peripherals
	KindAlert       = "alert"          // body: Alert
	KindEvent       = "event"          // body: Event (business class: never evicted)
)

// Record is one outbox entry. Seq is per device and epoch, starting at 1, without gaps.
type Record struct {
	Seq   uint64          `json:"seq"`
	Kind  string          `json:"kind"`
	Class Class           `json:"class"`
	TS    int64           `json:"ts"` // device clock, Unix milliseconds
	Body  json.RawMessage `json:"body"`
}

// Batch is the payload of the up channel: consecutive-or-increasing records of one epoch.
type Batch struct {
	V       int      `json:"v"`
	Epoch   string   `json:"epoch"`
	Records []Record `json:"records"`
}

// Hello is the payload of the hello channel, sent on every (re)connect before any batch.
type Hello struct {
	V            int    `json:"v"`
	Epoch        string `json:"epoch"`        // current outbox epoch
	NextSeq      uint64 `json:"nextSeq"`      // the sequence number the next record will get
	StateVersion int64  `json:"stateVersion"` // desired-state version the agent runs (0: none)
	AgentVersion string `json:"agentVersion"`
}

// AckMsg is the payload of the ack channel: every record of Epoch with seq <= UpTo is durable on
// the hub. It is cumulative; the hub never acks over a gap.
type AckMsg struct {
	V     int    `json:"v"`
	Epoch string `json:"epoch"`
	UpTo  uint64 `json:"upTo"`
}

// Command is the payload of the cmd channel.
type Command struct {
	V         int             `json:"v"`
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Args      json.RawMessage `json:"args,omitempty"`
	CreatedAt int64           `json:"createdAt"` // hub clock, Unix ms
	ExpiresAt int64           `json:"expiresAt"` // hub clock, Unix ms
	// ExpiresIn is the time left at sending, in ms; the agent measures it on its own clock so that
	// clock drift cannot run an expired command.
	ExpiresIn int64 `json:"expiresIn"`
}

// Desired is the payload of the desired channel.
type Desired struct {
	V       int             `json:"v"`
	Version int64           `json:"version"`
	Doc     json.RawMessage `json:"doc"`
}

// PresenceMsg is the payload of the presence channel (retained; the Will carries Online=false).
type PresenceMsg struct {
	V            int    `json:"v"`
	Online       bool   `json:"online"`
	AgentVersion string `json:"agentVersion,omitempty"`
}

// CommandState is a command's place in its life cycle:
// queued -> delivered -> accepted -> succeeded | failed, or expired before it is accepted.
type CommandState string

const (
	CmdQueued    CommandState = "queued"
	CmdDelivered CommandState = "delivered"
	CmdAccepted  CommandState = "accepted"
	CmdSucceeded CommandState = "succeeded"
	CmdFailed    CommandState = "failed"
	CmdExpired   CommandState = "expired"
)

// Terminal reports whether s is a final state.
func (s CommandState) Terminal() bool {
	return s == CmdSucceeded || s == CmdFailed || s == CmdExpired
}

// CommandResult is the body of a cmd.result record.
type CommandResult struct {
	ID     string          `json:"id"`
	State  CommandState    `json:"state"` // accepted, succeeded, failed or expired
	Output json.RawMessage `json:"output,omitempty"`
	Error  string          `json:"error,omitempty"`
}

// Reported is the body of a state.reported record: the desired-state version the agent now runs.
type Reported struct {
	Version int64           `json:"version"`
	Doc     json.RawMessage `json:"doc"`
	Error   string          `json:"error,omitempty"` // why the desired version could not be applied
}

// Heartbeat is the body of a heartbeat record: host telemetry. Every field name says its unit.
type Heartbeat struct {
	UptimeS      int64   `json:"uptimeS"`
	CPUPercent   float64 `json:"cpuPercent"`
	MemUsedBytes uint64  `json:"memUsedBytes"`
	MemTotal     uint64  `json:"memTotalBytes"`
	DiskFree     uint64  `json:"diskFreeBytes"`
	DiskTotal    uint64  `json:"diskTotalBytes"`
	AgentVersion string  `json:"agentVersion"`
	OutboxDepth  int64   `json:"outboxDepth"`
	RSSBytes     uint64  `json:"rssBytes"`
}

// Alert is the body of an alert record.
type Alert struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Encode marshals a payload. It never fails for the types of this package.
func Encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("wire: encode %T: %v", v, err)) // only reachable with a programming error
	}
	return b
}

func malformed(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, a...))
}

// versioned is implemented by every payload type.
type versioned interface{ version() int }

func (m *Batch) version() int       { return m.V }
func (m *Hello) version() int       { return m.V }
func (m *AckMsg) version() int      { return m.V }
func (m *Command) version() int     { return m.V }
func (m *Desired) version() int     { return m.V }
func (m *PresenceMsg) version() int { return m.V }

// decode unmarshals b strictly into v (unknown fields are refused) after checking its size and
// that it is strict JSON (strictjson: UTF-8, no duplicate keys at any depth, record bodies
// included), and checks the version. The strict decode runs first, so a valid payload is parsed
// once; only a payload that fails is looked at again to tell an unknown version from a malformed
// payload.
func decode(b []byte, v versioned) error {
	if len(b) > MaxPayloadBytes {
		return fmt.Errorf("%w: %d bytes > %d", ErrTooLarge, len(b), MaxPayloadBytes)
	}
	if err := strictjson.Check(b); err != nil {
		return malformed("%v", err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	err := d.Decode(v)
	if err == nil && d.More() {
		err = errors.New("trailing data after the JSON object")
	}
	if err == nil && v.version() == Version {
		return nil
	}
	var head struct {
		V *int `json:"v"`
	}
	if herr := json.Unmarshal(b, &head); herr != nil {
		if err == nil {
			err = herr
		}
		return malformed("not a JSON object: %v", err)
	}
	if head.V == nil {
		return malformed(`missing "v"`)
	}
	if *head.V != Version {
		return fmt.Errorf("%w: %d (want %d)", ErrUnknownVersion, *head.V, Version)
	}
	return malformed("%v", err)
}

func checkEpoch(e string) error {
	if e == "" || len(e) > MaxEpochLen {
		return malformed("epoch must be 1..%d characters", MaxEpochLen)
	}
	for i := 0; i < len(e); i++ {
		if c := e[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return malformed("epoch %q has a character outside [a-z0-9-]", e)
		}
	}
	return nil
}

// ValidKind reports whether k is a valid record kind.
func ValidKind(k string) bool {
	if k == "" || len(k) > MaxKindLen || !(k[0] >= 'a' && k[0] <= 'z') {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// DecodeBatch decodes and validates an up payload. Record bodies may share b's memory: b must
// not be modified while the batch is in use.
func DecodeBatch(b []byte) (Batch, error) {
	m, ok := fastBatch(b)
	if !ok {
		if err := decode(b, &m); err != nil {
			return Batch{}, err
		}
	}
	if err := checkEpoch(m.Epoch); err != nil {
		return Batch{}, err
	}
	if len(m.Records) == 0 || len(m.Records) > MaxBatchRecords {
		return Batch{}, malformed("batch has %d records, want 1..%d", len(m.Records), MaxBatchRecords)
	}
	var prev uint64
	for i, r := range m.Records {
		if r.Seq == 0 || r.Seq <= prev {
			return Batch{}, malformed("record %d: seq %d is not above %d", i, r.Seq, prev)
		}
		prev = r.Seq
		if !ValidKind(r.Kind) {
			return Batch{}, malformed("record %d: bad kind %q", i, r.Kind)
		}
		if r.Class != Telemetry && r.Class != Business {
			return Batch{}, malformed("record %d: class %q is neither %q nor %q", i, r.Class, Telemetry, Business)
		}
		if len(r.Body) == 0 || len(r.Body) > MaxRecordBytes {
			return Batch{}, malformed("record %d: body of %d bytes, want 1..%d", i, len(r.Body), MaxRecordBytes)
		}
	}
	return m, nil
}

// DecodeHello decodes and validates a hello payload.
func DecodeHello(b []byte) (Hello, error) {
	var m Hello
	if err := decode(b, &m); err != nil {
		return Hello{}, err
	}
	if err := checkEpoch(m.Epoch); err != nil {
		return Hello{}, err
	}
	if m.NextSeq == 0 {
		return Hello{}, malformed("nextSeq must be at least 1")
	}
	if m.StateVersion < 0 {
		return Hello{}, malformed("stateVersion %d is negative", m.StateVersion)
	}
	if len(m.AgentVersion) > 64 {
		return Hello{}, malformed("agentVersion longer than 64 bytes")
	}
	return m, nil
}

// DecodeAck decodes and validates an ack payload.
func DecodeAck(b []byte) (AckMsg, error) {
	m, ok := fastAck(b)
	if !ok {
		if err := decode(b, &m); err != nil {
			return AckMsg{}, err
		}
	}
	if err := checkEpoch(m.Epoch); err != nil {
		return AckMsg{}, err
	}
	return m, nil
}

// DecodeCommand decodes and validates a cmd payload.
func DecodeCommand(b []byte) (Command, error) {
	var m Command
	if err := decode(b, &m); err != nil {
		return Command{}, err
	}
	if m.ID == "" || len(m.ID) > 64 {
		return Command{}, malformed("command id must be 1..64 bytes")
	}
	if !ValidKind(m.Name) {
		return Command{}, malformed("bad command name %q", m.Name)
	}
	if m.ExpiresAt <= 0 || m.ExpiresIn < 0 {
		return Command{}, malformed("command without a valid expiry")
	}
	return m, nil
}

// DecodeDesired decodes and validates a desired payload.
func DecodeDesired(b []byte) (Desired, error) {
	var m Desired
	if err := decode(b, &m); err != nil {
		return Desired{}, err
	}
	if m.Version < 1 {
		return Desired{}, malformed("desired version %d is below 1", m.Version)
	}
	if !isObject(m.Doc) {
		return Desired{}, malformed("desired doc must be a JSON object")
	}
	return m, nil
}

// DecodePresence decodes and validates a presence payload.
func DecodePresence(b []byte) (PresenceMsg, error) {
	var m PresenceMsg
	if err := decode(b, &m); err != nil {
		return PresenceMsg{}, err
	}
	return m, nil
}

// DecodeCommandResult decodes the body of a cmd.result record.
func DecodeCommandResult(body []byte) (CommandResult, error) {
	var m CommandResult
	if err := strictBody(body, &m); err != nil {
		return CommandResult{}, err
	}
	if m.ID == "" || len(m.ID) > 64 {
		return CommandResult{}, malformed("cmd.result: id must be 1..64 bytes")
	}
	switch m.State {
	case CmdAccepted, CmdSucceeded, CmdFailed, CmdExpired:
	default:
		return CommandResult{}, malformed("cmd.result: state %q is not reportable by an agent", m.State)
	}
	return m, nil
}

// DecodeHeartbeat decodes the body of a heartbeat record.
func DecodeHeartbeat(body []byte) (Heartbeat, error) {
	var m Heartbeat
	if err := strictBody(body, &m); err != nil {
		return Heartbeat{}, err
	}
	if !isObject(body) {
		return Heartbeat{}, malformed("heartbeat: body must be a JSON object")
	}
	if m.UptimeS < 0 || m.OutboxDepth < 0 || m.CPUPercent < 0 {
		return Heartbeat{}, malformed("heartbeat: uptimeS, outboxDepth and cpuPercent must not be negative")
	}
	return m, nil
}

// DecodeReported decodes the body of a state.reported record.
func DecodeReported(body []byte) (Reported, error) {
	var m Reported
	if err := strictBody(body, &m); err != nil {
		return Reported{}, err
	}
	if m.Version < 0 {
		return Reported{}, malformed("state.reported: version %d is negative", m.Version)
	}
	if len(m.Doc) > 0 && !isObject(m.Doc) && string(m.Doc) != "null" {
		return Reported{}, malformed("state.reported: doc must be a JSON object")
	}
	return m, nil
}

func strictBody(b []byte, v any) error {
	if err := strictjson.Check(b); err != nil {
		return malformed("%v", err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return malformed("%v", err)
	}
	if d.More() {
		return malformed("trailing data after the JSON object")
	}
	return nil
}

func isObject(b json.RawMessage) bool {
	b = bytes.TrimSpace(b)
	return len(b) >= 2 && b[0] == '{' && json.Valid(b)
}
