package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskfleet/kioskfleet/hub/proxyproto"
	"github.com/kioskfleet/kioskfleet/hub/ratelimit"
	"github.com/kioskfleet/kioskfleet/pkg/logging"
)

// balancers are the L4 load balancers whose connections carry a PROXY protocol v2 header
// (Config.ProxyProtocolFrom): the hub's listeners read it, and refuse it from anyone else.
type balancers struct {
	trusted []netip.Prefix
	refused *prometheus.CounterVec
	log     *slog.Logger
	logs    map[string]*logging.Throttle // by listener: a misconfigured balancer is refused at every connection
}

func newBalancers(from []string, reg prometheus.Registerer, log *slog.Logger) (*balancers, error) {
	trusted, _ := ratelimit.ParsePrefixes(from) // validated up front
	b := &balancers{trusted: trusted, log: log, logs: map[string]*logging.Throttle{},
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kf_proxy_protocol_refused_total",
			Help: "Connections refused for their PROXY protocol header (one from a peer not configured as a load balancer, " +
				"none or a malformed one from a load balancer), by listener and reason."}, []string{"listener", "reason"})}
	for _, l := range []string{"mqtt", "http"} {
		b.logs[l] = &logging.Throttle{}
		for _, r := range proxyproto.Reasons {
			b.refused.WithLabelValues(l, r)
		}
	}
	if err := reg.Register(b.refused); err != nil {
		return nil, fmt.Errorf("hub: metrics: %w", err)
	}
	if len(trusted) > 0 {
		log.Info("PROXY protocol v2 headers taken from these load balancers only, and required from them", "from", trusted)
	}
	return b, nil
}

// listen listens on addr for listener name ("mqtt" or "http"), reading the PROXY protocol
// headers of the configured load balancers' connections, and refusing (counted, logged) a
// header from anyone else, also when none is configured.
func (b *balancers) listen(name, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return proxyproto.Listen(ln, proxyproto.Config{Trusted: b.trusted, OnRefuse: func(peer net.Addr, err error) {
		reason := proxyproto.Reason(err)
		b.refused.WithLabelValues(name, reason).Inc()
		b.logs[name].Log(context.Background(), b.log, slog.LevelWarn, "connection refused: PROXY protocol",
			"listener", name, "remote", peer.String(), "reason", reason, "err", err)
	}}), nil
}
