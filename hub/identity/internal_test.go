package identity

import (
	"errors"
	"os"
	"strings"
	"testing"
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
