package broker

import (
	"fmt"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Reason names why the broker refused a connection, a packet or a session; each has a counter.
type Reason string

// Reasons, also the values of the "reason" label of the rejection counter.
const (
	ReasonTLS             Reason = "tls_refused"      // TLS handshake failed: no, expired or foreign certificate
	ReasonConnectRefused  Reason = "connect_refused"  // CONNECT refused: client ID is not the certificate's device, Authorize failed, no keep alive
	ReasonACLDenied       Reason = "acl_denied"       // publish, subscribe or Will outside the device's own topics
	ReasonOversize        Reason = "oversize"         // packet announced above the maximum packet size
	ReasonMalformed       Reason = "malformed"        // packet that breaks MQTT 3.1.1 or the QoS 0/1 profile
	ReasonProtocolVersion Reason = "protocol_version" // CONNECT for anything but MQTT 3.1.1
	// ReasonUnavailable: a connection refused for load, not for cause: no handshake slot in time,
	// no authorization verdict in time, or the device's previous session not ended in time. The
	// device gets CONNACK 0x03 where it can (after TLS) and may retry soon.
	ReasonUnavailable Reason = "unavailable"
	ReasonRevoked     Reason = "revoked" // live session cut by Disconnect or the recheck loop
)

var reasons = []Reason{ReasonTLS, ReasonConnectRefused, ReasonACLDenied, ReasonOversize, ReasonMalformed, ReasonProtocolVersion, ReasonRevoked, ReasonUnavailable}

// Violation is a refusal by the broker's framing guard or hooks. It is the error a refused
// connection ends with.
type Violation struct {
	Reason Reason
	Detail string
}

func (v *Violation) Error() string { return "broker: " + string(v.Reason) + ": " + v.Detail }

func violation(r Reason, format string, a ...any) *Violation {
	return &Violation{Reason: r, Detail: fmt.Sprintf(format, a...)}
}

type counters [8]atomic.Uint64

func (c *counters) inc(r Reason) {
	for i, x := range reasons {
		if x == r {
			c[i].Add(1)
			return
		}
	}
}

// Stats returns a snapshot of the rejection counters by reason; every reason is present.
func (b *Broker) Stats() map[Reason]uint64 {
	m := make(map[Reason]uint64, len(reasons))
	for i, r := range reasons {
		m[r] = b.counts[i].Load()
	}
	return m
}

var (
	descRejections = prometheus.NewDesc("kioskfleet_broker_rejections_total",
		"Connections, packets and sessions the MQTT broker refused, by reason.", []string{"reason"}, nil)
	descSessions = prometheus.NewDesc("kioskfleet_broker_sessions",
		"Devices with a live MQTT session.", nil, nil)
)

// Collector returns a prometheus.Collector for the broker's counters.
func (b *Broker) Collector() prometheus.Collector { return collector{b} }

type collector struct{ b *Broker }

var _ prometheus.Collector = collector{}

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descRejections
	ch <- descSessions
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	for i, r := range reasons {
		ch <- prometheus.MustNewConstMetric(descRejections, prometheus.CounterValue, float64(c.b.counts[i].Load()), string(r))
	}
	c.b.mu.Lock()
	n := len(c.b.sessions)
	c.b.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(descSessions, prometheus.GaugeValue, float64(n))
}
