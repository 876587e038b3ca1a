package enroll

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/kioskfleet/kioskfleet/pkg/api"
)

var (
	// ErrPinMismatch marks a hub whose CA is not the one the enrollment token pins; the
	// *PinError says what the hub showed.
	ErrPinMismatch = errors.New("enroll: CA pin mismatch")
	// ErrInsecureHub marks a hub URL enrollment refuses: plain http:// to another machine, or no
	// http(s) URL at all.
	ErrInsecureHub = errors.New("enroll: refused hub URL")
)

// PinError says how the hub failed the token's CA pin. It matches ErrPinMismatch.
type PinError struct {
	Hub       string   // the hub URL
	Want      string   // the token's pin
	Got       []string // the pins of the CA certificates the hub showed
	Reason    string
	TokenSent bool // false: the token never left the kiosk
}

func (e *PinError) Error() string {
	got := "none"
	if len(e.Got) > 0 {
		got = strings.Join(e.Got, ", ")
	}
	sent := "the token was not sent"
	if e.TokenSent {
		sent = "nothing was saved; revoke the token (it went to that hub)"
	}
	return fmt.Sprintf("enroll: CA pin mismatch: %s %s; the token pins %s, the hub showed %s. It is not the hub the token "+
		"was made for, or something on the way intercepts the connection; %s", e.Hub, e.Reason, e.Want, got, sent)
}

// Is makes errors.Is(err, ErrPinMismatch) true.
func (e *PinError) Is(target error) bool { return target == ErrPinMismatch }

// pinnedHub is a connection to the hub being enrolled with, checked against the token's pin.
type pinnedHub struct {
	url, pin string
	plain    bool // http:// on loopback: no TLS to check, the shown CA is checked instead
	c        *api.Client

	mu     sync.Mutex
	anchor *x509.Certificate   // the pinned CA, once the hub showed it
	chain  []*x509.Certificate // the hub's HTTPS certificate and the chain it came with (not on plain)
}

// dialHub prepares the calls to the hub at hubURL for a token pinning pin.
func dialHub(hubURL, pin string) (*pinnedHub, error) {
	u, err := url.Parse(hubURL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("%w: %q: want https://host[:port]", ErrInsecureHub, hubURL)
	}
	h := &pinnedHub{url: strings.TrimRight(hubURL, "/"), pin: pin, plain: u.Scheme == "http"}
	if h.plain && !api.LoopbackHost(u.Hostname()) {
		return nil, fmt.Errorf("%w: %s: plain HTTP to a hub that is not on this machine: the token, and the certificate "+
			"the hub answers with, would cross the network unprotected; use the hub's https:// URL", ErrInsecureHub, hubURL)
	}
	t := api.Transport(nil)
	t.TLSClientConfig = &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Not the system's roots: the chain is checked against the token's pin instead, below,
		// before any request (and so the token) is sent.
		InsecureSkipVerify: true,
		VerifyConnection:   h.verify,
	}
	h.c = &api.Client{BaseURL: h.url, HTTP: &http.Client{Transport: t}}
	return h, nil
}

// verify is the TLS handshake's check of the hub's chain: it must hold a CA certificate whose
// key hash is the pin, and the hub's certificate must chain to that CA and name the host dialled
// (RFC 5280 path validation with the pinned CA as the only trust anchor).
func (h *pinnedHub) verify(cs tls.ConnectionState) error {
	anchor, err := verifyPinned(cs.PeerCertificates, cs.ServerName, h.pin)
	if err != nil {
		err.Hub = h.url
		return err
	}
	h.mu.Lock()
	h.anchor, h.chain = anchor, cs.PeerCertificates
	h.mu.Unlock()
	return nil
}

func verifyPinned(chain []*x509.Certificate, serverName, pin string) (*x509.Certificate, *PinError) {
	pe := &PinError{Want: pin}
	if len(chain) == 0 {
		pe.Reason = "presented no certificate"
		return nil, pe
	}
	inter := x509.NewCertPool()
	var anchor *x509.Certificate
	for _, c := range chain[1:] {
		if !c.IsCA {
			continue
		}
		h := api.CAHash(c)
		pe.Got = append(pe.Got, h)
		if h == pin && anchor == nil {
			anchor = c
		} else {
			inter.AddCert(c)
		}
	}
	if anchor == nil {
		pe.Reason = "presented no CA certificate with the pinned key"
		return nil, pe
	}
	roots := x509.NewCertPool()
	roots.AddCert(anchor)
	if _, err := chain[0].Verify(x509.VerifyOptions{DNSName: serverName, Roots: roots, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		pe.Reason = fmt.Sprintf("presented the pinned CA, but a server certificate it does not vouch for (%v)", err)
		return nil, pe
	}
	return anchor, nil
}

// precheck, on a plain-HTTP loopback hub, fetches the CA the hub shows and checks it against the
// pin before the token is sent. (It catches a wrong hub or a relay that rewrites answers; over
// plain HTTP it cannot catch one that relays this request untouched: that is what TLS is for.)
// Over TLS the handshake has checked it already.
func (h *pinnedHub) precheck(ctx context.Context) error {
	if !h.plain {
		return nil
	}
	ca, err := h.c.CA(ctx)
	if err != nil {
		return fmt.Errorf("enroll: the hub's CA: %w", err)
	}
	cert, err := parseCA(ca.Certificate)
	if err != nil {
		return fmt.Errorf("enroll: the hub's CA: %w", err)
	}
	if got := api.CAHash(cert); got != h.pin {
		return &PinError{Hub: h.url, Want: h.pin, Got: []string{got}, Reason: "shows a CA (GET /api/v1/ca) without the pinned key"}
	}
	h.anchor = cert
	return nil
}

// checkAnswer checks the enrollment answer and returns the CA to keep as the hub's HTTPS trust
// anchor. Over TLS the answer is the pinned hub's; over plain HTTP its CA must bear the pin too.
// The hub issues its own HTTPS certificate for the same hosts as its broker's: when the HTTPS
// certificate is of the answer's CA, it must name the MQTT host the answer gives.
func (h *pinnedHub) checkAnswer(res api.Enrolled) (*x509.Certificate, error) {
	h.mu.Lock()
	anchor, chain := h.anchor, h.chain
	h.mu.Unlock()
	ca, err := parseCA(res.CACertificate)
	if err != nil {
		return nil, fmt.Errorf("enroll: the hub's answer: CA certificate: %w", err)
	}
	if h.plain {
		if got := api.CAHash(ca); got != h.pin {
			return nil, &PinError{Hub: h.url, Want: h.pin, Got: []string{got}, Reason: "answered with a CA without the pinned key", TokenSent: true}
		}
	}
	addrs := res.MQTTAddrs
	if len(addrs) == 0 {
		addrs = []string{res.MQTTAddr} // a hub from before lists
	}
	for _, addr := range addrs {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("enroll: the hub's answer: mqtt address %q: %w", addr, err)
		}
		if len(chain) > 0 && issuedBy(chain, ca) {
			if err := chain[0].VerifyHostname(host); err != nil {
				return nil, fmt.Errorf("enroll: the hub's answer: mqtt address %s: the hub's certificate does not name %q (the hub issues its "+
					"broker's certificate for the same hosts): %w", addr, host, err)
			}
		}
	}
	if anchor == nil {
		return nil, fmt.Errorf("%w: %s: no pinned CA after the answer", ErrPinMismatch, h.url) // cannot happen: verify or precheck ran
	}
	return anchor, nil
}

// issuedBy reports whether chain[0] chains to ca through the rest of chain.
func issuedBy(chain []*x509.Certificate, ca *x509.Certificate) bool {
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(ca)
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	return err == nil
}

func parseCA(certPEM string) (*x509.Certificate, error) {
	blk, _ := pem.Decode([]byte(certPEM))
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, err
	}
	if !c.IsCA {
		return nil, errors.New("not a CA certificate")
	}
	return c, nil
}
