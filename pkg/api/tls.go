package api

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
)

// The hub serves its HTTP side over TLS (docs/api.md, "TLS"). Clients trust the hub's CA; a kiosk
// learns it at enrollment by pinning it: every enrollment token carries the SHA-256 hash of the
// CA's public key, as kubeadm's --discovery-token-ca-cert-hash does, and the agent checks the hub
// against it before it sends the token.

// CAHashPrefix starts every CA pin as the API shows it: "sha256:" and 64 lowercase hex digits.
const CAHashPrefix = "sha256:"

// ErrBadEnrollToken marks a string that is not an enrollment token of the form EnrollToken has.
var ErrBadEnrollToken = errors.New("api: bad enrollment token")

// CAHash returns the pin of a CA certificate: "sha256:" and the hex SHA-256 of its
// SubjectPublicKeyInfo (the hash kubeadm pins; `openssl x509 -pubkey -noout -in ca.crt | openssl
// pkey -pubin -outform der | sha256sum` prints the same digits).
func CAHash(cert *x509.Certificate) string {
	h := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return CAHashPrefix + hex.EncodeToString(h[:])
}

// EnrollToken is a one-time enrollment token as fleetctl prints it and kiosk-agent enroll takes
// it: the secret the hub keeps the hash of, a dot, and the 64 hex digits of the CA pin,
// "kfe_<40 hex>.<64 hex>". One string carries both, so that a kiosk cannot be enrolled without
// the pin by mistake.
type EnrollToken struct {
	Secret string // what the agent sends to POST /api/v1/enroll
	CAHash string // "sha256:<64 hex>", see CAHash
}

// String returns the token as one string, "<secret>.<64 hex>".
func (t EnrollToken) String() string {
	return t.Secret + "." + strings.TrimPrefix(t.CAHash, CAHashPrefix)
}

// ParseEnrollToken splits a token into its secret and its CA pin. The secret is "kfe_" and hex
// digits; the pin 64 lowercase or uppercase hex digits, or "sha256:" and them.
func ParseEnrollToken(s string) (EnrollToken, error) {
	secret, pin, ok := strings.Cut(s, ".")
	if !ok {
		return EnrollToken{}, fmt.Errorf("%w: no CA pin (want kfe_<secret>.<64 hex digits>, as fleetctl tokens create prints it)", ErrBadEnrollToken)
	}
	hexSecret, isKFE := strings.CutPrefix(secret, "kfe_")
	if !isKFE || len(hexSecret) < 16 || len(hexSecret) > 128 || !isHex(hexSecret) {
		return EnrollToken{}, fmt.Errorf("%w: the part before the dot is not a kfe_ secret", ErrBadEnrollToken)
	}
	pin = strings.ToLower(strings.TrimPrefix(pin, CAHashPrefix))
	if len(pin) != 2*sha256.Size || !isHex(pin) {
		return EnrollToken{}, fmt.Errorf("%w: the CA pin after the dot is not 64 hex digits", ErrBadEnrollToken)
	}
	return EnrollToken{Secret: secret, CAHash: CAHashPrefix + pin}, nil
}

func isHex(s string) bool {
	for _, c := range []byte(s) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// LoopbackHost reports whether host (a name or an IP, no port) is this machine's loopback: the
// only place plain HTTP to the hub is accepted.
func LoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// LoadCA reads a PEM file of CA certificates (the hub's ca.crt) into a pool.
func LoadCA(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: no PEM certificate in it", file)
	}
	return pool, nil
}

// Transport returns an HTTP transport (HTTP/2, proxies from the environment, keep-alive, as
// http.DefaultTransport) that trusts roots for TLS; nil roots: the system's.
func Transport(roots *x509.CertPool) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	return t
}
