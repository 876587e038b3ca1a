package wire

import "unicode/utf8"

// Limits of a log tail (ChLog). The agent keeps to them; the hub refuses a batch past them.
const (
	MaxLogBatchBytes = 64 << 10 // one log payload
	MaxLogLines      = 100      // lines in one batch
	MaxLogLineBytes  = 1024     // one line's text, UTF-8
)

// Log levels a line may carry (slog's names).
var LogLevels = []string{"DEBUG", "INFO", "WARN", "ERROR"}

// LogLine is one record of the agent's log, formatted and redacted by the agent.
type LogLine struct {
	TS    int64  `json:"ts"` // device clock, Unix milliseconds
	Level string `json:"level"`
	Text  string `json:"text"` // message and attributes, key=value
}

// LogBatch is the payload of the log channel: lines of a tail the hub asked for with the
// log-tail command. It is best effort (QoS 0, not in the outbox): a lost batch is lost.
type LogBatch struct {
	V    int    `json:"v"`
	Tail string `json:"tail"` // the ID of the command that started the tail
	// LeftMs is the time the tail still runs, in ms on the agent's clock at sending (the hub
	// adds it to its own clock: drift does not matter); 0 with End.
	LeftMs int64 `json:"leftMs"`
	// Dropped counts lines the agent skipped since the last batch (over the rate, or gone from
	// its ring while it could not send).
	Dropped int       `json:"dropped,omitempty"`
	End     bool      `json:"end,omitempty"` // the tail is over (deadline or stop)
	Lines   []LogLine `json:"lines"`
}

func (m *LogBatch) version() int { return m.V }

// DecodeLogBatch decodes and validates a log payload.
func DecodeLogBatch(b []byte) (LogBatch, error) {
	if len(b) > MaxLogBatchBytes {
		return LogBatch{}, malformed("log batch of %d bytes > %d", len(b), MaxLogBatchBytes)
	}
	var m LogBatch
	if err := decode(b, &m); err != nil {
		return LogBatch{}, err
	}
	switch {
	case m.Tail == "" || len(m.Tail) > 64:
		return LogBatch{}, malformed("log: tail must be 1..64 bytes")
	case m.LeftMs < 0 || m.Dropped < 0:
		return LogBatch{}, malformed("log: leftMs and dropped must not be negative")
	case len(m.Lines) > MaxLogLines:
		return LogBatch{}, malformed("log: %d lines > %d", len(m.Lines), MaxLogLines)
	}
	for i, l := range m.Lines {
		switch {
		case !validLevel(l.Level):
			return LogBatch{}, malformed("log: line %d: level %.16q is not one of %v", i, l.Level, LogLevels)
		case len(l.Text) > MaxLogLineBytes:
			return LogBatch{}, malformed("log: line %d: %d bytes > %d", i, len(l.Text), MaxLogLineBytes)
		case !utf8.ValidString(l.Text):
			return LogBatch{}, malformed("log: line %d is not UTF-8", i)
		}
	}
	return m, nil
}

func validLevel(s string) bool {
	for _, l := range LogLevels {
		if s == l {
			return true
		}
	}
	return false
}
