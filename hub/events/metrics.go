package events

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	accepted, duplicates, rejected, commitErrors prometheus.Counter
	overload                                     *prometheus.CounterVec
	commitTime, queueWait                        prometheus.Histogram
}

func newMetrics() *metrics {
	return &metrics{
		accepted: prometheus.NewCounter(prometheus.CounterOpts{Name: "kf_events_accepted_total",
			Help: "Events stored for the first time."}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{Name: "kf_events_duplicates_total",
			Help: "Events received again (same client and ID) and counted once."}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{Name: "kf_events_rejected_total",
			Help: "Events refused by validation (field errors)."}),
		commitErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "kf_events_commit_errors_total",
			Help: "Event submissions whose commit failed."}),
		overload: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kf_events_overload_total",
			Help: "Event batches refused with 429, by reason."}, []string{"reason"}),
		commitTime: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "kf_events_commit_seconds",
			Help: "Time to commit one group of events.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		queueWait: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "kf_events_queue_wait_seconds",
			Help:    "Time from a batch's validation to the committer taking it (with the commit's, most of an accepted batch's time under load).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
	}
}

func (m *metrics) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.accepted, m.duplicates, m.rejected, m.commitErrors, m.overload, m.commitTime, m.queueWait} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
