package server

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/ca"
	"github.com/kioskfleet/kioskfleet/hub/ca/catest"
	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// TestValidateHTTPSide: plain HTTP only on loopback unless forced; certificate and key together.
func TestValidateHTTPSide(t *testing.T) {
	base := Config{DataDir: "d", HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0"}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string // "" : valid
	}{
		{"https by default anywhere", func(c *Config) { c.HTTPAddr = "0.0.0.0:8443" }, ""},
		{"plain on 127.0.0.1", func(c *Config) { c.HTTPInsecure = true }, ""},
		{"plain on ::1", func(c *Config) { c.HTTPInsecure, c.HTTPAddr = true, "[::1]:0" }, ""},
		{"plain on localhost", func(c *Config) { c.HTTPInsecure, c.HTTPAddr = true, "localhost:0" }, ""},
		{"plain on every interface", func(c *Config) { c.HTTPInsecure, c.HTTPAddr = true, ":8080" }, `http insecure: :8080 is not a loopback address`},
		{"plain on a LAN address", func(c *Config) { c.HTTPInsecure, c.HTTPAddr = true, "10.1.2.3:8080" }, "add http insecure force"},
		{"plain forced", func(c *Config) { c.HTTPInsecure, c.HTTPInsecureForce, c.HTTPAddr = true, true, "10.1.2.3:8080" }, ""},
		{"force alone", func(c *Config) { c.HTTPInsecureForce = true }, "only with http insecure"},
		{"cert without key", func(c *Config) { c.TLSCertFile = "c.pem" }, "give both or neither"},
		{"plain and a cert", func(c *Config) { c.HTTPInsecure, c.TLSCertFile, c.TLSKeyFile = true, "c.pem", "k.pem" }, "choose one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.edit(&c)
			err := c.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}

// serveHub runs a hub with cfg until the test ends.
func serveHub(t *testing.T, cfg Config) Info {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan Info, 1)
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, func(i Info) { ready <- i }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case i := <-ready:
		return i
	case err := <-done:
		t.Fatalf("Run returned before ready: %v", err)
	}
	return Info{}
}

func clientFor(roots *x509.CertPool) *http.Client {
	return &http.Client{Transport: api.Transport(roots), Timeout: 10 * time.Second}
}

// TestHTTPS: by default the HTTP side is HTTPS (HTTP/2 offered) with a certificate of the hub's
// CA, whose certificate it serves in the chain and writes where clients find it; enrollment
// tokens pin it; a client that does not trust it, or speaks plain HTTP, gets nothing.
func TestHTTPS(t *testing.T) {
	data := t.TempDir()
	info := serveHub(t, Config{DataDir: data, HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0"})
	if !strings.HasPrefix(info.HTTPURL, "https://127.0.0.1:") || info.CAFile != filepath.Join(data, "ca", "ca.crt") {
		t.Fatalf("info %+v", info)
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
	chain := resp.TLS.PeerCertificates
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 || len(chain) != 2 || api.CAHash(chain[1]) != info.CAHash {
		t.Fatalf("GET /healthz: %d over HTTP/%d, chain of %d ending in %s (want the pin %s)", resp.StatusCode, resp.ProtoMajor, len(chain), api.CAHash(chain[len(chain)-1]), info.CAHash)
	}

	c := &api.Client{BaseURL: info.HTTPURL, Token: info.BootstrapToken, HTTP: clientFor(roots)}
	ctx := t.Context()
	if _, err := c.CreateSite(ctx, api.CreateSite{ID: "hall-1", Name: "Hall 1", Region: "440305"}); err != nil {
		t.Fatal(err)
	}
	tok, err := c.CreateToken(ctx, api.CreateToken{SiteID: "hall-1"})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := api.ParseEnrollToken(tok.Secret); err != nil || p.CAHash != info.CAHash {
		t.Errorf("token %q does not pin %s: %v", tok.Secret, info.CAHash, err)
	}

	if _, err := clientFor(nil).Get(info.HTTPURL + "/healthz"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a client trusting only the system's roots: %v, want a certificate error", err)
	}
	resp, err = http.Get("http://" + strings.TrimPrefix(info.HTTPURL, "https://") + "/healthz")
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Errorf("plain HTTP to the HTTPS port: %d %s", resp.StatusCode, b)
		}
	}
}

// writeChain writes a server certificate of c for 127.0.0.1, with c's certificate after it
// unless leafOnly, and its key.
func writeChain(t *testing.T, c *ca.CA, certFile, keyFile string, leafOnly bool) {
	t.Helper()
	leaf, err := c.ServerTLSCert([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	var chain bytes.Buffer
	pem.Encode(&chain, &pem.Block{Type: "CERTIFICATE", Bytes: leaf.Certificate[0]})
	if !leafOnly {
		chain.Write(c.CertPEM())
	}
	der, err := x509.MarshalPKCS8PrivateKey(leaf.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	// The key first: a reload between the two writes sees a certificate without its key.
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, chain.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestOperatorCert: with --tls-cert the hub serves the operator's chain, tokens pin the chain's
// last certificate, and a new chain written over the files is served without a restart. A file
// with the server certificate alone is refused: kiosks would have no CA to pin.
func TestOperatorCert(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "hub.pem"), filepath.Join(dir, "hub.key")
	first, second := catest.New(t), catest.New(t)

	writeChain(t, first, certFile, keyFile, true)
	cfg := Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", TLSCertFile: certFile, TLSKeyFile: keyFile}
	if h, err := Assemble(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "holds only the server certificate") {
		if h != nil {
			h.Close()
		}
		t.Fatalf("a chain without its CA: %v", err)
	}

	writeChain(t, first, certFile, keyFile, false)
	info := serveHub(t, cfg)
	if info.CAHash != api.CAHash(first.Certificate()) || info.CAFile != "" {
		t.Fatalf("info %+v, want the pin of the operator's CA %s and no CA file of the hub's", info, api.CAHash(first.Certificate()))
	}
	anchor := func(roots *x509.CertPool) (string, error) {
		c := clientFor(roots)
		c.Transport.(*http.Transport).DisableKeepAlives = true
		resp, err := c.Get(info.HTTPURL + "/healthz")
		if err != nil {
			return "", err
		}
		resp.Body.Close()
		return api.CAHash(resp.TLS.PeerCertificates[len(resp.TLS.PeerCertificates)-1]), nil
	}
	if got, err := anchor(first.Pool()); err != nil || got != info.CAHash {
		t.Fatalf("served chain ends in %s (%v), want %s", got, err, info.CAHash)
	}

	writeChain(t, second, certFile, keyFile, false)
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := anchor(second.Pool())
		if err == nil && got == api.CAHash(second.Certificate()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new chain was not served within 10 s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	c := &api.Client{BaseURL: info.HTTPURL, Token: info.BootstrapToken, HTTP: clientFor(second.Pool())}
	if got, err := c.CA(t.Context()); err != nil || got.CAHash != api.CAHash(second.Certificate()) {
		t.Errorf("GET /api/v1/ca after the reload: %+v, %v", got, err)
	}
}

// TestPlainHTTP: plain HTTP on loopback is served as asked; forced elsewhere it is warned about
// at start. (The forced case binds a documentation address, 192.0.2.1, which this machine does
// not have: the warning comes before the bind, and nothing listens beyond loopback.)
func TestPlainHTTP(t *testing.T) {
	info := serveHub(t, Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", HTTPInsecure: true})
	if !strings.HasPrefix(info.HTTPURL, "http://127.0.0.1:") || info.CAFile != "" {
		t.Fatalf("info %+v", info)
	}
	resp, err := http.Get(info.HTTPURL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	var logs bytes.Buffer
	_, err = Assemble(t.Context(), Config{DataDir: t.TempDir(), HTTPAddr: "192.0.2.1:0", MQTTAddr: "127.0.0.1:0",
		HTTPInsecure: true, HTTPInsecureForce: true, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err == nil {
		t.Fatal("bound 192.0.2.1")
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "serving plain HTTP on a non-loopback address") {
		t.Errorf("no warning at a forced start:\n%s", logs.String())
	}
}

// TestAdvertiseCovered: the hub does not tell kiosks an MQTT address its broker's certificate
// does not name.
func TestAdvertiseCovered(t *testing.T) {
	cfg := Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", AdvertiseMQTT: "mqtt.example.gov.cn:8883"}
	h, err := Assemble(t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), `advertise mqtt mqtt.example.gov.cn:8883: its certificate names [127.0.0.1 localhost], not "mqtt.example.gov.cn"`) {
		if h != nil {
			h.Close()
		}
		t.Fatalf("Assemble = %v", err)
	}
	cfg.Hosts = []string{"127.0.0.1", "mqtt.example.gov.cn"}
	h, err = Assemble(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
}
