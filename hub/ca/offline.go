package ca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/atomicfile"
)

// The offline root ceremony. The root's key lives on a machine that is never on the network (a
// folder on removable media); the hub holds only the root certificate and an intermediate that
// signs device and server certificates:
//
//	hub:     Request(caDir)                  intermediate key + CSR in the hub's CA folder
//	hub:     ExportRoot(caDir, rootDir)      an online root's key moved out (hubs that made their own)
//	offline: NewRoot(rootDir)                or a root made offline from the start
//	offline: SignIntermediate(rootDir, csr)  the intermediate certificate
//	hub:     Install(caDir, cert, root)      the hub signs with the intermediate from its next start
//
// Agents keep trusting the root: the hub sends the intermediate with every certificate it
// signs. fleet-hub ca runs each step.

// Files of the intermediate in the CA folder.
const (
	IntermediateKeyFile  = "intermediate.key" // PKCS #8, mode 0600
	IntermediateCSRFile  = "intermediate.csr"
	IntermediateCertFile = "intermediate.crt"
)

// IntermediateValidity is the default lifetime of an intermediate (capped by the root's).
const IntermediateValidity = 5 * 365 * 24 * time.Hour

var (
	// ErrRootOnline marks an Install while the root key is still in the hub's CA folder: move it
	// offline first (ExportRoot), or the ceremony gains nothing.
	ErrRootOnline = errors.New("ca: the root key is still in the hub's CA folder")
	// ErrOtherRoot marks an Install of an intermediate of another root than the one the fleet
	// trusts: every enrolled kiosk would refuse the hub.
	ErrOtherRoot = errors.New("ca: the intermediate is not certified by the root the kiosks trust")
	// ErrNoRequest marks an Install without a pending request (no intermediate key), or of a
	// certificate that is not for the pending key.
	ErrNoRequest = errors.New("ca: no pending request for this certificate")
	// ErrPathLen marks a root that may not certify an intermediate (path length 0).
	ErrPathLen = errors.New("ca: the root may not certify an intermediate (path length 0)")
	// ErrExists marks a folder that already holds what a step would make.
	ErrExists = errors.New("ca: already exists")
)

// NewRoot makes a root key and certificate in rootDir (an offline folder), refusing to overwrite
// one, and returns the certificate.
func NewRoot(rootDir string) (*x509.Certificate, error) {
	for _, f := range []string{KeyFile, CertFile} {
		if _, err := os.Stat(filepath.Join(rootDir, f)); err == nil {
			return nil, fmt.Errorf("%w: %s", ErrExists, filepath.Join(rootDir, f))
		}
	}
	_, certPEM, err := createRoot(rootDir)
	if err != nil {
		return nil, err
	}
	return parseCert(certPEM)
}

// Request makes the intermediate's key in the hub's CA folder (unless a request is pending
// already) and returns its certificate request, also written to the folder.
func Request(caDir string) ([]byte, error) {
	if err := atomicfile.MkdirPrivate(caDir); err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	keyPath := filepath.Join(caDir, IntermediateKeyFile)
	var key *ecdsa.PrivateKey
	if b, err := os.ReadFile(keyPath); err == nil {
		if key, err = parseKey(b, nil); err != nil {
			return nil, err
		}
	} else if errors.Is(err, os.ErrNotExist) {
		if key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			return nil, fmt.Errorf("ca: generate key: %w", err)
		}
		keyPEM, err := marshalKey(key)
		if err != nil {
			return nil, err
		}
		if err := atomicfile.WriteFile(keyPath, keyPEM, 0o600); err != nil {
			return nil, err
		}
	} else {
		return nil, fmt.Errorf("ca: %w", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "kioskfleet hub intermediate CA", Organization: []string{"kioskfleet"}}}, key)
	if err != nil {
		return nil, fmt.Errorf("ca: certificate request: %w", err)
	}
	csr := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	if err := atomicfile.WriteFile(filepath.Join(caDir, IntermediateCSRFile), csr, 0o600); err != nil {
		return nil, err
	}
	return csr, nil
}

// SignIntermediate has the root in rootDir certify the key of csrPEM as an intermediate CA for
// validity (capped by the root's own): it may sign device and server certificates but no further
// CA (path length 0). The CSR's subject is kept; its extensions are ignored.
func SignIntermediate(rootDir string, csrPEM []byte, validity time.Duration) ([]byte, error) {
	keyPEM, err := os.ReadFile(filepath.Join(rootDir, KeyFile))
	if err != nil {
		return nil, fmt.Errorf("ca: root key: %w", err)
	}
	certPEM, err := os.ReadFile(filepath.Join(rootDir, CertFile))
	if err != nil {
		return nil, fmt.Errorf("ca: root certificate: %w", err)
	}
	root, err := parseCert(certPEM)
	if err != nil {
		return nil, err
	}
	key, err := parseKey(keyPEM, root)
	if err != nil {
		return nil, err
	}
	if !root.IsCA || (root.MaxPathLen == 0 && root.MaxPathLenZero) {
		return nil, fmt.Errorf("%w: a root made by a hub before the offline-root ceremony existed; make a new root (fleet-hub ca init-root) and re-enroll the kiosks", ErrPathLen)
	}
	blk, _ := pem.Decode(csrPEM)
	if blk == nil || (blk.Type != "CERTIFICATE REQUEST" && blk.Type != "NEW CERTIFICATE REQUEST") {
		return nil, badCSR("no PEM CERTIFICATE REQUEST")
	}
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if err != nil {
		return nil, badCSR("parse: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, badCSR("signature: %v", err)
	}
	if err := checkPublicKey(csr.PublicKey); err != nil {
		return nil, err
	}
	if validity <= 0 {
		validity = IntermediateValidity
	}
	now := time.Now()
	notAfter := now.Add(validity)
	if notAfter.After(root.NotAfter) {
		notAfter = root.NotAfter
	}
	if !now.Before(root.NotAfter) {
		return nil, fmt.Errorf("ca: the root expired at %s", root.NotAfter.Format(time.RFC3339))
	}
	tmpl := &x509.Certificate{
		SerialNumber:          mustSerial(),
		Subject:               csr.Subject,
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root, csr.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("ca: sign intermediate: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// Install puts an intermediate certificate, signed offline for the pending request, in the hub's
// CA folder; the hub signs with it from its next start. rootPEM is the root that certified it:
// it must be the root the fleet trusts (the folder's), or, for a hub that has none yet, becomes
// it. The root key must not be in the folder.
func Install(caDir string, certPEM, rootPEM []byte) error {
	if _, err := os.Stat(filepath.Join(caDir, KeyFile)); err == nil {
		return fmt.Errorf("%w (%s): move it offline first (fleet-hub ca export-root)", ErrRootOnline, filepath.Join(caDir, KeyFile))
	}
	keyPEM, err := os.ReadFile(filepath.Join(caDir, IntermediateKeyFile))
	if err != nil {
		return fmt.Errorf("%w: %w (fleet-hub ca request makes one)", ErrNoRequest, err)
	}
	cert, err := parseCert(certPEM)
	if err != nil {
		return err
	}
	if _, err := parseKey(keyPEM, cert); err != nil {
		return fmt.Errorf("%w: the certificate is for another key than the pending request's", ErrNoRequest)
	}
	trusted, err := os.ReadFile(filepath.Join(caDir, CertFile))
	switch {
	case err == nil && rootPEM != nil:
		a, aerr := parseCert(trusted)
		b, berr := parseCert(rootPEM)
		if aerr != nil || berr != nil || !bytes.Equal(a.Raw, b.Raw) {
			return fmt.Errorf("%w: the root given is not the one in %s", ErrOtherRoot, filepath.Join(caDir, CertFile))
		}
	case errors.Is(err, os.ErrNotExist) && rootPEM != nil:
		trusted = rootPEM // a hub set up with an offline root from the start
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%w: the hub has no root certificate yet: give the root's", ErrIncomplete)
	case err != nil:
		return fmt.Errorf("ca: %w", err)
	}
	root, err := parseCert(trusted)
	if err != nil {
		return err
	}
	if err := verifyIntermediate(cert, root); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(caDir, IntermediateCertFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(caDir, CertFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw}), 0o600); err != nil {
		return err
	}
	os.Remove(filepath.Join(caDir, IntermediateCSRFile))
	return nil
}

// verifyIntermediate checks that cert is a CA certified by root, valid now.
func verifyIntermediate(cert, root *x509.Certificate) error {
	pool := x509.NewCertPool()
	pool.AddCert(root)
	if !cert.IsCA {
		return fmt.Errorf("%w: the intermediate is not a CA certificate", ErrCorrupt)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("%w: %w", ErrOtherRoot, err)
	}
	return nil
}

type intermediate struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
}

// loadIntermediate loads the installed intermediate of dir; an error wrapping os.ErrNotExist
// when there is none.
func loadIntermediate(dir string, roots *x509.CertPool) (intermediate, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, IntermediateCertFile))
	if err != nil {
		return intermediate{}, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, IntermediateKeyFile))
	if errors.Is(err, os.ErrNotExist) {
		return intermediate{}, fmt.Errorf("%w: %s without %s", ErrIncomplete, IntermediateCertFile, IntermediateKeyFile)
	}
	if err != nil {
		return intermediate{}, fmt.Errorf("ca: %w", err)
	}
	cert, err := parseCert(certPEM)
	if err != nil {
		return intermediate{}, err
	}
	key, err := parseKey(keyPEM, cert)
	if err != nil {
		return intermediate{}, err
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil || !cert.IsCA {
		return intermediate{}, fmt.Errorf("%w: the intermediate does not chain to the root: %v", ErrCorrupt, err)
	}
	return intermediate{key: key, cert: cert}, nil
}

// ExportRoot moves the root key of a hub that made its own root out of its CA folder, into
// rootDir (offline media), with the root certificate beside it: written and synced there first,
// then removed from the hub. The running hub keeps signing with the key it holds in memory until
// it restarts, so request, sign and install before that.
func ExportRoot(caDir, rootDir string) error {
	keyPath := filepath.Join(caDir, KeyFile)
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return fmt.Errorf("ca: root key: %w", err)
	}
	certPEM, err := os.ReadFile(filepath.Join(caDir, CertFile))
	if err != nil {
		return fmt.Errorf("ca: root certificate: %w", err)
	}
	root, err := parseCert(certPEM)
	if err != nil {
		return err
	}
	if _, err := parseKey(keyPEM, root); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(rootDir, KeyFile)); err == nil {
		return fmt.Errorf("%w: %s", ErrExists, filepath.Join(rootDir, KeyFile))
	}
	if err := atomicfile.MkdirPrivate(rootDir); err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(rootDir, CertFile), certPEM, 0o600); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(rootDir, KeyFile), keyPEM, 0o600); err != nil {
		return err
	}
	if err := os.Remove(keyPath); err != nil {
		return fmt.Errorf("ca: remove the root key from the hub: %w", err)
	}
	if d, err := os.Open(caDir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Status describes a CA folder for the operator.
type Status struct {
	Root          *x509.Certificate
	RootKeyOnline bool              // the root key is in the folder
	Intermediate  *x509.Certificate // installed, if any
	Pending       bool              // a request waits for its certificate
}

// Describe reads the CA folder dir.
func Describe(dir string) (Status, error) {
	var s Status
	certPEM, err := os.ReadFile(filepath.Join(dir, CertFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return s, fmt.Errorf("ca: %w", err)
	}
	if err == nil {
		if s.Root, err = parseCert(certPEM); err != nil {
			return s, err
		}
	}
	_, err = os.Stat(filepath.Join(dir, KeyFile))
	s.RootKeyOnline = err == nil
	if b, err := os.ReadFile(filepath.Join(dir, IntermediateCertFile)); err == nil {
		if s.Intermediate, err = parseCert(b); err != nil {
			return s, err
		}
	}
	_, err = os.Stat(filepath.Join(dir, IntermediateCSRFile))
	s.Pending = err == nil
	return s, nil
}
