// Package catest makes certificates for tests: device certificates signed through the real CSR
// path, expired ones, and foreign CAs whose certificates the hub must refuse.
package catest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/ca"
)

// New returns a fresh CA in a temporary directory.
func New(t testing.TB) *ca.CA {
	t.Helper()
	c, err := ca.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatalf("catest: %v", err)
	}
	return c
}

// ForeignCA returns a CA unrelated to any other: its certificates must be refused.
func ForeignCA(t testing.TB) *ca.CA { return New(t) }

// NewCSR makes a P-256 key and a CSR for it with subject CN=cn.
func NewCSR(t testing.TB, cn string) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("catest: %v", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatalf("catest: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), key
}

// DeviceCert has c sign a new key for deviceID, valid for validity from now.
func DeviceCert(t testing.TB, c *ca.CA, deviceID string, validity time.Duration) (tls.Certificate, ca.Issued) {
	t.Helper()
	csr, key := NewCSR(t, deviceID)
	iss, err := c.SignCSR(csr, deviceID, validity)
	if err != nil {
		t.Fatalf("catest: sign %s: %v", deviceID, err)
	}
	// The certificate and the chain it is sent with (the CA's intermediate, if any), as an agent
	// loads device.crt.
	var chain [][]byte
	for rest := iss.CertPEM; ; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			break
		}
		chain = append(chain, blk.Bytes)
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		t.Fatalf("catest: %v", err)
	}
	return tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf}, iss
}

// ExpiredDeviceCert returns a certificate for deviceID signed by c that expired a day ago.
func ExpiredDeviceCert(t testing.TB, c *ca.CA, deviceID string) tls.Certificate {
	t.Helper()
	past := time.Now().Add(-48 * time.Hour)
	cert, _ := DeviceCert(t, c.WithClock(func() time.Time { return past }), deviceID, 24*time.Hour)
	return cert
}

// ClientConfig is a TLS client configuration trusting c's root and presenting cert (none if cert
// has no Certificate).
func ClientConfig(c *ca.CA, cert tls.Certificate) *tls.Config {
	cfg := &tls.Config{RootCAs: c.Pool(), MinVersion: tls.VersionTLS12}
	if len(cert.Certificate) > 0 {
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg
}
