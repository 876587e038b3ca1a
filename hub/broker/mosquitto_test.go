package broker_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/broker"
	"github.com/kioskfleet/kioskfleet/hub/broker/brokertest"
	"github.com/kioskfleet/kioskfleet/hub/ca/catest"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// TestMosquittoClients checks the broker against an independent MQTT implementation, Mosquitto's
// command-line clients (OpenSSL TLS): 3.1.1 publish and subscribe work, MQTT 5 is refused.
func TestMosquittoClients(t *testing.T) {
	pub, err1 := exec.LookPath("mosquitto_pub")
	sub, err2 := exec.LookPath("mosquitto_sub")
	if err1 != nil || err2 != nil {
		t.Skip("mosquitto-clients not installed (Debian package mosquitto-clients)")
	}
	env := brokertest.Start(t, brokertest.Options{})
	const id = "kiosk-m"
	dir := t.TempDir()
	cert, _ := catest.DeviceCert(t, env.CA, id, time.Hour)
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cafile := write("ca.pem", "CERTIFICATE", env.CA.Certificate().Raw)
	certfile := write("dev.pem", "CERTIFICATE", cert.Certificate[0])
	keyfile := write("dev.key", "PRIVATE KEY", keyDER)
	_, port, _ := net.SplitHostPort(env.Broker.Addr())
	args := func(version string, rest ...string) []string {
		return append([]string{"-h", "localhost", "-p", port, "--cafile", cafile, "--cert", certfile,
			"--key", keyfile, "-i", id, "-V", version}, rest...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	var up collector
	env.Broker.Subscribe(wire.Topic(id, wire.ChUp), up.handle)
	if out, err := exec.CommandContext(ctx, pub, args("mqttv311", "-t", wire.Topic(id, wire.ChUp), "-q", "1", "-m", "from-mosquitto")...).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub: %v: %s", err, out)
	}
	brokertest.Eventually(t, 5*time.Second, "inline subscriber sees mosquitto_pub", func() bool {
		return up.count(func(m msg) bool { return m.dev == id && m.payload == "from-mosquitto" }) == 1
	})

	// mosquitto_sub receives the hub's publish on its ack topic.
	cmd := exec.CommandContext(ctx, sub, args("mqttv311", "-t", wire.Topic(id, wire.ChAck), "-q", "1", "-C", "1", "-W", "15")...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	brokertest.Eventually(t, 10*time.Second, "mosquitto_sub connected", func() bool { return env.Broker.Connected(id) })
	// The subscription may land a moment after CONNECT: publish until it is received.
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var werr error
	for received := false; !received; {
		env.Broker.Publish(wire.Topic(id, wire.ChAck), []byte("to-mosquitto"), false, 1)
		select {
		case werr = <-done:
			received = true
		case <-time.After(50 * time.Millisecond):
		}
	}
	if werr != nil || strings.TrimSpace(out.String()) != "to-mosquitto" {
		t.Fatalf("mosquitto_sub: %v: %q", werr, out.String())
	}

	// MQTT 5 is refused with CONNACK 0x01 before mochi sees a byte of it.
	before := env.Broker.Stats()[broker.ReasonProtocolVersion]
	if out, err := exec.CommandContext(ctx, pub, args("mqttv5", "-t", wire.Topic(id, wire.ChUp), "-m", "v5")...).CombinedOutput(); err == nil {
		t.Fatalf("mosquitto_pub -V mqttv5 succeeded: %s", out)
	}
	if got := env.Broker.Stats()[broker.ReasonProtocolVersion]; got != before+1 {
		t.Fatalf("protocol_version counter %d, want %d", got, before+1)
	}
}
