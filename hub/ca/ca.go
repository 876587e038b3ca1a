// Package ca is the hub's certificate authority: an ECDSA P-256 root kept as PEM files in one
// directory, which signs device client certificates from CSRs at enrollment (the device's private
// key never reaches the hub) and issues the broker's TLS server certificate. The root can be kept
// offline (offline.go): the hub then signs with an intermediate the root certified, and a
// stolen hub disk holds no key that can make a new root.
package ca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"github.com/kioskfleet/kioskfleet/pkg/atomicfile"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// File names inside the CA directory.
const (
	KeyFile  = "ca.key" // PKCS #8 private key, mode 0600
	CertFile = "ca.crt" // self-signed root certificate
)

// Limits on what the CA issues.
const (
	RootValidity      = 20 * 365 * 24 * time.Hour
	MaxDeviceValidity = 825 * 24 * time.Hour
	ServerValidity    = 365 * 24 * time.Hour
	// backdate covers clock skew between the hub and the kiosks.
	backdate = 5 * time.Minute
)

var (
	// ErrBadCSR marks a certificate request that cannot be signed; the wrapped *CSRError says why.
	ErrBadCSR = errors.New("ca: bad certificate request")
	// ErrBadDeviceID marks a device ID outside the form of wire.ValidDeviceID.
	ErrBadDeviceID = errors.New("ca: bad device id")
	// ErrBadValidity marks a requested validity that is not positive or above MaxDeviceValidity.
	ErrBadValidity = errors.New("ca: bad validity")
	// ErrIncomplete marks a CA directory holding only one of key and certificate.
	ErrIncomplete = errors.New("ca: directory holds only one of key and certificate")
	// ErrCorrupt marks CA files that do not parse or do not belong together.
	ErrCorrupt = errors.New("ca: corrupt key or certificate")
	// ErrNotDevice marks a certificate that does not name a device.
	ErrNotDevice = errors.New("ca: certificate does not name a device")
	// ErrNoSigningKey marks a CA folder with neither the root key nor an installed intermediate.
	ErrNoSigningKey = errors.New("ca: no signing key: the root key is offline and no intermediate is installed")
)

// CSRError says why a CSR was refused. It matches ErrBadCSR with errors.Is.
type CSRError struct{ Reason string }

func (e *CSRError) Error() string { return "ca: bad certificate request: " + e.Reason }

// Is makes errors.Is(err, ErrBadCSR) true.
func (e *CSRError) Is(target error) bool { return target == ErrBadCSR }

func badCSR(format string, a ...any) error { return &CSRError{Reason: fmt.Sprintf(format, a...)} }

// Issued is a signed device certificate.
type Issued struct {
	CertPEM  []byte // the certificate, then the intermediate when the CA has one (the chain to present)
	Serial   string // lowercase hex, as Serial returns it
	NotAfter time.Time
}

// CA is a loaded certificate authority. It is safe for concurrent use.
type CA struct {
	key     *ecdsa.PrivateKey   // the signing key: the intermediate's if there is one, else the root's
	cert    *x509.Certificate   // the signing certificate
	chain   []*x509.Certificate // what sits between a certificate it signs and the root: the intermediate
	root    *x509.Certificate
	certPEM []byte // the root's
	pool    *x509.CertPool
	now     func() time.Time
}

// LoadOrCreate loads the CA from dir, creating the directory, a new P-256 key and a self-signed
// root certificate on first use (key mode 0600). When an intermediate is installed (offline.go)
// the intermediate signs, and the root key need not be there: it can be kept offline.
func LoadOrCreate(dir string) (*CA, error) {
	keyPath, certPath := filepath.Join(dir, KeyFile), filepath.Join(dir, CertFile)
	keyPEM, kerr := os.ReadFile(keyPath)
	certPEM, cerr := os.ReadFile(certPath)
	switch {
	case kerr == nil && cerr == nil:
	case errors.Is(kerr, os.ErrNotExist) && cerr == nil:
		keyPEM = nil // the root is offline; an intermediate must sign
	case errors.Is(kerr, os.ErrNotExist) && errors.Is(cerr, os.ErrNotExist):
		for _, f := range []string{IntermediateCertFile, IntermediateKeyFile} {
			if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
				// The offline ceremony is under way: never make a root of our own beside it.
				return nil, fmt.Errorf("%w: %s holds %s but no root %s: install the intermediate (fleet-hub ca install --root)",
					ErrIncomplete, dir, f, CertFile)
			}
		}
		var err error
		if keyPEM, certPEM, err = createRoot(dir); err != nil {
			return nil, err
		}
	case kerr == nil:
		return nil, fmt.Errorf("%w: %s", ErrIncomplete, dir)
	default:
		return nil, fmt.Errorf("ca: read %s: %w", dir, errors.Join(kerr, cerr))
	}
	return load(dir, keyPEM, certPEM)
}

// createRoot makes a P-256 key and a self-signed root certificate in dir. The root may certify
// one intermediate below it (path length 1), so that it can go offline later.
func createRoot(dir string) (keyPEM, certPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: generate key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          mustSerial(),
		Subject:               pkix.Name{CommonName: "kioskfleet hub CA", Organization: []string{"kioskfleet"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(RootValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1, // SubjectKeyId is derived by x509 for CA templates
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: self-sign: %w", err)
	}
	keyPEM, err = marshalKey(key)
	if err != nil {
		return nil, nil, err
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := atomicfile.MkdirPrivate(dir); err != nil {
		return nil, nil, fmt.Errorf("ca: %w", err)
	}
	// The certificate is written last: a crash in between leaves ErrIncomplete, never a
	// certificate without its key.
	if err := atomicfile.WriteFile(filepath.Join(dir, KeyFile), keyPEM, 0o600); err != nil {
		return nil, nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, CertFile), certPEM, 0o600); err != nil { // the CA folder is the hub's alone
		return nil, nil, err
	}
	return keyPEM, certPEM, nil
}

func marshalKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("ca: marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// load builds the CA from its root certificate, the root key if it is online (keyPEM not nil)
// and the intermediate installed in dir, if any, which then signs.
func load(dir string, keyPEM, certPEM []byte) (*CA, error) {
	root, err := parseCert(certPEM)
	if err != nil {
		return nil, err
	}
	if !root.IsCA {
		return nil, fmt.Errorf("%w: root certificate is not a CA", ErrCorrupt)
	}
	pool := x509.NewCertPool()
	pool.AddCert(root)
	c := &CA{root: root, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw}), pool: pool, now: time.Now}
	if keyPEM != nil {
		if c.key, err = parseKey(keyPEM, root); err != nil {
			return nil, err
		}
		c.cert = root
	}
	inter, err := loadIntermediate(dir, pool)
	switch {
	case err == nil:
		c.key, c.cert, c.chain = inter.key, inter.cert, []*x509.Certificate{inter.cert}
	case !errors.Is(err, os.ErrNotExist):
		return nil, err
	case c.key == nil:
		return nil, fmt.Errorf("%w (%s): install the intermediate (fleet-hub ca install)", ErrNoSigningKey, dir)
	}
	return c, nil
}

func parseCert(certPEM []byte) (*x509.Certificate, error) {
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%w: not a PEM CERTIFICATE", ErrCorrupt)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return cert, nil
}

// parseKey parses a PKCS #8 ECDSA key that must belong to cert.
func parseKey(keyPEM []byte, cert *x509.Certificate) (*ecdsa.PrivateKey, error) {
	kb, _ := pem.Decode(keyPEM)
	if kb == nil || kb.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%w: not a PEM PRIVATE KEY", ErrCorrupt)
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: key is %T, want ECDSA", ErrCorrupt, k)
	}
	if cert != nil && !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("%w: key does not match certificate", ErrCorrupt)
	}
	return key, nil
}

// WithClock returns a CA sharing c's key that dates what it issues by now (tests use it to make
// expired certificates).
func (c *CA) WithClock(now func() time.Time) *CA {
	cp := *c
	cp.now = now
	return &cp
}

// CertPEM returns the root certificate as PEM: the trust anchor agents keep.
func (c *CA) CertPEM() []byte { return bytes.Clone(c.certPEM) }

// Certificate returns the parsed root certificate.
func (c *CA) Certificate() *x509.Certificate { return c.root }

// chainPEM is the PEM of the certificates a signed certificate is sent with.
func (c *CA) chainPEM() []byte {
	var b []byte
	for _, ic := range c.chain {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ic.Raw})...)
	}
	return b
}

// Pool returns a pool holding only the root certificate.
func (c *CA) Pool() *x509.CertPool { return c.pool.Clone() }

// SignCSR verifies csrPEM's self-signature and issues a client-authentication certificate for
// deviceID valid for validity. The CSR's subject and extensions are ignored: the certificate's
// CommonName is deviceID, its only extended key usage is ClientAuth, its serial is 128 random bits.
func (c *CA) SignCSR(csrPEM []byte, deviceID string, validity time.Duration) (Issued, error) {
	if !wire.ValidDeviceID(deviceID) {
		return Issued{}, fmt.Errorf("%w: %q", ErrBadDeviceID, deviceID)
	}
	if validity <= 0 || validity > MaxDeviceValidity {
		return Issued{}, fmt.Errorf("%w: %v not in (0, %v]", ErrBadValidity, validity, MaxDeviceValidity)
	}
	blk, rest := pem.Decode(csrPEM)
	switch {
	case blk == nil:
		return Issued{}, badCSR("no PEM block")
	case blk.Type != "CERTIFICATE REQUEST" && blk.Type != "NEW CERTIFICATE REQUEST":
		return Issued{}, badCSR("PEM block is %q, want CERTIFICATE REQUEST", blk.Type)
	case len(bytes.TrimSpace(rest)) > 0:
		return Issued{}, badCSR("trailing data after the PEM block")
	}
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if err != nil {
		return Issued{}, badCSR("parse: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return Issued{}, badCSR("signature: %v", err)
	}
	if err := checkPublicKey(csr.PublicKey); err != nil {
		return Issued{}, err
	}
	now := c.now()
	notAfter := now.Add(validity)
	if notAfter.After(c.cert.NotAfter) {
		notAfter = c.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          mustSerial(),
		Subject:               pkix.Name{CommonName: deviceID},
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, csr.PublicKey, c.key)
	if err != nil {
		return Issued{}, fmt.Errorf("ca: sign %s: %w", deviceID, err)
	}
	return Issued{
		CertPEM:  append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), c.chainPEM()...),
		Serial:   tmpl.SerialNumber.Text(16),
		NotAfter: tmpl.NotAfter.UTC().Truncate(time.Second),
	}, nil
}

func checkPublicKey(pub any) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if n := k.Curve.Params().Name; n != "P-256" && n != "P-384" {
			return badCSR("ECDSA curve %s, want P-256 or P-384", n)
		}
	case ed25519.PublicKey:
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return badCSR("RSA key of %d bits, want at least 2048", k.N.BitLen())
		}
	default:
		return badCSR("unsupported public key %T", pub)
	}
	return nil
}

// ServerTLSCert issues a fresh server certificate (new P-256 key) for the broker, with an IP SAN
// for every host that parses as an IP and a DNS SAN for every other one.
func (c *CA) ServerTLSCert(hosts []string) (tls.Certificate, error) {
	if len(hosts) == 0 {
		return tls.Certificate{}, errors.New("ca: server certificate needs at least one host")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("ca: generate key: %w", err)
	}
	now := c.now()
	tmpl := &x509.Certificate{
		SerialNumber:          mustSerial(),
		Subject:               pkix.Name{CommonName: hosts[0]},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(ServerValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	if tmpl.NotAfter.After(c.cert.NotAfter) {
		tmpl.NotAfter = c.cert.NotAfter
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, key.Public(), c.key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("ca: sign server certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("ca: %w", err)
	}
	chain := [][]byte{der}
	for _, ic := range c.chain {
		chain = append(chain, ic.Raw)
	}
	return tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf}, nil
}

// DeviceIDFromCert returns the device ID a client certificate names (its CommonName). It does not
// verify the chain: use it on certificates TLS has verified.
func DeviceIDFromCert(cert *x509.Certificate) (string, error) {
	if cert == nil {
		return "", fmt.Errorf("%w: no certificate", ErrNotDevice)
	}
	id := cert.Subject.CommonName
	if !wire.ValidDeviceID(id) {
		return "", fmt.Errorf("%w: common name %q is not a device id", ErrNotDevice, id)
	}
	for _, u := range cert.ExtKeyUsage {
		if u == x509.ExtKeyUsageClientAuth {
			return id, nil
		}
	}
	return "", fmt.Errorf("%w: %q lacks the clientAuth key usage", ErrNotDevice, id)
}

// Serial returns a certificate's serial number as lowercase hex, the form Issued.Serial has.
func Serial(cert *x509.Certificate) string { return cert.SerialNumber.Text(16) }

func mustSerial() *big.Int {
	for {
		n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
		if err != nil {
			panic("ca: crypto/rand failed: " + err.Error()) // crypto/rand does not fail on Linux
		}
		if n.Sign() > 0 {
			return n
		}
	}
}
