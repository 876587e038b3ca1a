package sms_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/identity/sms"
	"github.com/kioskfleet/kioskfleet/hub/identity/sms/smstest"
)

// gateway is an SMS gateway of the documented shape: it answers the statuses given in turn.
type gateway struct {
	mu       sync.Mutex
	statuses []int
	got      []*http.Request
	bodies   []map[string]any
}

func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	raw, _ := io.ReadAll(r.Body)
	var m map[string]any
	json.Unmarshal(raw, &m)
	g.got, g.bodies = append(g.got, r), append(g.bodies, m)
	st := http.StatusAccepted
	if len(g.statuses) > 0 {
		st, g.statuses = g.statuses[0], g.statuses[1:]
	}
	w.WriteHeader(st)
	w.Write([]byte("template\nnot registered"))
}

func TestGateway(t *testing.T) {
	g := &gateway{statuses: []int{http.StatusBadGateway}}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	s, err := sms.NewGateway(srv.URL+"/send", "k-123", nil)
	if err != nil {
		t.Fatal(err)
	}
	// A 5xx is tried once more with the same idempotency key.
	if err := s.SendCode(context.Background(), "+8613800138000", "123456", 5*time.Minute, "en"); err != nil {
		t.Fatal(err)
	}
	if len(g.got) != 2 || g.got[0].Header.Get("Idempotency-Key") == "" ||
		g.got[0].Header.Get("Idempotency-Key") != g.got[1].Header.Get("Idempotency-Key") {
		t.Fatalf("%d requests, idempotency keys differ or are missing", len(g.got))
	}
	r, m := g.got[1], g.bodies[1]
	params, _ := m["params"].(map[string]any)
	if r.Method != http.MethodPost || r.URL.Path != "/send" || r.Header.Get("Authorization") != "Bearer k-123" ||
		r.Header.Get("Content-Type") != "application/json" || m["to"] != "+8613800138000" || m["template"] != sms.Template ||
		m["lang"] != "en" || params["code"] != "123456" || params["minutes"] != "5" {
		t.Errorf("request %s %s %v %v", r.Method, r.URL, r.Header, m)
	}

	// A 4xx is refused for good: no retry, and the error says so on one line.
	g.statuses = []int{http.StatusUnprocessableEntity}
	err = s.SendCode(context.Background(), "+8613800138000", "123456", 5*time.Minute, "zh")
	if !errors.Is(err, sms.ErrRefused) || len(g.got) != 3 || g.bodies[2]["lang"] != "zh-CN" {
		t.Errorf("4xx: %v after %d requests", err, len(g.got))
	}
	if err != nil && (len(err.Error()) > 200 || containsNewline(err.Error())) {
		t.Errorf("error not one short line: %q", err)
	}
	// Two 5xx: an error.
	g.statuses = []int{500, 503}
	if err := s.SendCode(context.Background(), "+8613800138000", "1", time.Minute, "zh"); err == nil {
		t.Error("two 5xx answers: no error")
	}

	for _, bad := range []string{"http://sms.example.com/send", "ftp://x/", "https://", ":"} {
		if _, err := sms.NewGateway(bad, "k", nil); err == nil {
			t.Errorf("gateway URL %q accepted", bad)
		}
	}
	if _, err := sms.NewGateway("https://sms.example.com/send", "", nil); err == nil {
		t.Error("empty key accepted")
	}
}

func containsNewline(s string) bool {
	for _, c := range s {
		if c == '\n' {
			return true
		}
	}
	return false
}

func TestDevFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dev", "sms.txt")
	d, err := sms.NewDevFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Error("the file exists before any code")
	}
	for _, c := range []string{"111111", "222222"} {
		if err := d.SendCode(context.Background(), "+8613800138000", c, time.Minute, "zh"); err != nil {
			t.Fatal(err)
		}
	}
	d.SendCode(context.Background(), "+8613900139000", "333333", time.Minute, "zh")
	if c, err := smstest.LastCode(path, "+8613800138000"); err != nil || c != "222222" {
		t.Errorf("last code %q %v", c, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("dev file mode %v %v, want 0600", fi.Mode(), err)
	}
	if _, err := sms.NewDevFile(""); err == nil {
		t.Error("empty path accepted")
	}
}
