// Package polltest waits in tests for a condition to hold, polling it with a deadline: a test
// waits for what it needs to see, never for a guessed time.
package polltest

import (
	"testing"
	"time"
)

// Every is how often a condition is polled.
const Every = 5 * time.Millisecond

// Poll reports whether cond holds within d, polling it every Every (first at once, last at
// the deadline).
func Poll(d time.Duration, cond func() bool) bool {
	if cond() {
		return true
	}
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(Every)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			if cond() {
				return true
			}
		case <-deadline.C:
			return cond()
		}
	}
}

// Until fails t unless cond holds within d; what names the condition in the failure.
func Until(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Poll(d, cond) {
		t.Fatalf("%s: not within %v", what, d)
	}
}
