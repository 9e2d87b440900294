package kubemetrics

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/workqueue"
)

// Register takes effect once per process: every run of the test (-count)
// gathers from the same registry, with a queue name of its own.
var (
	reg  = prometheus.NewRegistry()
	runs atomic.Int32
)

func TestQueueAndClientMetrics(t *testing.T) {
	Register(reg)
	name := fmt.Sprintf("test-%d", runs.Add(1))

	// The retry's delay outlasts the test, so it is counted but not re-added.
	q := workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.NewTypedItemExponentialFailureRateLimiter[string](time.Hour, time.Hour),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: name})
	defer q.ShutDown()
	q.Add("a")
	q.Add("b")
	k, _ := q.Get()
	q.AddRateLimited(k) // a retry
	q.Done(k)

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"kind":"NamespaceList","apiVersion":"v1","items":[]}`))
	}))
	defer srv.Close()
	kc := kubernetes.NewForConfigOrDie(&rest.Config{Host: srv.URL})
	if _, err := kc.CoreV1().Namespaces().List(t.Context(), metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(srv.URL, "http://")

	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"rotor_workqueue_adds_total", map[string]string{"queue": name}, 2},
		{"rotor_workqueue_retries_total", map[string]string{"queue": name}, 1},
		{"rotor_workqueue_depth", map[string]string{"queue": name}, 1},
		{"rotor_workqueue_work_duration_seconds", map[string]string{"queue": name}, 1},
		{"rotor_kube_requests_total", map[string]string{"code": "200", "method": "GET", "host": host}, 1},
		{"rotor_kube_request_duration_seconds", map[string]string{"verb": "GET", "host": host}, 1},
		{"rotor_kube_client_throttle_seconds", map[string]string{"verb": "GET", "host": host}, 1},
	} {
		if got := value(t, reg, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

// value reads a counter's or gauge's value, or a histogram's sample count.
func value(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}
