// Package ingesttest holds test helpers for the hub's ingest: a fake message bus that records what
// the hub publishes, lets a test publish as a device (handlers run synchronously on the caller's
// goroutine, as the embedded broker runs them on the device's read goroutine) and says which
// devices have a live session.
package ingesttest

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// Message is one message the hub published.
type Message struct {
	Topic   string
	Payload []byte
	Retain  bool
	QoS     byte
}

type sub struct {
	filter  string
	handler func(deviceID, topic string, payload []byte)
}

// Bus is a fake ingest.Bus and ingest.ConnectedChecker. The zero value is not usable; call NewBus.
type Bus struct {
	mu        sync.Mutex
	subs      []sub
	pubs      []Message
	connected map[string]bool
	changed   chan struct{} // closed and replaced on every publish
	failing   map[string]error
}

// NewBus returns an empty bus on which no device is connected.
func NewBus() *Bus {
	return &Bus{connected: map[string]bool{}, changed: make(chan struct{}), failing: map[string]error{}}
}

// Publish records a message from the hub, or returns the error set with FailPublish for its channel.
func (b *Bus) Publish(topic string, payload []byte, retain bool, qos byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ch, err := wire.ParseTopic(topic); err == nil && b.failing[string(ch)] != nil {
		return b.failing[string(ch)]
	}
	b.pubs = append(b.pubs, Message{Topic: topic, Payload: append([]byte(nil), payload...), Retain: retain, QoS: qos})
	close(b.changed)
	b.changed = make(chan struct{})
	return nil
}

// FailPublish makes publishes on channel ch fail with err (nil: succeed again).
func (b *Bus) FailPublish(ch wire.Channel, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failing[string(ch)] = err
}

// Subscribe registers handler for topics matching filter (MQTT wildcards + and #).
func (b *Bus) Subscribe(filter string, handler func(deviceID, topic string, payload []byte)) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.subs = append(b.subs, sub{filter, handler})
	return nil
}

// Inject delivers payload on topic as published by deviceID to every matching handler, on the
// caller's goroutine. It returns when the handlers have returned.
func (b *Bus) Inject(deviceID, topic string, payload []byte) {
	b.mu.Lock()
	var hs []func(string, string, []byte)
	for _, s := range b.subs {
		if Match(s.filter, topic) {
			hs = append(hs, s.handler)
		}
	}
	b.mu.Unlock()
	for _, h := range hs {
		h(deviceID, topic, payload)
	}
}

// Send injects v, encoded, on deviceID's own channel ch.
func (b *Bus) Send(deviceID string, ch wire.Channel, v any) {
	b.Inject(deviceID, wire.Topic(deviceID, ch), wire.Encode(v))
}

// Subscribed reports how many handlers are registered.
func (b *Bus) Subscribed() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

// SetConnected sets whether deviceID has a live session.
func (b *Bus) SetConnected(deviceID string, on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.connected[deviceID] = on
}

// Connected implements ingest.ConnectedChecker.
func (b *Bus) Connected(deviceID string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.connected[deviceID]
}

// Published returns the messages published so far on topic ("" for all), oldest first.
func (b *Bus) Published(topic string) []Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []Message
	for _, m := range b.pubs {
		if topic == "" || m.Topic == topic {
			out = append(out, m)
		}
	}
	return out
}

// Wait waits until cond holds for the messages published on topic ("" for all) and returns them;
// it fails the test after timeout.
func (b *Bus) Wait(t testing.TB, topic string, timeout time.Duration, cond func([]Message) bool) []Message {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		b.mu.Lock()
		changed := b.changed
		b.mu.Unlock()
		if ms := b.Published(topic); cond(ms) {
			return ms
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("ingesttest: condition on %q not met within %v; published there: %d messages", topic, timeout, len(b.Published(topic)))
			return nil
		}
	}
}

// Acks decodes the acks published to deviceID, oldest first.
func (b *Bus) Acks(t testing.TB, deviceID string) []wire.AckMsg {
	t.Helper()
	var out []wire.AckMsg
	for _, m := range b.Published(wire.Topic(deviceID, wire.ChAck)) {
		a, err := wire.DecodeAck(m.Payload)
		if err != nil {
			t.Fatalf("ingesttest: hub published an invalid ack: %v", err)
		}
		out = append(out, a)
	}
	return out
}

// WaitAck waits for an ack to deviceID of epoch up to upTo and returns every ack of the device.
func (b *Bus) WaitAck(t testing.TB, deviceID, epoch string, upTo uint64, timeout time.Duration) []wire.AckMsg {
	t.Helper()
	b.Wait(t, wire.Topic(deviceID, wire.ChAck), timeout, func(ms []Message) bool {
		for _, m := range ms {
			if a, err := wire.DecodeAck(m.Payload); err == nil && a.Epoch == epoch && a.UpTo == upTo {
				return true
			}
		}
		return false
	})
	return b.Acks(t, deviceID)
}

// Commands decodes the commands published to deviceID, oldest first.
func (b *Bus) Commands(t testing.TB, deviceID string) []wire.Command {
	t.Helper()
	var out []wire.Command
	for _, m := range b.Published(wire.Topic(deviceID, wire.ChCmd)) {
		c, err := wire.DecodeCommand(m.Payload)
		if err != nil {
			t.Fatalf("ingesttest: hub published an invalid command: %v", err)
		}
		out = append(out, c)
	}
	return out
}

// Desired decodes the desired-state messages published to deviceID, oldest first.
func (b *Bus) Desired(t testing.TB, deviceID string) []wire.Desired {
	t.Helper()
	var out []wire.Desired
	for _, m := range b.Published(wire.Topic(deviceID, wire.ChDesired)) {
		d, err := wire.DecodeDesired(m.Payload)
		if err != nil {
			t.Fatalf("ingesttest: hub published invalid desired state: %v", err)
		}
		out = append(out, d)
	}
	return out
}

// Match reports whether topic matches the MQTT filter ([MQTT-4.7.1]: '+' one level, '#' the rest).
func Match(filter, topic string) bool {
	fs, ts := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, f := range fs {
		if f == "#" {
			return true
		}
		if i >= len(ts) || (f != "+" && f != ts[i]) {
			return false
		}
	}
	return len(fs) == len(ts)
}
