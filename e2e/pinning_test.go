package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/agent/enroll"
	"github.com/kioskfleet/kioskfleet/hub/ca"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
)

// swapper is an attacker on the path between a kiosk and the hub (issue 16, attack 4): it relays
// every request to the real hub and, in the answers of enrollment and of GET /api/v1/ca, swaps
// the hub's CA certificate for its own and the MQTT address for its own broker's. It records
// every request body it receives.
type swapper struct {
	ca   *ca.CA
	mqtt string

	mu     sync.Mutex
	bodies []string
}

func newSwapper(t *testing.T, h *hub) (*swapper, http.Handler) {
	attacker, err := ca.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := &swapper{ca: attacker, mqtt: freeAddr(t)}
	target, _ := url.Parse(h.client.BaseURL)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = h.client.HTTP.Transport
	rp.ModifyResponse = func(resp *http.Response) error {
		p := resp.Request.URL.Path
		if p != api.Prefix+"/enroll" && p != api.Prefix+"/ca" {
			return nil
		}
		var doc map[string]any
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if json.Unmarshal(b, &doc) == nil {
			for k, v := range map[string]any{"caCertificate": string(attacker.CertPEM()), "certificate": string(attacker.CertPEM()),
				"caHash": api.CAHash(attacker.Certificate()), "mqttAddr": s.mqtt} {
				if _, ok := doc[k]; ok && !(k == "certificate" && p == api.Prefix+"/enroll") {
					doc[k] = v
				}
			}
			b, _ = json.Marshal(doc)
		}
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.ContentLength = int64(len(b))
		resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
		return nil
	}
	return s, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.bodies = append(s.bodies, r.Method+" "+r.URL.Path+" "+string(b))
		s.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(b))
		rp.ServeHTTP(w, r)
	})
}

// received reports whether any request body the attacker got holds s.
func (s *swapper) received(needle string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.bodies {
		if strings.Contains(b, needle) {
			return true
		}
	}
	return false
}

// tlsSwapper serves the swapper over TLS with a server certificate of the attacker's CA, followed
// by chain.
func tlsSwapper(t *testing.T, s *swapper, handler http.Handler, chain ...[]byte) *httptest.Server {
	leaf, err := s.ca.ServerTLSCert([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	leaf.Certificate = append(leaf.Certificate, chain...)
	srv := httptest.NewUnstartedServer(handler)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{leaf}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func enrollVia(t *testing.T, hubURL, token string) (dir, out string, err error) {
	dir = t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := exec.CommandContext(ctx, filepath.Join(binDir, "kiosk-agent"), "enroll", "--data", dir, "--hub", hubURL, "--token", token).CombinedOutput()
	t.Logf("kiosk-agent enroll --hub %s: %v\n%s", hubURL, err, b)
	return dir, string(b), err
}

// TestEnrollThroughSwappingProxy: an attacker relaying enrollment to the real hub and swapping the
// CA certificate and MQTT address in its answer gets nothing, over TLS with its own CA, over TLS
// with the hub's CA certificate copied into its chain, and over plain HTTP: the agent names the
// pin mismatch, sends no token, saves nothing, and the token still enrolls the kiosk with the real
// hub afterwards. The control: with a token pinned to the attacker's CA (what an agent without a
// pin amounts to), the same proxy takes the token and the kiosk saves the attacker's CA and
// broker, so the proxy is a working attacker.
func TestEnrollThroughSwappingProxy(t *testing.T) {
	h := newHub(t)
	h.site("hall-1")
	ctx := context.Background()
	tok, err := h.client.CreateToken(ctx, api.CreateToken{SiteID: "hall-1"})
	if err != nil {
		t.Fatal(err)
	}
	pinned, err := api.ParseEnrollToken(tok.Secret)
	if err != nil {
		t.Fatal(err)
	}
	hubCA, err := os.ReadFile(h.caFile)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		url  func(*swapper, http.Handler) string
	}{
		{"TLS with its own CA", func(s *swapper, hd http.Handler) string {
			return tlsSwapper(t, s, hd, s.ca.Certificate().Raw).URL
		}},
		{"TLS with the hub's CA copied into its chain", func(s *swapper, hd http.Handler) string {
			return tlsSwapper(t, s, hd, h.hubCACert(t).Raw).URL
		}},
		{"plain HTTP", func(s *swapper, hd http.Handler) string {
			srv := httptest.NewServer(hd)
			t.Cleanup(srv.Close)
			return srv.URL
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, hd := newSwapper(t, h)
			dir, out, err := enrollVia(t, tc.url(s, hd), tok.Secret)
			if err == nil {
				t.Fatal("enrolled through the attacker")
			}
			for _, want := range []string{"CA pin mismatch", pinned.CAHash, "the token was not sent"} {
				if !strings.Contains(out, want) {
					t.Errorf("output does not say %q", want)
				}
			}
			if s.received(pinned.Secret) {
				t.Error("the attacker received the token")
			}
			if _, err := os.Stat(filepath.Join(dir, enroll.IdentityFile)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("identity saved: %v", err)
			}
		})
	}

	t.Run("the token, never spent, enrolls with the real hub", func(t *testing.T) {
		dir, _, err := enrollVia(t, h.client.BaseURL, tok.Secret)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{enroll.CAFile, enroll.HubCAFile} {
			if b, _ := os.ReadFile(filepath.Join(dir, f)); !bytes.Equal(b, hubCA) {
				t.Errorf("%s is not the hub's CA", f)
			}
		}
		id, err := enroll.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		if id.MQTTAddr != h.mqttAddr {
			t.Errorf("mqtt %s, want %s", id.MQTTAddr, h.mqttAddr)
		}
	})

	t.Run("control: a token pinned to the attacker", func(t *testing.T) {
		tok2, err := h.client.CreateToken(ctx, api.CreateToken{SiteID: "hall-1"})
		if err != nil {
			t.Fatal(err)
		}
		secret := strings.Split(tok2.Secret, ".")[0]
		s, hd := newSwapper(t, h)
		forged := api.EnrollToken{Secret: secret, CAHash: api.CAHash(s.ca.Certificate())}.String()
		dir, _, err := enrollVia(t, tlsSwapper(t, s, hd, s.ca.Certificate().Raw).URL, forged)
		if err != nil {
			t.Fatal(err)
		}
		id, err := enroll.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		if !s.received(secret) || id.MQTTAddr != s.mqtt {
			t.Fatalf("the proxy did not attack: token received %v, kiosk's broker %s (attacker's %s)", s.received(secret), id.MQTTAddr, s.mqtt)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, enroll.CAFile)); !bytes.Equal(b, s.ca.CertPEM()) {
			t.Fatal("the kiosk did not save the attacker's CA")
		}
		// That kiosk is in the hub's registry (the token was real) but trusts the attacker.
		if _, err := h.client.ListDevices(ctx, api.DeviceQuery{Site: "hall-1"}); err != nil {
			t.Fatal(err)
		}
	})
}

// hubCACert returns the hub's CA certificate, parsed.
func (h *hub) hubCACert(t *testing.T) *x509.Certificate {
	b, err := os.ReadFile(h.caFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestPlainHTTPOffLoopbackRefused: fleet-hub will not serve plain HTTP on an address beyond
// loopback without --http-insecure-force, and says why. (192.0.2.1 is a documentation address this
// machine does not have: were the check missing, the bind would fail with another message.)
func TestPlainHTTPOffLoopbackRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(binDir, "fleet-hub"), "--data", t.TempDir(), "--http-addr", "192.0.2.1:8080",
		"--mqtt-addr", "127.0.0.1:0", "--http-insecure").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "http insecure: 192.0.2.1:8080 is not a loopback address") ||
		!strings.Contains(string(out), "add http insecure force") {
		t.Fatalf("fleet-hub --http-insecure on 192.0.2.1: %v\n%s", err, out)
	}
}

// TestPlainLoopbackHub: a hub serving plain HTTP on loopback (--http-insecure) still enrolls a
// kiosk: the agent checks the CA the hub shows against the token's pin before sending it, and
// keeps it; fleetctl needs no CA.
func TestPlainLoopbackHub(t *testing.T) {
	dir, httpAddr := t.TempDir(), freeAddr(t)
	p := start(t, "hub", "fleet-hub", "--data", dir, "--http-addr", httpAddr, "--mqtt-addr", freeAddr(t), "--http-insecure")
	c := &api.Client{BaseURL: "http://" + httpAddr}
	waitFor(t, 20*time.Second, "plain hub healthy", func() bool {
		if p.exited() {
			t.Fatal("hub exited")
		}
		b, err := os.ReadFile(filepath.Join(dir, "bootstrap-token"))
		c.Token = strings.TrimSpace(string(b))
		_, herr := c.Health(context.Background())
		return err == nil && herr == nil
	})
	if _, err := c.CreateSite(context.Background(), fleet.Site{ID: "hall-1", Name: "Hall 1", Region: "440305"}); err != nil {
		t.Fatal(err)
	}
	tok, err := c.CreateToken(context.Background(), api.CreateToken{SiteID: "hall-1"})
	if err != nil {
		t.Fatal(err)
	}
	agentDir, _, err := enrollVia(t, c.BaseURL, tok.Secret)
	if err != nil {
		t.Fatal(err)
	}
	hubCA, _ := os.ReadFile(filepath.Join(dir, "ca", "ca.crt"))
	if b, _ := os.ReadFile(filepath.Join(agentDir, enroll.HubCAFile)); !bytes.Equal(b, hubCA) {
		t.Error("the kiosk did not keep the hub's CA")
	}
}
