package fleetsim

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// MQTTConfig describes a plain MQTT fan-in load against any broker (no TLS, no hub): the same
// batch payloads the agents send, published at QoS 1 by many clients and consumed by one
// subscriber, so that a reference broker such as Mosquitto can be measured with the same generator.
type MQTTConfig struct {
	Broker       string // host:port
	Clients      int
	BatchRecords int
	Size         int
	Duration     time.Duration
	MaxInflight  int // unacked publishes per client (default 8)
}

// MQTTResult is what an MQTT load run measured.
type MQTTResult struct {
	Clients          int     `json:"clients"`
	Published        uint64  `json:"published"` // messages PUBACKed by the broker
	Received         uint64  `json:"received"`  // messages delivered to the subscriber
	RecordsPerSecond float64 `json:"recordsPerSecond"`
	Seconds          float64 `json:"seconds"`
}

// RunMQTT runs the plain MQTT load.
func RunMQTT(ctx context.Context, cfg MQTTConfig) (MQTTResult, error) {
	if cfg.BatchRecords <= 0 {
		cfg.BatchRecords = 100
	}
	if cfg.MaxInflight <= 0 {
		cfg.MaxInflight = 8
	}
	if cfg.Size <= 0 {
		cfg.Size = 200
	}
	body := makeBody(cfg.Size)
	recs := make([]wire.Record, cfg.BatchRecords)
	for i := range recs {
		recs[i] = wire.Record{Seq: uint64(i + 1), Kind: "sim", Class: wire.Business, TS: 1, Body: body}
	}
	payload := wire.Encode(wire.Batch{V: wire.Version, Epoch: "ref", Records: recs})

	var received atomic.Uint64
	sub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + cfg.Broker).SetClientID("fleetsim-sub").
		SetProtocolVersion(4).SetCleanSession(true).SetOrderMatters(false).SetMessageChannelDepth(100000))
	if t := sub.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return MQTTResult{}, fmt.Errorf("fleetsim: subscriber connect: %v", t.Error())
	}
	defer sub.Disconnect(100)
	if t := sub.Subscribe(wire.Filter(wire.ChUp), 1, func(mqtt.Client, mqtt.Message) { received.Add(1) }); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return MQTTResult{}, fmt.Errorf("fleetsim: subscribe: %v", t.Error())
	}
	clients := make([]mqtt.Client, cfg.Clients)
	for i := range clients {
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + cfg.Broker).SetClientID(fmt.Sprintf("sim-%05d", i)).
			SetProtocolVersion(4).SetCleanSession(true))
		if t := c.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
			return MQTTResult{}, fmt.Errorf("fleetsim: client %d connect: %v", i, t.Error())
		}
		clients[i] = c
	}
	defer func() {
		for _, c := range clients {
			c.Disconnect(50)
		}
	}()
	var published atomic.Uint64
	lctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	start := time.Now()
	recvStart := received.Load()
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			topic := wire.Topic(fmt.Sprintf("sim-%05d", i), wire.ChUp)
			window := make(chan mqtt.Token, cfg.MaxInflight)
			for lctx.Err() == nil {
				t := c.Publish(topic, 1, false, payload)
				select {
				case window <- t:
				default:
					old := <-window
					old.WaitTimeout(10 * time.Second)
					if old.Error() == nil {
						published.Add(1)
					}
					window <- t
				}
			}
			close(window)
			for t := range window {
				if t.WaitTimeout(10*time.Second) && t.Error() == nil {
					published.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	// Let deliveries in flight arrive.
	deadline := time.Now().Add(10 * time.Second)
	for received.Load()-recvStart < published.Load() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	res := MQTTResult{Clients: cfg.Clients, Published: published.Load(), Received: received.Load() - recvStart, Seconds: secs}
	res.RecordsPerSecond = float64(res.Received) * float64(cfg.BatchRecords) / secs
	return res, nil
}
