package broker

import (
	"fmt"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskfleet/kioskfleet/pkg/fleet"
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

	// Refusals that bound what the broker holds before it knows who is asking (issue 16).

	// ReasonCertRefused: TLS handshake refused for the certificate of a device the credentials
	// list as revoked, or a certificate they showed replaced (Config.Credentials).
	ReasonCertRefused Reason = "cert_refused"
	// ReasonAddrLimit and ReasonPendingLimit: a connection closed when accepted, as its client
	// address, or all of them together, held as many connections not yet admitted to a session
	// as Config.Pending allows.
	ReasonAddrLimit    Reason = "addr_limit"
	ReasonPendingLimit Reason = "pending_limit"
	// ReasonReplaced: a connection past its TLS handshake, not yet admitted, closed because a
	// newer connection of its device finished its handshake.
	ReasonReplaced Reason = "replaced"
	// ReasonConnectTimeout: TLS handshake and CONNECT not done within the connect timeout.
	ReasonConnectTimeout Reason = "connect_timeout"
)

var reasons = [...]Reason{ReasonTLS, ReasonConnectRefused, ReasonACLDenied, ReasonOversize, ReasonMalformed, ReasonProtocolVersion,
	ReasonRevoked, ReasonUnavailable, ReasonCertRefused, ReasonAddrLimit, ReasonPendingLimit, ReasonReplaced, ReasonConnectTimeout}

// flood reports whether a flood of connections makes refusals for r by the thousand (anyone
// can open connections; one certificate, even a revoked one, can complete handshakes), so that
// logging each would turn it into a flood of log lines.
func (r Reason) flood() bool {
	switch r {
	case ReasonTLS, ReasonCertRefused, ReasonAddrLimit, ReasonPendingLimit, ReasonReplaced, ReasonConnectTimeout, ReasonOversize:
		return true
	}
	return false
}

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

// Rejection is a refusal as Config.OnReject is told of it: why, of which device (when known),
// from which client address ("host:port", when known).
type Rejection struct {
	Reason   Reason
	DeviceID string
	Remote   string
	Detail   string
}

// attr returns the string value of key among slog-style attrs ("" if absent).
func attr(attrs []any, key string) string {
	for i := 0; i+1 < len(attrs); i += 2 {
		if k, ok := attrs[i].(string); ok && k == key {
			v, _ := attrs[i+1].(string)
			return v
		}
	}
	return ""
}

type counters [len(reasons)]atomic.Uint64

// inc counts a refusal for r and returns r's index in reasons (-1 for none).
func (c *counters) inc(r Reason) int {
	for i, x := range reasons {
		if x == r {
			c[i].Add(1)
			return i
		}
	}
	return -1
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
	descPending = prometheus.NewDesc("kioskfleet_broker_pending_connections",
		"MQTT connections accepted and not yet admitted to a session (TLS handshake, CONNECT, authorization).", nil, nil)
	descEnds = prometheus.NewDesc("kioskfleet_broker_session_ends_total",
		"Device sessions ended, by disconnect reason (clean, keepalive_timeout, network_reset, revoked, replaced, shutdown, protocol_error).",
		[]string{"reason"}, nil)
)

// Collector returns a prometheus.Collector for the broker's counters.
func (b *Broker) Collector() prometheus.Collector { return collector{b} }

type collector struct{ b *Broker }

var _ prometheus.Collector = collector{}

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descRejections
	ch <- descSessions
	ch <- descPending
	ch <- descEnds
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	for i, r := range reasons {
		ch <- prometheus.MustNewConstMetric(descRejections, prometheus.CounterValue, float64(c.b.counts[i].Load()), string(r))
	}
	c.b.mu.Lock()
	n := len(c.b.sessions)
	c.b.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(descSessions, prometheus.GaugeValue, float64(n))
	ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(c.b.pending.Held()))
	for i, r := range fleet.DisconnectReasons {
		ch <- prometheus.MustNewConstMetric(descEnds, prometheus.CounterValue, float64(c.b.ends[i].Load()), string(r))
	}
}
