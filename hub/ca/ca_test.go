package ca_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/ca"
	"github.com/kioskfleet/kioskfleet/hub/ca/catest"
)

func parseCert(t *testing.T, p []byte) *x509.Certificate {
	t.Helper()
	blk, _ := pem.Decode(p)
	if blk == nil {
		t.Fatal("no PEM")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestLoadOrCreatePersists(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	c1, err := ca.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, ca.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v, want 0600", fi.Mode().Perm())
	}
	c2, err := ca.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c1.CertPEM(), c2.CertPEM()) {
		t.Fatal("second load made a new root")
	}
	root := c1.Certificate()
	if !root.IsCA || root.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("root: IsCA=%v alg=%v", root.IsCA, root.PublicKeyAlgorithm)
	}
	// A certificate issued by the first load verifies against the second's pool.
	csr, _ := catest.NewCSR(t, "x")
	iss, err := c1.SignCSR(csr, "kiosk-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseCert(t, iss.CertPEM).Verify(x509.VerifyOptions{Roots: c2.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatal(err)
	}
}

func TestLoadOrCreateRefusesBrokenDirs(t *testing.T) {
	dir := t.TempDir()
	if _, err := ca.LoadOrCreate(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, ca.CertFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.LoadOrCreate(dir); !errors.Is(err, ca.ErrIncomplete) {
		t.Fatalf("key without cert: %v, want ErrIncomplete", err)
	}

	other := t.TempDir()
	if _, err := ca.LoadOrCreate(other); err != nil {
		t.Fatal(err)
	}
	cert, _ := os.ReadFile(filepath.Join(other, ca.CertFile))
	os.WriteFile(filepath.Join(dir, ca.CertFile), cert, 0o644)
	if _, err := ca.LoadOrCreate(dir); !errors.Is(err, ca.ErrCorrupt) {
		t.Fatalf("mismatched key and cert: %v, want ErrCorrupt", err)
	}
	os.WriteFile(filepath.Join(dir, ca.CertFile), []byte("garbage"), 0o644)
	if _, err := ca.LoadOrCreate(dir); !errors.Is(err, ca.ErrCorrupt) {
		t.Fatalf("garbage cert: %v, want ErrCorrupt", err)
	}
}

func TestSignCSR(t *testing.T) {
	c := catest.New(t)
	csr, key := catest.NewCSR(t, "evil-other-device") // the CSR's subject is ignored
	iss, err := c.SignCSR(csr, "kiosk-0042", 30*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert := parseCert(t, iss.CertPEM)
	if cert.Subject.CommonName != "kiosk-0042" {
		t.Errorf("CN %q", cert.Subject.CommonName)
	}
	if len(cert.ExtKeyUsage) != 1 || cert.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Errorf("EKU %v, want clientAuth only", cert.ExtKeyUsage)
	}
	if cert.IsCA || len(cert.DNSNames)+len(cert.IPAddresses) > 0 {
		t.Error("device certificate is a CA or carries SANs")
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		t.Error("certificate is not for the CSR's key")
	}
	if iss.Serial != ca.Serial(cert) || cert.SerialNumber.BitLen() < 64 {
		t.Errorf("serial %s vs %s (%d bits)", iss.Serial, ca.Serial(cert), cert.SerialNumber.BitLen())
	}
	if !iss.NotAfter.Equal(cert.NotAfter) {
		t.Errorf("NotAfter %v vs %v", iss.NotAfter, cert.NotAfter)
	}
	if id, err := ca.DeviceIDFromCert(cert); err != nil || id != "kiosk-0042" {
		t.Errorf("DeviceIDFromCert = %q, %v", id, err)
	}
	_, iss2 := catest.DeviceCert(t, c, "kiosk-0042", time.Hour)
	if iss2.Serial == iss.Serial {
		t.Error("serials repeat")
	}
}

func TestSignCSRRefuses(t *testing.T) {
	c := catest.New(t)
	good, _ := catest.NewCSR(t, "k")

	// A CSR whose signature does not match: swap in another key's public key bytes.
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	blk, _ := pem.Decode(good)
	parsed, _ := x509.ParseCertificateRequest(blk.Bytes)
	other, _ := x509.MarshalPKIXPublicKey(&k2.PublicKey)
	tampered := bytes.Replace(blk.Bytes, parsed.RawSubjectPublicKeyInfo, other, 1)
	tamperedPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: tampered})

	k224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	der224, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "k"}}, k224)

	for name, tc := range map[string]struct {
		csr      []byte
		id       string
		validity time.Duration
		want     error
	}{
		"empty":       {nil, "kiosk-1", time.Hour, ca.ErrBadCSR},
		"not pem":     {[]byte("hello"), "kiosk-1", time.Hour, ca.ErrBadCSR},
		"cert block":  {c.CertPEM(), "kiosk-1", time.Hour, ca.ErrBadCSR},
		"garbage der": {pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte{0x30, 1, 2}}), "kiosk-1", time.Hour, ca.ErrBadCSR},
		"bad sig":     {tamperedPEM, "kiosk-1", time.Hour, ca.ErrBadCSR},
		"p224":        {pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der224}), "kiosk-1", time.Hour, ca.ErrBadCSR},
		"trailing":    {append(bytes.Clone(good), "junk"...), "kiosk-1", time.Hour, ca.ErrBadCSR},
		"bad id":      {good, "Kiosk/1", time.Hour, ca.ErrBadDeviceID},
		"wildcard id": {good, "+", time.Hour, ca.ErrBadDeviceID},
		"zero valid":  {good, "kiosk-1", 0, ca.ErrBadValidity},
		"too long":    {good, "kiosk-1", ca.MaxDeviceValidity + time.Hour, ca.ErrBadValidity},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := c.SignCSR(tc.csr, tc.id, tc.validity)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			var ce *ca.CSRError
			if tc.want == ca.ErrBadCSR && !errors.As(err, &ce) {
				t.Fatalf("err %v is not a *CSRError", err)
			}
		})
	}
}

func TestServerTLSCertHandshake(t *testing.T) {
	c := catest.New(t)
	srv, err := c.ServerTLSCert([]string{"127.0.0.1", "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	if len(srv.Leaf.IPAddresses) != 1 || !srv.Leaf.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) || len(srv.Leaf.DNSNames) != 1 || srv.Leaf.DNSNames[0] != "localhost" {
		t.Fatalf("SANs %v %v", srv.Leaf.IPAddresses, srv.Leaf.DNSNames)
	}
	dev, _ := catest.DeviceCert(t, c, "kiosk-7", time.Hour)
	expired := catest.ExpiredDeviceCert(t, c, "kiosk-7")
	foreign, _ := catest.DeviceCert(t, catest.ForeignCA(t), "kiosk-7", time.Hour)

	handshake := func(client tls.Certificate, host string) (string, error) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		s := tls.Server(a, &tls.Config{Certificates: []tls.Certificate{srv}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: c.Pool()})
		cfg := catest.ClientConfig(c, client)
		cfg.ServerName = host
		cl := tls.Client(b, cfg)
		errc := make(chan error, 1)
		go func() { errc <- cl.Handshake(); b.Close() }()
		err := s.Handshake()
		a.Close()
		if cerr := <-errc; err == nil && cerr != nil {
			err = cerr
		}
		if err != nil {
			return "", err
		}
		return ca.DeviceIDFromCert(s.ConnectionState().PeerCertificates[0])
	}
	for _, host := range []string{"127.0.0.1", "localhost"} {
		if id, err := handshake(dev, host); err != nil || id != "kiosk-7" {
			t.Fatalf("%s: id %q, err %v", host, id, err)
		}
	}
	for name, cert := range map[string]tls.Certificate{"expired": expired, "foreign": foreign, "none": {}} {
		if _, err := handshake(cert, "127.0.0.1"); err == nil {
			t.Errorf("%s client certificate was accepted", name)
		}
	}
}

func TestDeviceIDFromCertRefuses(t *testing.T) {
	c := catest.New(t)
	srv, _ := c.ServerTLSCert([]string{"localhost"})
	if _, err := ca.DeviceIDFromCert(srv.Leaf); !errors.Is(err, ca.ErrNotDevice) {
		t.Errorf("server cert: %v", err)
	}
	if _, err := ca.DeviceIDFromCert(c.Certificate()); !errors.Is(err, ca.ErrNotDevice) {
		t.Errorf("root cert: %v", err)
	}
	if _, err := ca.DeviceIDFromCert(nil); !errors.Is(err, ca.ErrNotDevice) {
		t.Errorf("nil: %v", err)
	}
}

func FuzzSignCSR(f *testing.F) {
	c, err := ca.LoadOrCreate(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	good, _ := catest.NewCSR(f, "k")
	f.Add(good)
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\nMAA=\n-----END CERTIFICATE REQUEST-----\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		iss, err := c.SignCSR(b, "kiosk-1", time.Hour)
		if err == nil && parseCert(t, iss.CertPEM).Subject.CommonName != "kiosk-1" {
			t.Fatal("issued for another name")
		}
		if err != nil && !errors.Is(err, ca.ErrBadCSR) {
			t.Fatalf("unexpected error class: %v", err)
		}
	})
}
