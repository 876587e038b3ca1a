package ingest

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	records, batches, commits, rejects atomic.Uint64

	recordsC     prometheus.Counter
	commitsC     prometheus.Counter
	commitErrors prometheus.Counter
	commitTime   prometheus.Histogram
	rejectedC    *prometheus.CounterVec
	// Per batch, by lane (fast, bulk): receipt to the start of its commit, and to its ack.
	queueTime, ackTime *prometheus.HistogramVec
	queueBy, ackBy     [2]prometheus.Observer // bulk, fast
	// From the notice that a device has new commands to each stage of sending them.
	downlinkTime *prometheus.HistogramVec
	downlinkBy   [stages]prometheus.Observer
	// From a presence change seen by the hub to its write to the store (after which the feed
	// tells live viewers): how stale the fleet's presence is, in a reconnect storm above all.
	presenceTime prometheus.Histogram
}

// The stages of sending a device its commands after a notice (kf_downlink_seconds).
type stage int

const (
	stageTaken     stage = iota // a worker took the notice
	stageFetched                // the pending commands read from the store
	stagePublished              // published to the device
	stageMarked                 // marked delivered
	stages
)

var stageNames = [stages]string{"taken", "fetched", "published", "marked"}

func newMetrics() *metrics {
	latency := prometheus.ExponentialBuckets(0.001, 2, 14) // 1 ms .. 8 s
	m := &metrics{
		recordsC: prometheus.NewCounter(prometheus.CounterOpts{Name: "kf_ingest_records_total",
			Help: "Uplink records received in committed batches (duplicates included)."}),
		commitsC: prometheus.NewCounter(prometheus.CounterOpts{Name: "kf_ingest_commits_total",
			Help: "Group commits."}),
		commitErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "kf_ingest_commit_errors_total",
			Help: "Group commits that failed (nothing acked)."}),
		commitTime: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "kf_ingest_commit_seconds",
			Help: "Time to commit one group.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		rejectedC: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kf_ingest_rejected_total",
			Help: "Payloads and record bodies refused, by channel and reason."}, []string{"channel", "reason"}),
		queueTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "kf_ingest_queue_seconds",
			Help: "Time from a batch's receipt to the start of its group commit, by lane.", Buckets: latency}, []string{"lane"}),
		ackTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "kf_ingest_ack_seconds",
			Help: "Time from a batch's receipt to the publication of its ack, by lane.", Buckets: latency}, []string{"lane"}),
		downlinkTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "kf_downlink_seconds",
			Help: "Time from the notice that a device has new commands (from the database, or the API's call on a lone hub) " +
				"to each stage of sending them: taken by a worker, fetched from the store, published, marked delivered.",
			Buckets: prometheus.ExponentialBucketsRange(0.0005, 16, 31)}, []string{"stage"}),
		presenceTime: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "kf_presence_written_seconds",
			Help: "Time from a presence change seen by the hub (a session starting or ending) to its write to the store, " +
				"after which live viewers are told.", Buckets: prometheus.ExponentialBucketsRange(0.001, 64, 25)}),
	}
	for i, name := range stageNames {
		m.downlinkBy[i] = m.downlinkTime.WithLabelValues(name)
	}
	for i, lane := range []string{"bulk", "fast"} {
		m.queueBy[i], m.ackBy[i] = m.queueTime.WithLabelValues(lane), m.ackTime.WithLabelValues(lane)
	}
	return m
}

func (m *metrics) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.recordsC, m.commitsC, m.commitErrors, m.commitTime, m.rejectedC, m.queueTime, m.ackTime, m.downlinkTime, m.presenceTime} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

func (m *metrics) committed(batches, records int, d time.Duration) {
	m.batches.Add(uint64(batches))
	m.records.Add(uint64(records))
	m.commits.Add(1)
	m.recordsC.Add(float64(records))
	m.commitsC.Inc()
	m.commitTime.Observe(d.Seconds())
}

func lane(fast bool) int {
	if fast {
		return 1
	}
	return 0
}

func (m *metrics) queueWait(fast bool, d time.Duration) { m.queueBy[lane(fast)].Observe(d.Seconds()) }

func (m *metrics) acked(fast bool, d time.Duration) { m.ackBy[lane(fast)].Observe(d.Seconds()) }

// downlink records that a sending reached stage s, noticed before (not when zero: no notice).
func (m *metrics) downlink(s stage, noticed time.Time) {
	if !noticed.IsZero() {
		m.downlinkBy[s].Observe(time.Since(noticed).Seconds())
	}
}

func (m *metrics) rejected(channel, reason string) {
	m.rejects.Add(1)
	m.rejectedC.WithLabelValues(channel, reason).Inc()
}

func (m *metrics) snapshot() Stats {
	return Stats{Records: m.records.Load(), Batches: m.batches.Load(), Commits: m.commits.Load(), Rejected: m.rejects.Load()}
}
