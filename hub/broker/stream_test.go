package broker_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/broker/brokertest"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// readPacket reads one MQTT packet: its first byte and its body.
func readPacket(r *bufio.Reader) (byte, []byte, error) {
	first, err := r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n := 0
	for shift := 0; ; shift += 7 {
		c, err := r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n |= int(c&0x7f) << shift
		if c&0x80 == 0 {
			break
		}
	}
	body := make([]byte, n)
	_, err = io.ReadFull(r, body)
	return first, body, err
}

// rawSession opens an MQTT 3.1.1 session for id with keep alive keepAlive (seconds), subscribed
// to its ack topic at QoS 1.
func rawSession(t *testing.T, env *brokertest.Env, id string, keepAlive byte) (*tls.Conn, *bufio.Reader) {
	t.Helper()
	c, err := tls.Dial("tcp", env.Broker.Addr(), env.DeviceTLS(t, id))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(c)
	expect := func(what string, want []byte) {
		t.Helper()
		first, body, err := readPacket(r)
		if got := append([]byte{first}, body...); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: got %x, %v; want %x", what, got, err, want)
		}
	}
	c.Write(packet(0x10, append(str("MQTT"), 4, 0x02, 0, keepAlive), str(id)))
	expect("CONNACK", []byte{0x20, 0, 0})
	c.Write(packet(0x82, []byte{0, 1}, str(wire.Topic(id, wire.ChAck)), []byte{1}))
	expect("SUBACK", []byte{0x90, 0, 1, 1})
	return c, r
}

// TestBlockedReaderKeepsTheStream reproduces the "local error: tls: bad record MAC" kiosks saw in
// reconnect storms. A bus handler holds a device's read goroutine (ingest's backpressure while the
// committer is behind) past mochi's keep-alive deadline, which mochi sets with SetDeadline: on
// reads and writes. The hub's ack to that device then failed to write, after crypto/tls had
// already spent a record sequence number on it; the connection was broken for good (acks
// silently dropped), and when mochi closed it at the next PINGRESP, tls.Conn.Close sent its
// close_notify under the next sequence number, which the kiosk could not authenticate.
//
// The ack must reach the device while its read goroutine is blocked, and the session must go on
// after the handler returns.
func TestBlockedReaderKeepsTheStream(t *testing.T) {
	env := brokertest.Start(t, brokertest.Options{})
	const id = "kiosk-blocked"
	entered := make(chan time.Time, 1)
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	env.Broker.Subscribe(wire.Topic(id, wire.ChUp), func(string, string, []byte) {
		entered <- time.Now()
		<-release
	})

	// Keep alive 1 s: mochi's deadline is 1 s after it starts reading each packet.
	c, r := rawSession(t, env, id, 1)
	c.Write(publish(wire.Topic(id, wire.ChUp), 0, 0, []byte("batch")))
	at := <-entered
	// The deadline was set before the PUBLISH was read, so it has passed 1 s after the handler
	// started: wait for that moment, not for a guess.
	<-time.After(time.Until(at.Add(time.Second + 100*time.Millisecond)))
	if err := env.Broker.Publish(wire.Topic(id, wire.ChAck), []byte("ack-1"), false, 1); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	first, body, err := readPacket(r)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	topic := str(wire.Topic(id, wire.ChAck))
	if err != nil || first != 0x32 || len(body) != len(topic)+2+len("ack-1") || !bytes.HasPrefix(body, topic) || !bytes.HasSuffix(body, []byte("ack-1")) {
		t.Errorf("ack published while the device's reader was blocked: got %#x %x, %v", first, body, err)
	} else {
		c.Write(append([]byte{0x40, 2}, body[len(topic):len(topic)+2]...)) // PUBACK
	}
	c.Write([]byte{0xc0, 0}) // PINGREQ, read once the handler returns
	unblock()
	if first, body, err := readPacket(r); err != nil || first != 0xd0 || len(body) != 0 {
		t.Fatalf("PINGRESP after the handler returned: got %#x %x, %v", first, body, err)
	}
}

// TestStalledDeviceIsCut: a device that stops reading is cut once a write to it has waited the
// write timeout, and what it reads before the end is whole records: never a record it cannot
// authenticate.
func TestStalledDeviceIsCut(t *testing.T) {
	env := brokertest.Start(t, brokertest.Options{WriteTimeout: 200 * time.Millisecond})
	const id = "kiosk-stalled"
	c, r := rawSession(t, env, id, 30)
	// Fill the socket buffers: mochi queues these and its write loop blocks on the device.
	big := bytes.Repeat([]byte("x"), 64<<10)
	for range 150 {
		env.Broker.Publish(wire.Topic(id, wire.ChAck), big, false, 0)
	}
	brokertest.Eventually(t, 10*time.Second, "stalled device cut", func() bool { return !env.Broker.Connected(id) })
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var err error
	n := 0
	for ; err == nil; n++ {
		_, _, err = readPacket(r)
	}
	if err.Error() == "local error: tls: bad record MAC" || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("after %d packets: %v", n, err)
	}
	t.Logf("the device read %d packets, then %v", n-1, err)
}
