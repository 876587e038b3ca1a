package identity

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func FuzzNormalizeUserCode(f *testing.F) {
	for _, s := range []string{"BCDF-GHJK", "bcdfghjk", " bc df-gh jk ", "", "ééé", strings.Repeat("-", 100)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := normalizeUserCode(s)
		if normalizeUserCode(n) != n {
			t.Fatalf("not idempotent: %q -> %q -> %q", s, n, normalizeUserCode(n))
		}
	})
}

func TestLoadOrCreateSecret(t *testing.T) {
	path := t.TempDir() + "/id/secret"
	a, err := LoadOrCreateSecret(path)
	if err != nil || len(a) != 32 {
		t.Fatal(a, err)
	}
	b, err := LoadOrCreateSecret(path)
	if err != nil || string(a) != string(b) {
		t.Fatal("secret changed on reload", err)
	}
	if err := os.WriteFile(path, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateSecret(path); !errors.Is(err, ErrConfig) {
		t.Fatalf("short secret: %v", err)
	}
}

func TestCSPSource(t *testing.T) {
	for in, want := range map[string]string{
		"https://portal.example.gov.cn/callback": "https://portal.example.gov.cn",
		"http://127.0.0.1:8081/console/callback": "http://127.0.0.1:8081",
		"http://[::1]:9/cb":                      "http://[::1]:9",
		"cn.gov.kioskfleet.app:/oauth2redirect":  "cn.gov.kioskfleet.app:",
		"https://evil.example;script-src/cb":     "",
		"https://a.example'/cb":                  "",
		"Bad Scheme://x":                         "",
	} {
		if got := cspSource(in); got != want {
			t.Errorf("cspSource(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRefreshHashOrder: the store's keys of refresh tokens sort by the time the tokens were
// made, and differ for tokens of the same nanosecond; a token of another form is keyed by its
// SHA-256 alone.
func TestRefreshHashOrder(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 19, 0, 0, 0, time.UTC)
	a, b, c := refreshToken(t0), refreshToken(t0), refreshToken(t0.Add(time.Nanosecond))
	ha, hb, hc := refreshHash(a), refreshHash(b), refreshHash(c)
	if len(ha) != 8+32 || bytes.Equal(ha, hb) {
		t.Fatalf("hashes %x, %x: want 40 bytes each, different", ha, hb)
	}
	if bytes.Compare(ha, hc) >= 0 || bytes.Compare(hb, hc) >= 0 {
		t.Errorf("a later token's key %x sorts before an earlier one's %x, %x", hc, ha, hb)
	}
	for _, v := range []string{randomToken(32), "", strings.Repeat("z", refreshTokenLen), "+" + a[1:]} {
		if got := refreshHash(v); !bytes.Equal(got, sha(v)) {
			t.Errorf("refreshHash(%q) = %x, want its SHA-256", v, got)
		}
	}
}
