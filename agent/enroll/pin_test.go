package enroll

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// authority is a test CA: a certificate and its key.
type authority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var serial atomic.Int64

func sign(t *testing.T, tmpl *x509.Certificate, pub any, parent *authority) *x509.Certificate {
	t.Helper()
	tmpl.SerialNumber = big.NewInt(serial.Add(1))
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	signer, parentCert := parent.key, parent.cert
	if parentCert == nil { // self-signed
		parentCert = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newCA makes a root CA, or an intermediate of parent.
func newCA(t *testing.T, name string, parent *authority) *authority {
	key := newKey(t)
	tmpl := &x509.Certificate{Subject: pkix.Name{CommonName: name}, IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	if parent == nil {
		parent = &authority{key: key}
	}
	return &authority{cert: sign(t, tmpl, key.Public(), parent), key: key}
}

// serverCert issues a server certificate of a for hosts; chain is what follows it on the wire.
func (a *authority) serverCert(t *testing.T, hosts []string, chain ...*x509.Certificate) tls.Certificate {
	key := newKey(t)
	tmpl := &x509.Certificate{Subject: pkix.Name{CommonName: hosts[0]}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	leaf := sign(t, tmpl, key.Public(), a)
	c := tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
	for _, x := range chain {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c
}

func parsed(t *testing.T, c tls.Certificate) []*x509.Certificate {
	var out []*x509.Certificate
	for _, der := range c.Certificate {
		x, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, x)
	}
	return out
}

func TestVerifyPinned(t *testing.T) {
	hub, attacker := newCA(t, "hub CA", nil), newCA(t, "attacker CA", nil)
	root := newCA(t, "offline root", nil)
	inter := newCA(t, "hub intermediate", root)
	loop := []string{"127.0.0.1"}
	pin := api.CAHash(hub.cert)
	for _, tc := range []struct {
		name   string
		chain  tls.Certificate
		pin    string
		anchor *x509.Certificate
		reason string
	}{
		{"the hub", hub.serverCert(t, loop, hub.cert), pin, hub.cert, ""},
		{"pinned root above an intermediate", inter.serverCert(t, loop, inter.cert, root.cert), api.CAHash(root.cert), root.cert, ""},
		{"pinned intermediate", inter.serverCert(t, loop, inter.cert, root.cert), api.CAHash(inter.cert), inter.cert, ""},
		{"an attacker's own CA", attacker.serverCert(t, loop, attacker.cert), pin, nil, "presented no CA certificate with the pinned key"},
		{"the hub's CA copied after an attacker's certificate", attacker.serverCert(t, loop, hub.cert), pin, nil, "does not vouch for"},
		{"the hub's CA copied after an attacker's chain", attacker.serverCert(t, loop, attacker.cert, hub.cert), pin, nil, "does not vouch for"},
		{"the hub's certificate for another host", hub.serverCert(t, []string{"hub.example.gov.cn"}, hub.cert), pin, nil, "does not vouch for"},
		{"no CA in the chain", hub.serverCert(t, loop), pin, nil, "presented no CA certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			anchor, err := verifyPinned(parsed(t, tc.chain), "127.0.0.1", tc.pin)
			if tc.reason == "" {
				if err != nil || !anchor.Equal(tc.anchor) {
					t.Fatalf("verifyPinned = %v, %v; want %s", anchor, err, tc.anchor.Subject)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrPinMismatch) || !strings.Contains(err.Reason, tc.reason) {
				t.Fatalf("verifyPinned = %v, want a pin mismatch saying %q", err, tc.reason)
			}
		})
	}
	if _, err := verifyPinned(nil, "127.0.0.1", pin); err == nil {
		t.Error("an empty chain passed")
	}
}

// recorder is a hub impostor that counts the requests reaching it.
type recorder struct{ requests atomic.Int64 }

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.requests.Add(1)
	http.Error(w, "impostor", http.StatusTeapot)
}

func pinnedToken(ca *x509.Certificate) string {
	return api.EnrollToken{Secret: "kfe_" + strings.Repeat("5a", 20), CAHash: api.CAHash(ca)}.String()
}

// TestEnrollImpostor: a TLS server with another CA's certificate gets no request at all, and so
// no token; the error names the pin mismatch and nothing is saved.
func TestEnrollImpostor(t *testing.T) {
	hub, attacker := newCA(t, "hub CA", nil), newCA(t, "attacker CA", nil)
	rec := &recorder{}
	srv := httptest.NewUnstartedServer(rec)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{attacker.serverCert(t, []string{"127.0.0.1"}, attacker.cert)}}
	srv.StartTLS()
	defer srv.Close()

	dir := t.TempDir()
	_, err := Enroll(t.Context(), []string{srv.URL}, pinnedToken(hub.cert), "", dir, nil)
	var pe *PinError
	if !errors.As(err, &pe) || !errors.Is(err, ErrPinMismatch) || pe.TokenSent {
		t.Fatalf("Enroll = %v, want a pin mismatch before the token was sent", err)
	}
	for _, want := range []string{"CA pin mismatch", api.CAHash(hub.cert), api.CAHash(attacker.cert), "the token was not sent"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if n := rec.requests.Load(); n != 0 {
		t.Errorf("the impostor got %d requests", n)
	}
	if _, err := os.Stat(filepath.Join(dir, IdentityFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("identity saved: %v", err)
	}
}

// TestEnrollPlain: plain http:// is refused to any hub not on loopback, before dialling; on
// loopback the CA the hub shows must bear the pin before the token is sent.
func TestEnrollPlain(t *testing.T) {
	hub, other := newCA(t, "hub CA", nil), newCA(t, "other CA", nil)
	for _, u := range []string{"http://10.20.30.40:8080", "http://hub.example.gov.cn", "http://[::ffff:10.0.0.1]:80", "ftp://127.0.0.1", "127.0.0.1:8080"} {
		if _, err := Enroll(t.Context(), []string{u}, pinnedToken(hub.cert), "", t.TempDir(), nil); !errors.Is(err, ErrInsecureHub) {
			t.Errorf("Enroll(%s) = %v, want ErrInsecureHub", u, err)
		}
	}

	var enrolls atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/ca", func(w http.ResponseWriter, r *http.Request) {
		b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: other.cert.Raw})
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"certificate":` + strings.ReplaceAll(`"`+string(b)+`"`, "\n", `\n`) + `,"caHash":"` + api.CAHash(other.cert) + `"}`))
	})
	mux.HandleFunc("/api/v1/enroll", func(w http.ResponseWriter, r *http.Request) { enrolls.Add(1) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	_, err := Enroll(t.Context(), []string{srv.URL}, pinnedToken(hub.cert), "", t.TempDir(), nil)
	if !errors.Is(err, ErrPinMismatch) || !strings.Contains(err.Error(), "GET /api/v1/ca") {
		t.Fatalf("Enroll = %v, want a pin mismatch on the CA shown", err)
	}
	if n := enrolls.Load(); n != 0 {
		t.Errorf("the token was sent %d times", n)
	}
}

func TestEnrollUnpinnedToken(t *testing.T) {
	_, err := Enroll(t.Context(), []string{"https://127.0.0.1:1"}, "kfe_"+strings.Repeat("5a", 20), "", t.TempDir(), nil)
	if !errors.Is(err, api.ErrBadEnrollToken) || !strings.Contains(err.Error(), "no CA pin") {
		t.Fatalf("Enroll = %v", err)
	}
}

// TestEnrollAnswer: the agent sends only the token's secret; the MQTT host in the answer must be
// named by the hub's certificate (issued by the answer's CA for the broker's hosts too); the
// pinned CA is kept and trusted for later HTTPS calls.
func TestEnrollAnswer(t *testing.T) {
	hub := newCA(t, "hub CA", nil)
	tok := pinnedToken(hub.cert)
	secret, _, _ := strings.Cut(tok, ".")
	var mqttAddr atomic.Value
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/enroll", func(w http.ResponseWriter, r *http.Request) {
		var req api.Enroll
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Token != secret {
			http.Error(w, "want the secret alone", http.StatusUnauthorized)
			return
		}
		blk, _ := pem.Decode([]byte(req.CSR))
		csr, err := x509.ParseCertificateRequest(blk.Bytes)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		dev := sign(t, &x509.Certificate{Subject: pkix.Name{CommonName: "k-0123456789abcdef"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
			csr.PublicKey, hub)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(api.Enrolled{DeviceID: "k-0123456789abcdef", MQTTAddr: mqttAddr.Load().(string),
			Certificate:   string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: dev.Raw})),
			CACertificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hub.cert.Raw}))})
	})
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("hello kiosk")) })
	srv := httptest.NewUnstartedServer(mux)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{hub.serverCert(t, []string{"127.0.0.1", "localhost"}, hub.cert)}}
	srv.StartTLS()
	defer srv.Close()

	mqttAddr.Store("mqtt.elsewhere.example:8883")
	if _, err := Enroll(t.Context(), []string{srv.URL}, tok, "", t.TempDir(), nil); err == nil || !strings.Contains(err.Error(), `the hub's certificate does not name "mqtt.elsewhere.example"`) {
		t.Fatalf("Enroll = %v, want the MQTT host refused", err)
	}

	// The same with the hub's certificate from an intermediate below the pinned root.
	inter := newCA(t, "hub intermediate", hub)
	srv2 := httptest.NewUnstartedServer(mux)
	srv2.TLS = &tls.Config{Certificates: []tls.Certificate{inter.serverCert(t, []string{"127.0.0.1", "localhost"}, inter.cert, hub.cert)}}
	srv2.StartTLS()
	defer srv2.Close()
	if _, err := Enroll(t.Context(), []string{srv2.URL}, tok, "", t.TempDir(), nil); err == nil || !strings.Contains(err.Error(), `the hub's certificate does not name "mqtt.elsewhere.example"`) {
		t.Fatalf("Enroll through an intermediate = %v, want the MQTT host refused", err)
	}

	mqttAddr.Store("localhost:8883")
	dir := t.TempDir()
	id, err := Enroll(t.Context(), []string{srv.URL}, tok, "", dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, HubCAFile)); !strings.Contains(string(b), "BEGIN CERTIFICATE") {
		t.Fatalf("%s: %q", HubCAFile, b)
	}
	resp, err := id.HTTPClient().Get(srv.URL + "/hello")
	if err != nil {
		t.Fatalf("a later HTTPS call with the pinned CA: %v", err)
	}
	resp.Body.Close()
	if id.DeviceID != "k-0123456789abcdef" || id.MQTTAddr != "localhost:8883" || id.HubURL != srv.URL {
		t.Errorf("identity %+v", id)
	}
}
