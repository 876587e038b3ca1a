package server

import (
	"crypto/tls"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/security"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/proctest"
)

// TestTLSRefusalsCounted: connections refused at the broker's TLS handshake (no client
// certificate) reach the security events through the hub's wiring, counted into one row of the
// address and minute, not a row per connection.
func TestTLSRefusalsCounted(t *testing.T) {
	info := serveHub(t, Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", SecurityFlush: 20 * time.Millisecond})
	roots, err := api.LoadCA(info.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	const n = 40
	for range n {
		c, err := tls.Dial("tcp", info.MQTTAddr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
		if err != nil {
			continue // refused within the client's handshake (TLS 1.2)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		c.Read(make([]byte, 1)) // TLS 1.3: the server's refusal of the missing certificate
		c.Close()
	}
	hub := &api.Client{BaseURL: info.HTTPURL, Token: info.BootstrapToken, HTTP: clientFor(roots)}
	var evs []api.SecurityEvent
	proctest.Eventually(t, 10*time.Second, "40 TLS refusals counted", func() bool {
		out, err := hub.ListSecurityEvents(t.Context(), api.SecurityQuery{Kind: "tls"})
		if err != nil {
			t.Fatal(err)
		}
		evs = out.Events
		var sum int64
		for _, e := range evs {
			sum += e.Count
		}
		return sum == n
	})
	if len(evs) > 2 { // a minute boundary may fall in between
		t.Fatalf("%d rows for %d refusals from one address: %+v", len(evs), n, evs)
	}
	for _, e := range evs {
		if e.Kind != security.TLSRefused || e.Source != "127.0.0.1" || e.DeviceID != "" {
			t.Fatalf("row %+v", e)
		}
	}
}
