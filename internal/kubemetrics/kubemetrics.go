// Package kubemetrics exports client-go's own measurements — REST request
// latency and results, client-side throttling, workqueue depth, adds,
// retries and latencies — as Prometheus metrics prefixed rotor_.
//
// client-go reports through package-level hooks that accept one adapter
// per process; Register installs Rotor's and is safe to call more than
// once (every process's main calls it before building a client).
package kubemetrics

import (
	"context"
	"net/url"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/tools/metrics"
	"k8s.io/client-go/util/workqueue"
)

var once sync.Once

// Register installs the adapters and registers their collectors with reg.
func Register(reg prometheus.Registerer) {
	once.Do(func() {
		requestLatency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rotor_kube_request_duration_seconds",
			Help:    "Kubernetes API request latency as the client saw it, by verb and apiserver host.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, []string{"verb", "host"})
		throttle := prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rotor_kube_client_throttle_seconds",
			Help:    "Time Kubernetes API requests waited in the client's own rate limiter (qps/burst), by verb and host.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, []string{"verb", "host"})
		results := prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rotor_kube_requests_total",
			Help: "Kubernetes API requests by HTTP status code, method and apiserver host.",
		}, []string{"code", "method", "host"})
		reg.MustRegister(requestLatency, throttle, results)
		metrics.Register(metrics.RegisterOpts{
			RequestLatency:     latency{requestLatency},
			RateLimiterLatency: latency{throttle},
			RequestResult:      result{results},
		})
		workqueue.SetProvider(newQueueProvider(reg))
	})
}

type latency struct{ h *prometheus.HistogramVec }

func (l latency) Observe(_ context.Context, verb string, u url.URL, d time.Duration) {
	l.h.WithLabelValues(verb, u.Host).Observe(d.Seconds())
}

type result struct{ c *prometheus.CounterVec }

func (r result) Increment(_ context.Context, code, method, host string) {
	r.c.WithLabelValues(code, method, host).Inc()
}

// queueProvider backs every named workqueue with one labelled series.
type queueProvider struct {
	depth, unfinished, longest *prometheus.GaugeVec
	adds, retries              *prometheus.CounterVec
	wait, work                 *prometheus.HistogramVec
}

func newQueueProvider(reg prometheus.Registerer) *queueProvider {
	buckets := prometheus.ExponentialBuckets(0.0001, 4, 12)
	p := &queueProvider{
		depth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rotor_workqueue_depth", Help: "Items waiting in a workqueue.",
		}, []string{"queue"}),
		unfinished: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rotor_workqueue_unfinished_work_seconds",
			Help: "Seconds of work in progress not yet done; a value that grows without bound means a stuck worker.",
		}, []string{"queue"}),
		longest: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rotor_workqueue_longest_running_processor_seconds", Help: "Age of the oldest item being processed.",
		}, []string{"queue"}),
		adds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rotor_workqueue_adds_total", Help: "Items added to a workqueue.",
		}, []string{"queue"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rotor_workqueue_retries_total", Help: "Items re-added with rate limiting after an error.",
		}, []string{"queue"}),
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "rotor_workqueue_queue_duration_seconds", Help: "Time an item waits in the queue before a worker takes it.", Buckets: buckets,
		}, []string{"queue"}),
		work: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "rotor_workqueue_work_duration_seconds", Help: "Time a worker spends on one item.", Buckets: buckets,
		}, []string{"queue"}),
	}
	reg.MustRegister(p.depth, p.unfinished, p.longest, p.adds, p.retries, p.wait, p.work)
	return p
}

func (p *queueProvider) NewDepthMetric(name string) workqueue.GaugeMetric {
	return p.depth.WithLabelValues(name)
}
func (p *queueProvider) NewAddsMetric(name string) workqueue.CounterMetric {
	return p.adds.WithLabelValues(name)
}
func (p *queueProvider) NewLatencyMetric(name string) workqueue.HistogramMetric {
	return p.wait.WithLabelValues(name)
}
func (p *queueProvider) NewWorkDurationMetric(name string) workqueue.HistogramMetric {
	return p.work.WithLabelValues(name)
}
func (p *queueProvider) NewUnfinishedWorkSecondsMetric(name string) workqueue.SettableGaugeMetric {
	return p.unfinished.WithLabelValues(name)
}
func (p *queueProvider) NewLongestRunningProcessorSecondsMetric(name string) workqueue.SettableGaugeMetric {
	return p.longest.WithLabelValues(name)
}
func (p *queueProvider) NewRetriesMetric(name string) workqueue.CounterMetric {
	return p.retries.WithLabelValues(name)
}
