package server

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// The HTTP side (API, OpenID Provider, enrollment, kiosk login) is served over TLS: with a
// certificate of the hub's CA for Config.Hosts, or with the operator's (Config.TLSCertFile and
// TLSKeyFile). Plain HTTP only on loopback, unless forced. Kiosks pin the root of the served chain
// (its "anchor") at enrollment, so the chain the hub serves always ends with it.

// reloadCheck is how often, at most, a handshake looks whether the operator's files changed.
const reloadCheck = 2 * time.Second

// servingCert is the certificate the HTTP side serves, and the CA kiosks pin.
type servingCert struct {
	certFile, keyFile string // empty: the hub's own certificate, never reloaded
	log               *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	anchor  *x509.Certificate
	stamp   string    // the files' sizes and modification times when last loaded
	checked time.Time // when the stamp was last compared
}

// ownServingCert serves the broker's certificate (issued by the hub's CA for Config.Hosts, with
// its intermediate if the root is offline) with the root's certificate appended, so that an
// enrolling kiosk sees the CA it pins.
func ownServingCert(leaf tls.Certificate, root *x509.Certificate) *servingCert {
	c := leaf
	c.Certificate = append(slices.Clone(leaf.Certificate), root.Raw)
	return &servingCert{cert: &c, anchor: root}
}

// loadServingCert loads the operator's certificate chain and key, and later reloads them when
// the files change.
func loadServingCert(certFile, keyFile string, log *slog.Logger) (*servingCert, error) {
	s := &servingCert{certFile: certFile, keyFile: keyFile, log: log}
	s.stamp = stampFiles(certFile, keyFile)
	var err error
	if s.cert, s.anchor, err = loadPair(certFile, keyFile); err != nil {
		return nil, err
	}
	s.checked = time.Now()
	return s, nil
}

// loadPair loads a PEM chain (server certificate first, then the CA certificates up to the one
// kiosks will pin) and its key, and checks that the chain holds together.
func loadPair(certFile, keyFile string) (*tls.Certificate, *x509.Certificate, error) {
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("tls cert %s, tls key %s: %w", certFile, keyFile, err)
	}
	if len(c.Certificate) < 2 {
		return nil, nil, fmt.Errorf("tls cert %s: holds only the server certificate: append the CA certificates of its chain, ending with the CA kiosks will pin and trust", certFile)
	}
	inter := x509.NewCertPool()
	var anchor *x509.Certificate
	for i, der := range c.Certificate[1:] {
		ca, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, nil, fmt.Errorf("tls cert %s: certificate %d: %w", certFile, i+2, err)
		}
		inter.AddCert(ca)
		anchor = ca
	}
	if !anchor.IsCA {
		return nil, nil, fmt.Errorf("tls cert %s: the last certificate (%s) is not a CA: end the chain with the CA kiosks will pin", certFile, anchor.Subject)
	}
	roots := x509.NewCertPool()
	roots.AddCert(anchor)
	if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return nil, nil, fmt.Errorf("tls cert %s: the server certificate does not chain to the file's last certificate: %w", certFile, err)
	}
	return &c, anchor, nil
}

func stampFiles(files ...string) string {
	var s string
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			s += fmt.Sprintf("%d@%d;", fi.Size(), fi.ModTime().UnixNano())
		}
		s += "|"
	}
	return s
}

// current returns the certificate and its anchor, reloading the operator's files first when they
// changed (looked at once per reloadCheck at most). A reload that fails is logged and the
// previous certificate kept.
func (s *servingCert) current() (*tls.Certificate, *x509.Certificate) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.certFile != "" && time.Since(s.checked) >= reloadCheck {
		s.checked = time.Now()
		if st := stampFiles(s.certFile, s.keyFile); st != s.stamp {
			s.stamp = st
			if c, a, err := loadPair(s.certFile, s.keyFile); err != nil {
				s.log.Warn("the certificate files changed but do not load; serving the previous certificate", "err", err)
			} else {
				if api.CAHash(a) != api.CAHash(s.anchor) {
					s.log.Warn("the reloaded chain ends with another CA: kiosks enrolled before trust the previous one", "ca", a.Subject.String())
				}
				s.cert, s.anchor = c, a
				s.log.Info("certificate reloaded", "file", s.certFile, "notAfter", c.Leaf.NotAfter)
			}
		}
	}
	return s.cert, s.anchor
}

// Anchor returns the CA kiosks pin: the last certificate of the served chain.
func (s *servingCert) Anchor() *x509.Certificate {
	_, a := s.current()
	return a
}

// config is the server TLS configuration of the HTTP listener (HTTP/2 offered; session
// resumption with Go's rotating ticket keys).
func (s *servingCert) config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			c, _ := s.current()
			return c, nil
		},
	}
}

// loopback reports whether addr (host:port) binds only this machine's loopback interface.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && api.LoopbackHost(host)
}

// covered checks that the certificate names the host of addr (host:port), as a client checking
// it with addr's host as server name requires.
func covered(leaf *x509.Certificate, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if err := leaf.VerifyHostname(host); err != nil {
		var names []string
		for _, ip := range leaf.IPAddresses {
			names = append(names, ip.String())
		}
		names = append(names, leaf.DNSNames...)
		return fmt.Errorf("its certificate names %v, not %q", names, host)
	}
	return nil
}
