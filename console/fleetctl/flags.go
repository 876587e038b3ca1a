package fleetctl

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// problems collects every invalid flag of a command line so that all are reported at once.
type problems []string

func (p *problems) add(format string, a ...any) { *p = append(*p, fmt.Sprintf(format, a...)) }

func (p *problems) err() error {
	if len(*p) == 0 {
		return nil
	}
	return &usageError{*p}
}

// duration parses a Go duration of at least min; an empty string is 0.
func (p *problems) duration(name, s string, min time.Duration) time.Duration {
	if s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		p.add("%s %q: not a duration (try 30s, 15m, 24h)", name, s)
	case d < min:
		p.add("%s %q: must be at least %v", name, s, min)
	}
	return d
}

// int parses a decimal integer in [min, max]; an empty string is 0.
func (p *problems) int(name, s string, min, max int64) int64 {
	if s == "" {
		return 0
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < min || n > max {
		p.add("%s %q: want a whole number from %d to %d", name, s, min, max)
		return 0
	}
	return n
}

// required adds a problem for each empty value, named by its flag.
func (p *problems) required(flags ...[2]string) {
	for _, f := range flags {
		if strings.TrimSpace(f[1]) == "" {
			p.add("%s is required", f[0])
		}
	}
}

// jsonArg reads a JSON value given inline, as @file, or as @- (stdin). With object set it must
// be a JSON object.
func (p *problems) jsonArg(name, s string, stdin io.Reader, object bool) json.RawMessage {
	if s == "" {
		return nil
	}
	b := []byte(s)
	if file, ok := strings.CutPrefix(s, "@"); ok {
		var err error
		if file == "-" {
			b, err = io.ReadAll(io.LimitReader(stdin, 1<<20))
		} else {
			b, err = os.ReadFile(file)
		}
		if err != nil {
			p.add("%s %s: %v", name, s, err)
			return nil
		}
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		p.add("%s: not valid JSON: %v", name, err)
		return nil
	}
	if _, isObj := v.(map[string]any); object && !isObj {
		p.add("%s: must be a JSON object ({...})", name)
		return nil
	}
	return json.RawMessage(b)
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// nonNil makes an absent list an empty one: [] in JSON, as the API writes an empty list, where
// null would need explaining.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
