package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Settings are the agent settings a desired-state document may change. Unknown keys are refused so
// that a typo in a fleet-wide change shows up as drift with a reason instead of being ignored.
type Settings struct {
	HeartbeatInterval Duration `json:"heartbeatInterval"`
	IdleTimeout       Duration `json:"idleTimeout"` // citizen session wiped after this much inactivity
	LogLevel          string   `json:"logLevel"`
	HomeURL           string   `json:"homeUrl,omitempty"` // the kiosk shell's start page: a path of the shell (/shell/?lang=en&care=1) or an http(s) URL
	// Kiosk apps and the agent version to install (the hub's rollouts, wire.UpdateTargets).
	Bundles map[string]string `json:"bundles,omitempty"`
	Agent   string            `json:"agent,omitempty"`
}

// DefaultSettings are used until a desired state arrives.
func DefaultSettings() Settings {
	return Settings{HeartbeatInterval: Duration{30 * time.Second}, IdleTimeout: Duration{2 * time.Minute}, LogLevel: "info"}
}

// ParseSettings applies doc over the defaults and validates the result, reporting every problem.
func ParseSettings(doc json.RawMessage) (Settings, error) {
	s := DefaultSettings()
	if len(bytes.TrimSpace(doc)) == 0 {
		return s, nil
	}
	d := json.NewDecoder(bytes.NewReader(doc))
	d.DisallowUnknownFields()
	if err := d.Decode(&s); err != nil {
		return Settings{}, fmt.Errorf("settings: %w", err)
	}
	var errs []error
	if s.HeartbeatInterval.D < time.Second || s.HeartbeatInterval.D > time.Hour {
		errs = append(errs, fmt.Errorf("heartbeatInterval %s: want 1s..1h", s.HeartbeatInterval.D))
	}
	if s.IdleTimeout.D < 10*time.Second || s.IdleTimeout.D > time.Hour {
		errs = append(errs, fmt.Errorf("idleTimeout %s: want 10s..1h", s.IdleTimeout.D))
	}
	if h := s.HomeURL; h != "" {
		u, err := url.Parse(h)
		if err != nil || !(strings.HasPrefix(h, "/") && !strings.HasPrefix(h, "//") || (u.Scheme == "http" || u.Scheme == "https") && u.Host != "") {
			errs = append(errs, fmt.Errorf("homeUrl %q: want a path (/shell/?care=1) or an http(s) URL", h))
		}
	}
	switch s.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("logLevel %q: want debug, info, warn or error", s.LogLevel))
	}
	if err := checkUpdateTargets(s.Bundles, s.Agent); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return Settings{}, fmt.Errorf("settings: %w", err)
	}
	return s, nil
}

// Duration is a time.Duration written as a Go duration string ("30s") in JSON.
type Duration struct{ D time.Duration }

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.D.String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"30s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	d.D = v
	return nil
}
