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
}

func newMetrics() *metrics {
	return &metrics{
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
	}
}

func (m *metrics) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.recordsC, m.commitsC, m.commitErrors, m.commitTime, m.rejectedC} {
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

func (m *metrics) rejected(channel, reason string) {
	m.rejects.Add(1)
	m.rejectedC.WithLabelValues(channel, reason).Inc()
}

func (m *metrics) snapshot() Stats {
	return Stats{Records: m.records.Load(), Batches: m.batches.Load(), Commits: m.commits.Load(), Rejected: m.rejects.Load()}
}
