package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MetricsPath is where the agent serves its Prometheus metrics, on Config.MetricsAddr.
const MetricsPath = "/metrics"

// CheckMetricsAddr checks a --metrics-addr address: "" or "0" (off), or host:port on a loopback
// address: the figures are for a scraper on the kiosk (or a tunnel to it), not the network.
func CheckMetricsAddr(addr string) error {
	return checkLoopback("--metrics-addr", "the agent's metrics are served", "9101", addr)
}

// agentCollector reads the agent's figures at each scrape: the link, the outbox, the peripherals.
// Nothing about a citizen is in them: no card, no session, no record body.
type agentCollector struct{ a *Agent }

var (
	mInfo       = prometheus.NewDesc("kf_agent_info", "The agent's version (value 1).", []string{"version"}, nil)
	mUp         = prometheus.NewDesc("kf_agent_hub_connected", "1 while the agent holds an MQTT session with the hub.", nil, nil)
	mSessions   = prometheus.NewDesc("kf_agent_hub_sessions_total", "MQTT sessions with the hub since start.", nil, nil)
	mAcked      = prometheus.NewDesc("kf_agent_records_acked_total", "Records the hub acknowledged as committed since start.", nil, nil)
	mDepth      = prometheus.NewDesc("kf_agent_outbox_records", "Records in the outbox waiting for the hub's ack (tombstones included).", nil, nil)
	mBytes      = prometheus.NewDesc("kf_agent_outbox_bytes", "Size of the outbox's pending records, as charged against its cap.", nil, nil)
	mMaxBytes   = prometheus.NewDesc("kf_agent_outbox_max_bytes", "The outbox's size cap.", nil, nil)
	mOldest     = prometheus.NewDesc("kf_agent_outbox_oldest_seconds", "Age of the oldest pending record (0: empty).", nil, nil)
	mEvicted    = prometheus.NewDesc("kf_agent_outbox_evicted_total", "Telemetry records evicted to make room (this outbox epoch).", nil, nil)
	mRefused    = prometheus.NewDesc("kf_agent_outbox_refused_total", "Appends refused because the outbox was full (this outbox epoch).", nil, nil)
	mUptime     = prometheus.NewDesc("kf_agent_uptime_seconds", "Seconds since the agent started.", nil, nil)
	mPeripheral = prometheus.NewDesc("kf_agent_peripheral_status", "1 for each peripheral's current status (ok, degraded, fault, unknown; disconnected when not connected).",
		[]string{"peripheral", "class", "status"}, nil)
)

func (c agentCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{mInfo, mUp, mSessions, mAcked, mDepth, mBytes, mMaxBytes, mOldest, mEvicted, mRefused, mUptime, mPeripheral} {
		ch <- d
	}
}

func (c agentCollector) Collect(ch chan<- prometheus.Metric) {
	a := c.a
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	gauge(mInfo, 1, a.cfg.Version)
	up := 0.0
	if a.link.Connected() {
		up = 1
	}
	gauge(mUp, up)
	counter(mSessions, float64(a.link.Sessions()))
	counter(mAcked, float64(a.link.Acked()))
	s := a.ob.Stats()
	gauge(mDepth, float64(s.Depth))
	gauge(mBytes, float64(s.Bytes))
	gauge(mMaxBytes, float64(s.MaxBytes))
	gauge(mOldest, s.OldestAge.Seconds())
	counter(mEvicted, float64(s.Evicted))
	counter(mRefused, float64(s.Refused))
	gauge(mUptime, time.Since(a.started).Seconds())
	if a.devs != nil {
		for _, p := range a.devs.Snapshot().Devices {
			st := string(p.Status)
			if !p.Connected {
				st = "disconnected"
			}
			gauge(mPeripheral, 1, p.ID, p.Class, st)
		}
	}
}

// openMetrics listens on the metrics address, if one is set.
func (a *Agent) openMetrics() error {
	if LocalAPIOff(a.cfg.MetricsAddr) {
		return nil
	}
	if err := CheckMetricsAddr(a.cfg.MetricsAddr); err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	if err := errors.Join(reg.Register(collectors.NewGoCollector()),
		reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})), reg.Register(agentCollector{a})); err != nil {
		return fmt.Errorf("agent: metrics: %w", err)
	}
	ln, err := net.Listen("tcp", a.cfg.MetricsAddr)
	if err != nil {
		return fmt.Errorf("agent: metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+MetricsPath, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	a.prom, a.promLn = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, ln
	return nil
}

// MetricsAddr returns the address the metrics are served on ("" when off).
func (a *Agent) MetricsAddr() string {
	if a.promLn == nil {
		return ""
	}
	return a.promLn.Addr().String()
}

// serveMetrics serves the metrics until ctx is done.
func (a *Agent) serveMetrics(ctx context.Context) {
	a.log.Info("metrics served", "url", "http://"+a.MetricsAddr()+MetricsPath)
	served := make(chan error, 1)
	go func() { served <- a.prom.Serve(a.promLn) }()
	select {
	case err := <-served:
		a.log.Error("metrics stopped", "err", err)
		return
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = a.prom.Shutdown(sctx)
	<-served
}
