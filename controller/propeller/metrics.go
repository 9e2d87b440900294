package propeller

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	rounds        *prometheus.HistogramVec
	workflowPhase *prometheus.CounterVec
	nodePhase     *prometheus.CounterVec
	overhead      prometheus.Histogram
	leftBehind    *prometheus.CounterVec
}

// The collectors are registered once per process; a second controller in
// the same process (tests) reuses them.
var sharedMetrics = func() *metrics {
	m := &metrics{
		rounds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "rotor_reconcile_round_seconds", Help: "Duration of one workflow reconcile round.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"result"}),
		workflowPhase: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rotor_workflow_transitions_total", Help: "Workflow phase transitions, by new phase.",
		}, []string{"phase"}),
		nodePhase: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rotor_node_transitions_total", Help: "Node phase transitions, by new phase.",
		}, []string{"phase"}),
		leftBehind: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rotor_cleanup_pods_left_behind_total",
			Help: "Pods of deleted workflows the finalizer gave up deleting: their target cluster was no longer registered, or unreachable for longer than --cleanup-unreachable-timeout.",
		}, []string{"cluster"}),
	}
	// Fine buckets (×1.25) so the benchmark can read p50 and p99 from
	// them to within about 12 %.
	m.overhead = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "rotor_node_orchestration_overhead_seconds",
		Help: "From the pod event that showed an upstream task done to the downstream task's pod created, " +
			"for downstream nodes launched in the round that saw their upstream finish.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 1.25, 48),
	})
	prometheus.MustRegister(m.rounds, m.workflowPhase, m.nodePhase, m.overhead, m.leftBehind)
	return m
}()

func newMetrics() *metrics { return sharedMetrics }

func (m *metrics) observeRound(took time.Duration, err error) {
	res := "ok"
	if err != nil {
		res = "error"
	}
	m.rounds.WithLabelValues(res).Observe(took.Seconds())
}
