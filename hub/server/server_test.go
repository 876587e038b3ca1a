package server

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/pgtest"
)

// TestValidate reports every problem at once, the store URL's among them.
func TestValidate(t *testing.T) {
	c := Config{HTTPAddr: "nowhere", MQTTAddr: "127.0.0.1:0", Store: "mysql://db/hub", TrustedProxies: []string{"10.0.0.0/8", "proxy.lan"},
		ProxyProtocolFrom: []string{"10.1.2.3", "lb.lan", "10.9.0.0/33"}}
	err := c.Validate()
	for _, want := range []string{"data dir: required", `http addr: "nowhere"`, `no backend for "mysql"`, `trusted proxies: ["proxy.lan"]`,
		`proxy protocol from: ["lb.lan" "10.9.0.0/33"]`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to say %q", err, want)
		}
	}
	c = Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", Store: "sqlite:x.db"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestRunStoreURL: the hub opens the store its URL names, runs until its context ends and stops
// cleanly.
func TestRunStoreURL(t *testing.T) {
	data, dbPath := t.TempDir(), filepath.Join(t.TempDir(), "elsewhere.db")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ready := make(chan Info, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{DataDir: data, Store: "sqlite:" + dbPath, HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0"},
			func(i Info) { ready <- i })
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run returned before ready: %v", err)
	}
	if _, err := os.Stat(dbPath); err != nil {
		t.Errorf("the store named by the URL was not opened: %v", err)
	}
	if _, err := os.Stat(filepath.Join(data, "hub.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a database was made in the data folder too (%v)", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v after its context ended", err)
	}
}

// TestAssembleClose: an assembled hub answers on its handler before it is served, and Close
// releases its listeners, so a second hub can take the same addresses.
func TestAssembleClose(t *testing.T) {
	ctx := t.Context()
	cfg := Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0"}
	h, err := Assemble(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.Handler.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != http.StatusOK || rec.Body.String() != "ok\n" {
		t.Fatalf("/healthz = %d %q", rec.Code, rec.Body)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.HTTPAddr, cfg.MQTTAddr = strings.TrimPrefix(h.Info.HTTPURL, "https://"), h.Info.MQTTAddr
	h2, err := Assemble(ctx, cfg)
	if err != nil {
		t.Fatalf("the same addresses after Close: %v", err)
	}
	if h2.Info.FirstStart {
		t.Error("the second start found no bootstrap token")
	}
	h2.Close()
}

// TestRunPostgres: with a postgres:// store URL the hub keeps its state in PostgreSQL (here a
// server of the test's own): set up once by Init, it starts, answers /healthz through the store,
// and what Init set up (the identity provider's clients) is in that database. A replica without
// the secrets, or with other ones, is refused.
func TestRunPostgres(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	srv, err := pgtest.Start(ctx)
	if errors.Is(err, pgtest.ErrNoPostgres) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	url := srv.URL("postgres")
	data := t.TempDir()
	cfg := Config{DataDir: data, Store: url, HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0"}
	if _, err := Assemble(ctx, Config{DataDir: t.TempDir(), Store: url, HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0"}); err == nil ||
		!strings.Contains(err.Error(), "fleet-hub init") {
		t.Fatalf("a replica on PostgreSQL without secrets: %v; want a refusal naming fleet-hub init", err)
	}
	info, err := Init(ctx, cfg)
	if err != nil || !info.FirstStart || info.Credentials["admin password (user admin)"] == "" {
		t.Fatalf("Init = %+v, %v; want the first start's token and credentials", info, err)
	}
	other := t.TempDir()
	if _, err := Init(ctx, Config{DataDir: other, Store: url}); err == nil || !strings.Contains(err.Error(), "same secrets") {
		t.Fatalf("Init with other secrets on the same database: %v; want a refusal", err)
	}
	ready := make(chan Info, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, func(i Info) { ready <- i })
	}()
	select {
	case info = <-ready:
	case err := <-done:
		t.Fatalf("Run returned before ready: %v", err)
	}
	roots, err := api.LoadCA(info.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := clientFor(roots).Get(info.HTTPURL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz = %s", resp.Status)
	}
	st, err := store.Open(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if cs, err := st.ListClients(ctx); err != nil || len(cs) == 0 {
		t.Errorf("clients in PostgreSQL: %d, %v; want the built-in ones", len(cs), err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v after its context ended", err)
	}
}
