package fleetsim_test

import (
	"strings"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/agent/fleetsim"
)

// The fleet simulator's run against a hub is an end-to-end test: e2e/fleetsim_test.go.

func TestConfigValidate(t *testing.T) {
	cfg := fleetsim.Config{Agents: 0, Rate: -1, Size: 1 << 20, Churn: -2, OfflineFraction: 1.5}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{"agents", "rate", "size", "churn", "offline fraction", "offline for", "duration"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %q:\n%v", want, err)
		}
	}
	ok := fleetsim.Config{Agents: 1, Duration: time.Second, OfflineFraction: 0.5, OfflineFor: time.Second}
	if err := ok.Validate(); err != nil {
		t.Errorf("good config refused: %v", err)
	}
}
