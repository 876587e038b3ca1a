package main

import (
	"bytes"
	"context"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/console/web/webtest"
)

func noenv(string) string { return "" }

func TestHelp(t *testing.T) {
	var out bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, noenv, &out, nil); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, s := range []string{"--hub", "--token-file", "--addr", "KF_CONSOLE_", "KF_TOKEN"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("help lacks %q", s)
		}
	}
}

func TestInvalidConfigAllAtOnce(t *testing.T) {
	t.Setenv("KF_CONSOLE_REFRESH", "soon")
	var out bytes.Buffer
	code := run(context.Background(), []string{"--hub", "ftp://x", "--hub-ca", "/nonexistent/ca.crt", "--token", "t", "--token-file", "/f", "--addr", "nope", "--tz", "Mars/Olympus", "--timeout", "1h"}, noenv, &out, nil)
	if code != 2 {
		t.Fatalf("exit %d", code)
	}
	for _, s := range []string{`environment KF_CONSOLE_REFRESH="soon"`, `--hub "ftp://x"`, "--hub-ca: open /nonexistent/ca.crt", "--token and --token-file", `--addr "nope"`, `--tz "Mars/Olympus"`, "--timeout 1h0m0s"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("output lacks %q:\n%s", s, out.String())
		}
	}
}

// TestServe starts the console with its settings from the environment and a token file, loads
// the overview through it from a fake hub served over HTTPS with a CA the console is given
// (KF_CA), and stops it.
func TestServe(t *testing.T) {
	hub := httptest.NewTLSServer(webtest.NewHub(t))
	defer hub.Close()
	dir := t.TempDir()
	tokenFile, caFile := filepath.Join(dir, "token"), filepath.Join(dir, "ca.crt")
	os.WriteFile(tokenFile, []byte(webtest.Token+"\n"), 0o600)
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hub.Certificate().Raw}), 0o600)
	t.Setenv("KF_CONSOLE_TOKEN_FILE", tokenFile)
	t.Setenv("KF_CONSOLE_ADDR", "127.0.0.1:1") // the flag wins
	env := func(k string) string { return map[string]string{"KF_HUB": hub.URL, "KF_CA": caFile}[k] }
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan int, 1)
	var out bytes.Buffer
	go func() {
		done <- run(ctx, []string{"--addr", "127.0.0.1:0", "--log-level", "warn"}, env, &out, func(a string) { addr <- a })
	}()
	var a string
	select {
	case a = <-addr:
	case code := <-done:
		t.Fatalf("exit %d: %s", code, out.String())
	case <-time.After(10 * time.Second):
		t.Fatal("console did not start")
	}
	resp, err := http.Get("http://" + a + "/?lang=en")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), webtest.PaperOut) {
		t.Errorf("overview: status %d", resp.StatusCode)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d: %s", code, out.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("console did not stop")
	}
}
