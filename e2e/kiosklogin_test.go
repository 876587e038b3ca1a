package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/agent/enroll"
	"github.com/kioskfleet/kioskfleet/agent/kiosklogin"
	"github.com/kioskfleet/kioskfleet/drivers/idcard/idcardsim"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

func simCard() wire.IDCard {
	c := idcardsim.Resident()
	return wire.IDCard{Number: wire.Secret(c.Number), Name: c.Name}
}

// ID-card login with the key a real kiosk-agent generated at enrollment: the hub issues a short
// session whose acr says how the citizen was authenticated; a replayed assertion, a key that is not
// the kiosk's and a revoked kiosk are refused.
func TestIDCardLoginWithEnrolledAgentKey(t *testing.T) {
	h := newHub(t)
	h.site("hall-1")
	dir, id := h.enroll("hall-1")
	ident, err := enroll.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, err := kiosklogin.Login(ctx, ident.HTTPClient(), h.client.BaseURL, id, ident.Signer(), simCard())
	if err != nil {
		t.Fatal(err)
	}
	if s.ExpiresIn <= 0 || s.ExpiresIn > 10*time.Minute || s.IDToken == "" {
		t.Fatalf("session %v", s)
	}
	parts := strings.Split(s.IDToken, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims struct {
		ACR string   `json:"acr"`
		AMR []string `json:"amr"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil || !strings.Contains(claims.ACR, "idcard") || len(claims.AMR) == 0 {
		t.Fatalf("id token claims %s (%v)", payload, err)
	}
	if strings.Contains(string(payload), idcardsim.CanaryResident) {
		t.Fatal("the ID token carries the ID number")
	}

	// Replay: the same sealed assertion twice.
	hub, err := kiosklogin.Discover(ctx, ident.HTTPClient(), h.client.BaseURL)
	if err != nil {
		t.Fatal(err)
	}
	a, err := hub.SealedAssertion(ident.Signer(), id, simCard(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	post := func(assertion string) int {
		t.Helper()
		resp, err := h.postForm("/oidc/token", map[string]string{"grant_type": kiosklogin.GrantType, "assertion": assertion, "client_id": kiosklogin.ClientID})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if st := post(a); st != 200 {
		t.Fatalf("fresh assertion refused: %d", st)
	}
	if st := post(a); st == 200 {
		t.Fatal("replayed assertion accepted")
	}
	// The card in clear (signed, not sealed) is refused.
	inClear, err := kiosklogin.Assertion(ident.Signer(), id, hub.Issuer, simCard(), time.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if st := post(inClear); st != 400 {
		t.Fatalf("assertion with the card in clear: %d, want 400", st)
	}
	// A key that is not the kiosk's: another kiosk's key signing as this kiosk.
	dir2, _ := h.enroll("hall-1")
	other, err := enroll.Load(dir2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kiosklogin.Login(ctx, other.HTTPClient(), h.client.BaseURL, id, other.Signer(), simCard()); !errors.Is(err, kiosklogin.ErrRefused) {
		t.Fatalf("assertion signed with another kiosk's key: %v", err)
	}
	// A revoked kiosk.
	if _, err := h.client.Revoke(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := kiosklogin.Login(ctx, ident.HTTPClient(), h.client.BaseURL, id, ident.Signer(), simCard()); !errors.Is(err, kiosklogin.ErrRefused) {
		t.Fatalf("revoked kiosk: %v", err)
	}
}
