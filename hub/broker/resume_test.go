package broker_test

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/broker"
	"github.com/kioskfleet/kioskfleet/hub/broker/brokertest"
	"github.com/kioskfleet/kioskfleet/hub/ca/catest"
)

// A kiosk that reconnects resumes its TLS session, also with a restarted broker that shares the
// session-ticket secret: the abbreviated handshake is what keeps a fleet-wide reconnect cheap.
// The resumed session still carries the device's certificate, so identity checks hold.
func TestSessionResumptionAcrossRestart(t *testing.T) {
	c := catest.New(t)
	srv, err := c.ServerTLSCert([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	start := func() *broker.Broker {
		b, err := broker.Start(context.Background(), broker.Config{Addr: "127.0.0.1:0", ClientCAs: c.Pool(), Certificate: srv,
			Authorize: (&brokertest.Authz{}).Authorize, SessionTicketSecret: []byte("0123456789abcdef0123456789abcdef")})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cert, _ := catest.DeviceCert(t, c, "k-resume", time.Hour)
	cfg := catest.ClientConfig(c, cert)
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	dial := func(b *broker.Broker) tls.ConnectionState {
		t.Helper()
		conn, err := tls.Dial("tcp", b.Addr(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		// TLS 1.3 tickets arrive after the handshake: read until the broker hangs up (no CONNECT
		// comes, so it closes at its connect timeout) or a moment passes.
		conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		conn.Read(make([]byte, 1))
		return conn.ConnectionState()
	}
	b1 := start()
	if st := dial(b1); st.DidResume {
		t.Fatal("first connection resumed a session it never had")
	}
	if st := dial(b1); !st.DidResume || len(st.PeerCertificates) == 0 {
		t.Fatalf("second connection: resumed=%v peer certs=%d", st.DidResume, len(st.PeerCertificates))
	}
	b1.Close()
	b2 := start()
	defer b2.Close()
	if st := dial(b2); !st.DidResume {
		t.Fatal("no resumption with a restarted broker holding the same ticket secret")
	}
	// An MQTT session over a resumed TLS session: the broker still knows the device from the
	// certificate the ticket carries, and lets it in under its own client ID only.
	env := &brokertest.Env{CA: c, Broker: b2}
	if _, err := brokertest.Connect(t, env.ClientOptions("k-resume", cfg)); err != nil {
		t.Fatalf("MQTT over a resumed session: %v", err)
	}
	if _, err := brokertest.Connect(t, env.ClientOptions("k-other", cfg)); err == nil {
		t.Fatal("a resumed session connected under another device's client ID")
	}
}
