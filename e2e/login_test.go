package e2e

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// fleetctl logs a staff member in with the device grant; the hub API then accepts the access token
// in place of the bootstrap token.
func TestFleetctlLogin(t *testing.T) {
	h := newHub(t)
	tokFile := fleetctlLogin(t, h, "admin", adminPassword(t, h))
	tok, err := os.ReadFile(tokFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(tokFile); fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", fi.Mode().Perm())
	}
	c := &api.Client{BaseURL: h.client.BaseURL, Token: strings.TrimSpace(string(tok)), HTTP: h.client.HTTP}
	if _, err := c.ListDevices(context.Background(), api.DeviceQuery{}); err != nil {
		t.Fatalf("API refused the access token: %v", err)
	}
	bad := &api.Client{BaseURL: h.client.BaseURL, Token: strings.TrimSpace(string(tok)) + "x", HTTP: h.client.HTTP}
	var ae *api.Error
	if _, err := bad.ListDevices(context.Background(), api.DeviceQuery{}); !errors.As(err, &ae) || ae.Status != 401 {
		t.Fatalf("a forged token: %v", err)
	}
}
