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
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/ca"
	"github.com/kioskfleet/kioskfleet/hub/ca/catest"
)

// handshake has a TLS server with srv's certificate, asking for client certificates of roots,
// accept a client that trusts only roots and presents cert.
func handshake(t *testing.T, srv tls.Certificate, roots *x509.CertPool, cert tls.Certificate) error {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{srv}, ClientCAs: roots,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		done <- c.(*tls.Conn).Handshake()
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert},
		ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13})
	if err == nil {
		_, err = c.Read(make([]byte, 1)) // TLS 1.3: the server's verdict on the client arrives after
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = nil
		}
		c.Close()
	}
	if serr := <-done; serr != nil {
		return serr
	}
	if err != nil && err.Error() != "EOF" {
		return err
	}
	return nil
}

func files(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	es, _ := os.ReadDir(dir)
	for _, e := range es {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

// TestOfflineRootCeremonyExistingFleet moves the root of a hub that made its own offline: the
// hub makes an intermediate request, the root key leaves the hub, the root signs offline, the
// hub installs the intermediate. Kiosks enrolled before (certificates of the root, trusting the
// root) keep working; new ones get certificates of the intermediate; the hub's folder holds no
// key that can make a root or a CA.
func TestOfflineRootCeremonyExistingFleet(t *testing.T) {
	hubDir, offline := filepath.Join(t.TempDir(), "ca"), filepath.Join(t.TempDir(), "root")
	hub, err := ca.LoadOrCreate(hubDir)
	if err != nil {
		t.Fatal(err)
	}
	oldKiosk, _ := catest.DeviceCert(t, hub, "kiosk-old", 24*time.Hour)
	trusted := hub.Pool() // what enrolled kiosks keep: hub-ca.crt

	csr, err := ca.Request(hubDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.SignIntermediate(offline, csr, 0); err == nil {
		t.Fatal("signed without a root in the offline folder")
	}
	if err := ca.ExportRoot(hubDir, offline); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(hubDir, ca.KeyFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("the root key is still on the hub after export")
	}
	if fi, err := os.Stat(filepath.Join(offline, ca.KeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("exported key: %v %v", fi, err)
	}
	if err := ca.ExportRoot(hubDir, offline); err == nil {
		t.Fatal("a second export succeeded")
	}
	certPEM, err := ca.SignIntermediate(offline, csr, 0)
	if err != nil {
		t.Fatal(err)
	}
	inter := parseCert(t, certPEM)
	if !inter.IsCA || !inter.MaxPathLenZero || inter.NotAfter.Sub(time.Now()) < 4*365*24*time.Hour {
		t.Fatalf("intermediate: CA %v pathlen0 %v until %s", inter.IsCA, inter.MaxPathLenZero, inter.NotAfter)
	}
	if err := ca.Install(hubDir, certPEM, nil); err != nil {
		t.Fatal(err)
	}

	hub2, err := ca.LoadOrCreate(hubDir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(hub2.CertPEM(), hub.CertPEM()) {
		t.Fatal("the root changed: enrolled kiosks would refuse the hub")
	}
	newKiosk, iss := catest.DeviceCert(t, hub2, "kiosk-new", 24*time.Hour)
	if len(newKiosk.Certificate) != 2 || !bytes.Equal(newKiosk.Certificate[1], inter.Raw) {
		t.Fatalf("a new kiosk's certificate is not sent with the intermediate (%d certificates)", len(newKiosk.Certificate))
	}
	if _, err := newKiosk.Leaf.Verify(x509.VerifyOptions{Roots: trusted, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Fatal("a new kiosk's certificate verifies without the intermediate: it was not signed by it")
	}
	if !bytes.Contains(iss.CertPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: inter.Raw})) {
		t.Error("the enrollment answer lacks the intermediate")
	}
	srv, err := hub2.ServerTLSCert([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	for name, k := range map[string]tls.Certificate{"enrolled before": oldKiosk, "enrolled after": newKiosk} {
		if err := handshake(t, srv, trusted, k); err != nil {
			t.Errorf("kiosk %s, trusting the root only: %v", name, err)
		}
	}
	stranger, _ := catest.DeviceCert(t, catest.ForeignCA(t), "kiosk-x", time.Hour)
	if err := handshake(t, srv, trusted, stranger); err == nil {
		t.Error("a foreign CA's kiosk was accepted: the handshake check cannot fail")
	}

	// A stolen hub disk: no key in it is the root's, and the intermediate cannot certify a CA.
	rootPub := hub.Certificate().PublicKey.(*ecdsa.PublicKey)
	var interKey *ecdsa.PrivateKey
	for name, b := range files(t, hubDir) {
		if blk, _ := pem.Decode(b); blk != nil && blk.Type == "PRIVATE KEY" {
			k, _ := x509.ParsePKCS8PrivateKey(blk.Bytes)
			if ek, ok := k.(*ecdsa.PrivateKey); ok && ek.PublicKey.Equal(rootPub) {
				t.Fatalf("%s on the hub is the root key", name)
			} else if ok {
				interKey = ek
			}
		}
	}
	rogueKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rogueTmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "rogue CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	rogueDER, err := x509.CreateCertificate(rand.Reader, rogueTmpl, inter, &rogueKey.PublicKey, interKey)
	if err != nil {
		t.Fatal(err)
	}
	rogue, _ := x509.ParseCertificate(rogueDER)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(8), Subject: pkix.Name{CommonName: "kiosk-x"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	leafDER, _ := x509.CreateCertificate(rand.Reader, leafTmpl, rogue, &rogueKey.PublicKey, rogueKey)
	leaf, _ := x509.ParseCertificate(leafDER)
	mids := x509.NewCertPool()
	mids.AddCert(inter)
	mids.AddCert(rogue)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: trusted, Intermediates: mids, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Fatal("a CA made with the intermediate's key is trusted")
	}

	// The hub never makes a root of its own again, and reloads the same.
	hub3, err := ca.LoadOrCreate(hubDir)
	if err != nil || !bytes.Equal(hub3.CertPEM(), hub.CertPEM()) {
		t.Fatalf("reload: %v", err)
	}
	st, err := ca.Describe(hubDir)
	if err != nil || st.RootKeyOnline || st.Intermediate == nil || st.Pending {
		t.Fatalf("status %+v %v", st, err)
	}
}

// TestOfflineRootFromStart sets a new hub up with a root made offline before its first start.
func TestOfflineRootFromStart(t *testing.T) {
	hubDir, offline := filepath.Join(t.TempDir(), "ca"), filepath.Join(t.TempDir(), "root")
	root, err := ca.NewRoot(offline)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.NewRoot(offline); !errors.Is(err, ca.ErrExists) {
		t.Fatalf("second root in the same folder: %v", err)
	}
	csr, err := ca.Request(hubDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.LoadOrCreate(hubDir); !errors.Is(err, ca.ErrIncomplete) {
		t.Fatalf("a hub started mid-ceremony: %v, want ErrIncomplete (no root of its own)", err)
	}
	certPEM, err := ca.SignIntermediate(offline, csr, 30*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Install(hubDir, certPEM, nil); !errors.Is(err, ca.ErrIncomplete) {
		t.Fatalf("install without a root: %v", err)
	}
	// Another root's intermediate, or a certificate for another key, is refused.
	other := filepath.Join(t.TempDir(), "other")
	ca.NewRoot(other)
	otherCSR, _ := catest.NewCSR(t, "x")
	otherCert, _ := ca.SignIntermediate(other, csr, 0)
	rootPEM, _ := os.ReadFile(filepath.Join(offline, ca.CertFile))
	otherRoot, _ := os.ReadFile(filepath.Join(other, ca.CertFile))
	if err := ca.Install(hubDir, otherCert, rootPEM); !errors.Is(err, ca.ErrOtherRoot) {
		t.Errorf("another root's intermediate: %v", err)
	}
	wrongKey, _ := ca.SignIntermediate(offline, otherCSR, 0)
	if err := ca.Install(hubDir, wrongKey, rootPEM); !errors.Is(err, ca.ErrNoRequest) {
		t.Errorf("a certificate for another key: %v", err)
	}
	if err := ca.Install(hubDir, certPEM, rootPEM); err != nil {
		t.Fatal(err)
	}
	if err := ca.Install(hubDir, certPEM, otherRoot); !errors.Is(err, ca.ErrOtherRoot) {
		t.Errorf("reinstall naming another root: %v", err)
	}
	hub, err := ca.LoadOrCreate(hubDir)
	if err != nil {
		t.Fatal(err)
	}
	if !hub.Certificate().Equal(root) {
		t.Fatal("the hub's root is not the offline one")
	}
	k, _ := catest.DeviceCert(t, hub, "kiosk-1", 90*24*time.Hour)
	if k.Leaf.NotAfter.After(parseCert(t, certPEM).NotAfter) {
		t.Error("a device certificate outlives the intermediate")
	}
	srv, _ := hub.ServerTLSCert([]string{"127.0.0.1"})
	if err := handshake(t, srv, hub.Pool(), k); err != nil {
		t.Fatal(err)
	}
	if files := files(t, hubDir); files[ca.KeyFile] != nil || files[ca.IntermediateCSRFile] != nil {
		t.Errorf("hub folder after install: %v", files)
	}
}

// TestSignIntermediateRefusesOldRoots: a root made with path length 0 (by hubs before the
// ceremony existed) cannot have an intermediate; the error says what to do.
func TestSignIntermediateRefusesOldRoots(t *testing.T) {
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kioskfleet hub CA"}, IsCA: true,
		BasicConstraintsValid: true, MaxPathLenZero: true, KeyUsage: x509.KeyUsageCertSign,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour * 24)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	os.WriteFile(filepath.Join(dir, ca.KeyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	os.WriteFile(filepath.Join(dir, ca.CertFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	csr, err := ca.Request(filepath.Join(t.TempDir(), "hub"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.SignIntermediate(dir, csr, 0); !errors.Is(err, ca.ErrPathLen) {
		t.Fatalf("path length 0 root: %v, want ErrPathLen", err)
	}
}
