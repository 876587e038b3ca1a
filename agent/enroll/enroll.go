// Package enroll gives a kiosk its identity: it generates the device's private key on the kiosk
// (the key never leaves it), sends a certificate request with a one-time enrollment token to the
// hub, and keeps the issued certificate, the hub's CA and the device ID in the agent's data folder.
// The token pins the hub's CA (api.EnrollToken): the hub is checked against the pin before the
// token is sent (pin.go), and the pinned CA is what the kiosk trusts on the hub's HTTPS side.
package enroll

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"

	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/atomicfile"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// Files in the data folder.
const (
	KeyFile      = "device.key"
	CertFile     = "device.crt"
	CAFile       = "hub-ca.crt"       // the hub's CA, which issued the device and broker certificates
	HubCAFile    = "hub-https-ca.crt" // the CA pinned at enrollment: the root of the hub's HTTPS chain
	IdentityFile = "identity.json"
)

var (
	// ErrEnrolled is returned when the data folder already holds an identity.
	ErrEnrolled = errors.New("enroll: this kiosk is already enrolled")
	// ErrNotEnrolled is returned by Load when there is no identity yet.
	ErrNotEnrolled = errors.New("enroll: this kiosk is not enrolled (run kiosk-agent enroll)")
)

// Identity is an enrolled kiosk's identity. A hub of several replicas has several addresses:
// the agent fails over between them (agent/link). Files written before the lists existed hold
// HubURL and MQTTAddr alone.
type Identity struct {
	DeviceID string `json:"deviceId"`
	HubURL   string `json:"hub"`  // the first of HubURLs
	MQTTAddr string `json:"mqtt"` // the first of MQTTAddrs
	// HubURLs are the base URLs of the hub's HTTP API (every replica's, or a load balancer's).
	HubURLs []string `json:"hubs,omitempty"`
	// MQTTAddrs are the host:port addresses of the hub's MQTT listeners.
	MQTTAddrs []string `json:"mqttAddrs,omitempty"`

	Cert  tls.Certificate `json:"-"`
	CA    *x509.CertPool  `json:"-"` // verifies the broker
	HubCA *x509.CertPool  `json:"-"` // verifies the hub's HTTPS side: the CA pinned at enrollment
}

// Enroll enrolls this kiosk with the hub at hubURLs (tried in turn until one answers: the
// replicas of one hub) using a one-time token and stores the identity in dir, with every URL.
// mqttOverride, if not empty, replaces the MQTT addresses the hub advertises.
//
// The token carries the pin of the hub's CA (api.EnrollToken). Over https:// the hub's
// certificate chain must hold that CA and chain to it, checked in the TLS handshake, before the
// token is sent; the CA is kept as the kiosk's trust anchor for the hub's HTTPS side. Plain
// http:// is refused unless the hub is on this machine's loopback; there the CA the hub shows
// (GET /api/v1/ca) is checked against the pin first, and the CA in its answer after. A hub
// failing the pin ends the enrollment: the next URL is tried only when one does not answer.
func Enroll(ctx context.Context, hubURLs []string, token, model, dir string, mqttOverride []string) (Identity, error) {
	if len(hubURLs) == 0 {
		return Identity{}, errors.New("enroll: no hub URL")
	}
	if _, err := os.Stat(filepath.Join(dir, IdentityFile)); err == nil {
		return Identity{}, fmt.Errorf("%w: %s exists", ErrEnrolled, filepath.Join(dir, IdentityFile))
	}
	tok, err := api.ParseEnrollToken(token)
	if err != nil {
		return Identity{}, fmt.Errorf("enroll: token: %w", err)
	}
	hubs := make([]*pinnedHub, len(hubURLs))
	for i, u := range hubURLs {
		if hubs[i], err = dialHub(u, tok.CAHash); err != nil {
			return Identity{}, err
		}
	}
	if err := atomicfile.MkdirPrivate(dir); err != nil {
		return Identity{}, fmt.Errorf("enroll: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Identity{}, fmt.Errorf("enroll: generate key: %w", err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "kiosk"}}, key)
	if err != nil {
		return Identity{}, fmt.Errorf("enroll: certificate request: %w", err)
	}
	var (
		hub *pinnedHub
		res api.Enrolled
	)
	for _, hub = range hubs {
		if err = hub.precheck(ctx); err == nil {
			res, err = hub.c.Enroll(ctx, api.Enroll{Token: tok.Secret, Model: model,
				CSR: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}))})
		}
		var ae *api.Error
		var pe *PinError
		if err == nil || errors.As(err, &ae) || errors.As(err, &pe) || ctx.Err() != nil {
			break // the hub answered (the token is spent or refused), or failed the pin
		}
	}
	if err != nil {
		var pe *PinError
		if errors.As(err, &pe) {
			return Identity{}, pe
		}
		return Identity{}, fmt.Errorf("enroll: %w", err)
	}
	if !wire.ValidDeviceID(res.DeviceID) {
		return Identity{}, fmt.Errorf("enroll: hub returned a bad device id %q", res.DeviceID)
	}
	anchor, err := hub.checkAnswer(res)
	if err != nil {
		return Identity{}, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return Identity{}, fmt.Errorf("enroll: %w", err)
	}
	brokers := res.MQTTAddrs
	if len(brokers) == 0 {
		brokers = []string{res.MQTTAddr} // a hub from before lists
	}
	if len(mqttOverride) > 0 {
		brokers = mqttOverride
	}
	idJSON, _ := json.MarshalIndent(Identity{DeviceID: res.DeviceID, HubURL: hubURLs[0], HubURLs: hubURLs,
		MQTTAddr: brokers[0], MQTTAddrs: brokers}, "", "  ")
	// The identity file is written last: its presence means enrollment completed.
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{KeyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600},
		{CertFile, []byte(res.Certificate), 0o600}, // the data folder is the agent's alone
		{CAFile, []byte(res.CACertificate), 0o600},
		{HubCAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: anchor.Raw}), 0o600},
		{IdentityFile, idJSON, 0o600},
	} {
		if err := atomicfile.WriteFile(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return Identity{}, fmt.Errorf("enroll: %w", err)
		}
	}
	return Load(dir)
}

// Load reads the identity from dir.
func Load(dir string) (Identity, error) {
	b, err := os.ReadFile(filepath.Join(dir, IdentityFile))
	if errors.Is(err, os.ErrNotExist) {
		return Identity{}, ErrNotEnrolled
	}
	if err != nil {
		return Identity{}, fmt.Errorf("enroll: %w", err)
	}
	var id Identity
	if err := json.Unmarshal(b, &id); err != nil {
		return Identity{}, fmt.Errorf("enroll: %s: %w", IdentityFile, err)
	}
	if len(id.MQTTAddrs) == 0 && id.MQTTAddr != "" {
		id.MQTTAddrs = []string{id.MQTTAddr}
	}
	if len(id.HubURLs) == 0 && id.HubURL != "" {
		id.HubURLs = []string{id.HubURL}
	}
	if !wire.ValidDeviceID(id.DeviceID) || len(id.MQTTAddrs) == 0 || slices.Contains(id.MQTTAddrs, "") {
		return Identity{}, fmt.Errorf("enroll: %s: device id or mqtt address missing", IdentityFile)
	}
	id.Cert, err = tls.LoadX509KeyPair(filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile))
	if err != nil {
		return Identity{}, fmt.Errorf("enroll: load certificate: %w", err)
	}
	ca, err := os.ReadFile(filepath.Join(dir, CAFile))
	if err != nil {
		return Identity{}, fmt.Errorf("enroll: %w", err)
	}
	id.CA = x509.NewCertPool()
	if !id.CA.AppendCertsFromPEM(ca) {
		return Identity{}, fmt.Errorf("enroll: %s holds no certificate", CAFile)
	}
	// Kiosks enrolled before the hub served HTTPS have no pinned CA: the hub's CA is the one its
	// own HTTPS certificate chains to.
	id.HubCA = id.CA
	if b, err := os.ReadFile(filepath.Join(dir, HubCAFile)); err == nil {
		id.HubCA = x509.NewCertPool()
		if !id.HubCA.AppendCertsFromPEM(b) {
			return Identity{}, fmt.Errorf("enroll: %s holds no certificate", HubCAFile)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return Identity{}, fmt.Errorf("enroll: %w", err)
	}
	return id, nil
}

// HTTPClient returns a client for the hub's HTTPS side (kiosk login, ...) that trusts only the CA
// pinned at enrollment.
func (id Identity) HTTPClient() *http.Client {
	return &http.Client{Transport: api.Transport(id.HubCA)}
}

// Signer returns the device's private key, e.g. to sign kiosk login assertions.
func (id Identity) Signer() *ecdsa.PrivateKey {
	k, _ := id.Cert.PrivateKey.(*ecdsa.PrivateKey)
	return k
}

// SetBrokers replaces the MQTT addresses (an override: a proxy, another load balancer).
func (id *Identity) SetBrokers(addrs []string) {
	if len(addrs) > 0 {
		id.MQTTAddr, id.MQTTAddrs = addrs[0], addrs
	}
}

// TLSConfig returns the client TLS configuration for the hub's MQTT listeners. It names no
// server: the link checks each listener's certificate for the host it dials.
func (id Identity) TLSConfig() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{id.Cert},
		RootCAs:      id.CA,
		MinVersion:   tls.VersionTLS12,
		// Reconnects resume the TLS session (no signatures): cheap for the hub when a whole fleet
		// reconnects at once. The hub keeps its ticket keys across restarts.
		ClientSessionCache: tls.NewLRUClientSessionCache(4),
	}
}
