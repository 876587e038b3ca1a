package bundles

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kioskfleet/kioskfleet/agent/localapi"
)

// The health of a newly activated app, as the agent can see it itself: its entry page is served,
// and the local device API lets it in with the services of its manifest. That the kiosk shell
// really loads it in the browser is the shell's to tell (a HealthCheck of its own, added to the
// agent's Checks).

// EntryCheck checks that the app's entry page is served on the apps listener at Addr.
type EntryCheck struct {
	Addr string // host:port of the apps listener
	HTTP *http.Client
}

// Check implements HealthCheck.
func (c EntryCheck) Check(ctx context.Context, a App) error {
	_, port, _ := net.SplitHostPort(c.Addr)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.Addr+"/"+a.Manifest.Entry, nil)
	if err != nil {
		return err
	}
	req.Host = a.Name + ".localhost:" + port
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	res, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("entry page: %w", err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if res.StatusCode != http.StatusOK || len(body) == 0 || res.Header.Get("X-Kiosk-App") != a.Name+"@"+a.Version {
		return fmt.Errorf("entry page %s: HTTP %d, %d bytes, serving %q", a.Manifest.Entry, res.StatusCode, len(body), res.Header.Get("X-Kiosk-App"))
	}
	return nil
}

// HandshakeCheck connects to the local device API at Addr as the app (from its origin on the apps
// listener's port) and asks Common.Capabilities: the API must let it in as that app, with the
// services its manifest asks for.
type HandshakeCheck struct {
	Addr     string // host:port of the local device API
	AppsPort string // port of the apps listener
}

// Check implements HealthCheck.
func (c HandshakeCheck) Check(ctx context.Context, a App) error {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	h := http.Header{"Origin": {Origin(a.Name, c.AppsPort)}}
	conn, res, err := d.DialContext(ctx, "ws://"+c.Addr+localapi.Path, h)
	if err != nil {
		if res != nil {
			return fmt.Errorf("local API handshake: HTTP %d: %w", res.StatusCode, err)
		}
		return fmt.Errorf("local API handshake: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetReadDeadline(dl)
	}
	cmd := map[string]any{"header": map[string]any{"name": "Common.Capabilities", "requestId": 1, "type": "command", "version": "1.0"}, "payload": map[string]any{}}
	if err := conn.WriteJSON(cmd); err != nil {
		return fmt.Errorf("local API handshake: %w", err)
	}
	for {
		var msg struct {
			Header struct {
				Type, CompletionCode, ErrorDescription string
				RequestID                              int64 `json:"requestId"`
			} `json:"header"`
			Payload struct {
				App      string                 `json:"app"`
				Services []localapi.ServiceCaps `json:"services"`
			} `json:"payload"`
		}
		_, b, err := conn.ReadMessage()
		if err != nil {
			return fmt.Errorf("local API handshake: %w", err)
		}
		if err := json.Unmarshal(b, &msg); err != nil || msg.Header.RequestID != 1 || msg.Header.Type != "completion" {
			continue // acknowledge, events, unsolicited
		}
		if msg.Header.CompletionCode != "success" {
			return fmt.Errorf("local API handshake: Common.Capabilities completed %s: %s", msg.Header.CompletionCode, msg.Header.ErrorDescription)
		}
		if msg.Payload.App != a.Name {
			return fmt.Errorf("local API handshake: let in as %q, not %q", msg.Payload.App, a.Name)
		}
		for _, s := range a.Manifest.Services {
			if !slices.ContainsFunc(msg.Payload.Services, func(x localapi.ServiceCaps) bool { return x.Name == s }) {
				return fmt.Errorf("local API handshake: service %s of the manifest not granted", s)
			}
		}
		return nil
	}
}
