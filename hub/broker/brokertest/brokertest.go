// Package brokertest runs a real broker for tests: a fresh CA, a broker on 127.0.0.1:0 with mTLS,
// Authorize and Credentials callbacks backed by a registry with a revocation list, and paho MQTT
// 3.1.1 clients holding device certificates signed through the CA's CSR path.
package brokertest

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/kioskfleet/kioskfleet/hub/broker"
	"github.com/kioskfleet/kioskfleet/hub/ca"
	"github.com/kioskfleet/kioskfleet/hub/ca/catest"
)

// Env is a running broker with its CA and authorization list.
type Env struct {
	CA     *ca.CA
	Broker *broker.Broker
	Authz  *Authz
}

// Options adjust Start; the zero value is fine.
type Options struct {
	RecheckInterval time.Duration
	Credentials     bool // give the broker Authz.Credentials (recheck and TLS handshake check)
	OnSession       func(broker.SessionChange)
	Logger          *slog.Logger
	MaxPacketSize   int
	ConnectTimeout  time.Duration
	WriteTimeout    time.Duration
	Context         context.Context // cancelling it stops the broker; default Background
}

// Start runs a broker on 127.0.0.1:0 and closes it when the test ends.
func Start(t testing.TB, o Options) *Env {
	t.Helper()
	c := catest.New(t)
	srv, err := c.ServerTLSCert([]string{"127.0.0.1", "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	az := &Authz{}
	ctx := o.Context
	if ctx == nil {
		ctx = context.Background()
	}
	cfg := broker.Config{
		Addr:            "127.0.0.1:0",
		ClientCAs:       c.Pool(),
		Certificate:     srv,
		Authorize:       az.Authorize,
		OnSession:       o.OnSession,
		Logger:          o.Logger,
		RecheckInterval: o.RecheckInterval,
		MaxPacketSize:   o.MaxPacketSize,
		ConnectTimeout:  o.ConnectTimeout,
		WriteTimeout:    o.WriteTimeout,
	}
	if o.Credentials {
		cfg.Credentials = az.Credentials
	}
	b, err := broker.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return &Env{CA: c, Broker: b, Authz: az}
}

// Authz is a registry of devices: Authorize refuses revoked devices and allows everyone else (the
// zero value allows everyone); Credentials lists the devices DeviceTLS issued certificates to.
type Authz struct {
	mu        sync.Mutex
	revoked   map[string]bool
	serials   map[string]string // by device ID, the serial of the newest certificate DeviceTLS issued
	Calls     atomic.Int64      // Authorize calls
	BulkCalls atomic.Int64      // Credentials calls
}

// ErrRevoked is what Authorize returns for a revoked device.
var ErrRevoked = fmt.Errorf("brokertest: device revoked")

// Revoke makes Authorize refuse id from now on.
func (a *Authz) Revoke(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.revoked == nil {
		a.revoked = map[string]bool{}
	}
	a.revoked[id] = true
}

// Authorize is the broker.Config.Authorize callback.
func (a *Authz) Authorize(_ context.Context, id, _ string) error {
	a.Calls.Add(1)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.revoked[id] {
		return fmt.Errorf("%w: %s", ErrRevoked, id)
	}
	return nil
}

// Credentials is the broker.Config.Credentials callback: every device DeviceTLS issued a
// certificate to, with its newest one's serial.
func (a *Authz) Credentials(context.Context) ([]broker.Credential, error) {
	a.BulkCalls.Add(1)
	a.mu.Lock()
	defer a.mu.Unlock()
	var all []broker.Credential
	for id, serial := range a.serials {
		all = append(all, broker.Credential{DeviceID: id, Serial: serial, Revoked: a.revoked[id]})
	}
	return all, nil
}

func (a *Authz) issued(id, serial string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.serials == nil {
		a.serials = map[string]string{}
	}
	a.serials[id] = serial
}

// DeviceTLS returns a client TLS configuration holding a fresh certificate for id, which becomes
// id's current one.
func (e *Env) DeviceTLS(t testing.TB, id string) *tls.Config {
	t.Helper()
	cert, iss := catest.DeviceCert(t, e.CA, id, time.Hour)
	e.Authz.issued(id, iss.Serial)
	return catest.ClientConfig(e.CA, cert)
}

// ClientOptions are paho options for an MQTT 3.1.1 client of this broker with client ID id: no
// automatic reconnection, keep alive 30 s.
func (e *Env) ClientOptions(id string, tc *tls.Config) *paho.ClientOptions {
	return paho.NewClientOptions().
		AddBroker("ssl://" + e.Broker.Addr()).
		SetClientID(id).
		SetTLSConfig(tc).
		SetProtocolVersion(4).
		SetKeepAlive(30 * time.Second).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(5 * time.Second).
		SetCleanSession(true)
}

// Connect connects a paho client with o and disconnects it when the test ends. It returns the
// connect error instead of failing, so that tests can assert refusals.
func Connect(t testing.TB, o *paho.ClientOptions) (paho.Client, error) {
	t.Helper()
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, fmt.Errorf("brokertest: connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c, nil
}

// MustConnect connects device id with a fresh certificate and fails the test on error.
func (e *Env) MustConnect(t testing.TB, id string, adjust ...func(*paho.ClientOptions)) paho.Client {
	t.Helper()
	o := e.ClientOptions(id, e.DeviceTLS(t, id))
	for _, f := range adjust {
		f(o)
	}
	c, err := Connect(t, o)
	if err != nil {
		t.Fatalf("brokertest: connect %s: %v", id, err)
	}
	return c
}

// Wait waits for tok and returns its error.
func Wait(tok paho.Token) error {
	if !tok.WaitTimeout(10 * time.Second) {
		return fmt.Errorf("brokertest: token timed out")
	}
	return tok.Error()
}

// Eventually polls cond every 10 ms until it holds or d passes.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("brokertest: %s: not within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
