package health

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"

	"github.com/rotor-dev/rotor/cluster"
	"github.com/rotor-dev/rotor/cluster/capacity"
	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/generated/clientset/versioned"
	listers "github.com/rotor-dev/rotor/controller/generated/listers/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/plugins/pod"
)

// Prober probes every Cluster's /readyz and writes its conditions. Run it
// in one process only: the leading manager (or a lone propeller).
type Prober struct {
	Rotor    versioned.Interface
	Kube     kubernetes.Interface
	Clusters listers.ClusterLister
	// Namespace is where kubeconfig Secrets without a namespace live.
	Namespace  string
	Period     time.Duration
	Timeout    time.Duration
	Thresholds Thresholds
	Clock      clock.WithTicker
	Logger     *slog.Logger
	// Slots, if set, are the clusters' capacity slots: the prober frees
	// those whose pods are no longer in flight (their replica went away).
	Slots *capacity.Slots

	mu      sync.Mutex
	states  map[string]State
	clients map[string]probeClient
}

type probeClient struct {
	key  string // generation and Secret resourceVersion it was built from
	http *http.Client
	host string
	kube kubernetes.Interface
}

// Run probes every period until ctx ends.
func (p *Prober) Run(ctx context.Context) {
	if p.Period <= 0 {
		p.Period = DefaultPeriod
	}
	if p.Timeout <= 0 {
		p.Timeout = DefaultTimeout
	}
	if p.Clock == nil {
		p.Clock = clock.RealClock{}
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	p.states, p.clients = map[string]State{}, map[string]probeClient{}
	p.Logger.Info("cluster prober starting", "period", p.Period, "timeout", p.Timeout,
		"failureThreshold", p.Thresholds.withDefaults().Failure, "successThreshold", p.Thresholds.withDefaults().Success)
	t := p.Clock.NewTicker(p.Period)
	defer t.Stop()
	for {
		p.ProbeAll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
	}
}

// ProbeAll probes every Cluster once, concurrently, and writes the
// results.
func (p *Prober) ProbeAll(ctx context.Context) {
	cs, err := p.Clusters.List(labels.Everything())
	if err != nil {
		p.Logger.Warn("listing clusters failed", "err", err)
		return
	}
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Go(func() { p.probe(ctx, c) })
	}
	wg.Wait()
}

func (p *Prober) probe(ctx context.Context, c *v1alpha1.Cluster) {
	now := p.Clock.Now()
	pc, credErr := p.client(ctx, c)
	var r Result
	if credErr == nil {
		r = p.get(ctx, pc)
	}
	p.mu.Lock()
	st := p.states[c.Name]
	if credErr == nil {
		st = Observe(st, p.Thresholds, r, now)
		p.states[c.Name] = st
	}
	p.mu.Unlock()

	next := c.DeepCopy()
	t := metav1.NewTime(now)
	next.Status.LastProbeTime = &t
	gen := c.Generation
	if credErr != nil {
		msg := credErr.Error()
		set(next, v1alpha1.ClusterCredentials, false, "Invalid", msg, gen)
		set(next, v1alpha1.ClusterReady, false, "CredentialsInvalid", msg, gen)
		if meta.FindStatusCondition(next.Status.Conditions, v1alpha1.ClusterReachable) == nil {
			set(next, v1alpha1.ClusterReachable, false, "CredentialsInvalid", "not probed: "+msg, gen)
		}
	} else {
		next.Status.LastProbeLatencyMillis = r.Latency.Milliseconds()
		set(next, v1alpha1.ClusterCredentials, true, "Valid", "", gen)
		if st.Reachable {
			set(next, v1alpha1.ClusterReachable, true, "Answered", "", gen)
		} else {
			set(next, v1alpha1.ClusterReachable, false, "Unreachable", st.LastError, gen)
			// The transition time is when the cluster went silent (the
			// grace period counts from it), unless it was already False.
			was := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ClusterReachable)
			cond := meta.FindStatusCondition(next.Status.Conditions, v1alpha1.ClusterReachable)
			if (was == nil || was.Status != metav1.ConditionFalse) && !st.ChangedAt.IsZero() {
				cond.LastTransitionTime = metav1.NewTime(st.ChangedAt)
			}
		}
		switch {
		case st.Ready:
			set(next, v1alpha1.ClusterReady, true, "Ready", "", gen)
		case !st.Reachable:
			set(next, v1alpha1.ClusterReady, false, "Unreachable", "unreachable: "+st.LastError, gen)
		default:
			set(next, v1alpha1.ClusterReady, false, "NotReady", st.LastError, gen)
		}
		probeLatency.WithLabelValues(c.Name).Observe(r.Latency.Seconds())
		if r.OK {
			if pods, err := p.inFlight(ctx, pc); err == nil {
				next.Status.PodsInFlight = int32(len(pods))
				podsInFlight.WithLabelValues(c.Name).Set(float64(len(pods)))
				p.collect(ctx, c.Name, pods)
			}
		}
	}
	clusterReady.WithLabelValues(c.Name).Set(boolGauge(meta.IsStatusConditionTrue(next.Status.Conditions, v1alpha1.ClusterReady)))
	clusterReachable.WithLabelValues(c.Name).Set(boolGauge(meta.IsStatusConditionTrue(next.Status.Conditions, v1alpha1.ClusterReachable)))
	was := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ClusterReady)
	if is := meta.FindStatusCondition(next.Status.Conditions, v1alpha1.ClusterReady); was == nil || was.Status != is.Status {
		p.Logger.Info("cluster readiness changed", "cluster", c.Name, "ready", is.Status, "reason", is.Reason, "message", is.Message)
	}
	if _, err := p.Rotor.RotorV1alpha1().Clusters().UpdateStatus(ctx, next, metav1.UpdateOptions{}); err != nil && ctx.Err() == nil {
		p.Logger.Warn("writing cluster status failed, next probe retries", "cluster", c.Name, "err", err)
	}
}

// inFlight lists the cluster's task pods not yet finished
// (namespace/name), from the apiserver's watch cache (resourceVersion 0),
// for rotor clusters, the metric and slot collection; placement counts
// from each replica's own pod cache.
func (p *Prober) inFlight(ctx context.Context, pc probeClient) (map[string]bool, error) {
	ctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	list, err := pc.kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{
		LabelSelector:   pod.LabelManaged + "=true",
		FieldSelector:   "status.phase!=Succeeded,status.phase!=Failed",
		ResourceVersion: "0",
	})
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(list.Items))
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			out[p.Namespace+"/"+p.Name] = true
		}
	}
	return out, nil
}

// slotMinAge spares slots taken for pods not created yet.
const slotMinAge = 2 * time.Minute

func (p *Prober) collect(ctx context.Context, cluster string, inFlight map[string]bool) {
	if p.Slots == nil {
		return
	}
	n, err := p.Slots.Collect(ctx, cluster, inFlight, slotMinAge)
	if err != nil {
		p.Logger.Warn("collecting capacity slots failed", "cluster", cluster, "err", err)
		return
	}
	if n > 0 {
		p.Logger.Info("capacity slots collected (their pods ended, their replica did not release them)", "cluster", cluster, "slots", n)
	}
}

func set(c *v1alpha1.Cluster, typ string, ok bool, reason, msg string, gen int64) {
	st := metav1.ConditionFalse
	if ok {
		st = metav1.ConditionTrue
	}
	// Condition messages are bounded by the CRD schema (32 KiB); errors
	// from a dial are short, but a /readyz body need not be.
	if len(msg) > 1024 {
		msg = msg[:1024]
	}
	meta.SetStatusCondition(&c.Status.Conditions, metav1.Condition{Type: typ, Status: st, Reason: reason, Message: msg, ObservedGeneration: gen})
}

// client returns an HTTP client for the cluster, rebuilt when the Cluster
// or its kubeconfig Secret changed.
func (p *Prober) client(ctx context.Context, c *v1alpha1.Cluster) (probeClient, error) {
	cfg, rv, err := cluster.RESTConfig(ctx, p.Kube, p.Namespace, c)
	if err != nil {
		return probeClient{}, err
	}
	key := fmt.Sprintf("%d/%s", c.Generation, rv)
	p.mu.Lock()
	pc, ok := p.clients[c.Name]
	p.mu.Unlock()
	if ok && pc.key == key {
		return pc, nil
	}
	cfg.Timeout = p.Timeout
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return probeClient{}, fmt.Errorf("kubeconfig of cluster %s: %w", c.Name, err)
	}
	kube, err := kubernetes.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return probeClient{}, fmt.Errorf("kubeconfig of cluster %s: %w", c.Name, err)
	}
	pc = probeClient{key: key, http: hc, host: strings.TrimSuffix(cfg.Host, "/"), kube: kube}
	p.mu.Lock()
	p.clients[c.Name] = pc
	p.mu.Unlock()
	return pc, nil
}

func (p *Prober) get(ctx context.Context, pc probeClient) Result {
	ctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	start := p.Clock.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, pc.host+"/readyz", nil)
	if err != nil {
		return Result{Err: err.Error()}
	}
	resp, err := pc.http.Do(req)
	lat := p.Clock.Since(start)
	if err != nil {
		return Result{Err: err.Error(), Latency: lat}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return Result{Answered: true, Err: fmt.Sprintf("/readyz answered %d: %s", resp.StatusCode, firstLines(string(body))), Latency: lat}
	}
	return Result{Answered: true, OK: true, Latency: lat}
}

// firstLines keeps the failing checks of a /readyz body, which lists one
// check per line with "[-]" for the failed ones.
func firstLines(body string) string {
	var failed []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, "[-]") {
			failed = append(failed, strings.TrimSpace(l))
		}
	}
	if len(failed) > 0 {
		return strings.Join(failed, "; ")
	}
	return strings.TrimSpace(body)
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

var (
	probeLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "rotor_cluster_probe_duration_seconds", Help: "Latency of /readyz probes of target clusters.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 10),
	}, []string{"cluster"})
	clusterReady = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rotor_cluster_ready", Help: "1 while the target cluster is Ready.",
	}, []string{"cluster"})
	clusterReachable = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rotor_cluster_reachable", Help: "1 while the target cluster answers its probes.",
	}, []string{"cluster"})
	podsInFlight = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rotor_cluster_pods_in_flight", Help: "Task pods not yet finished on the target cluster, at the last probe.",
	}, []string{"cluster"})
)

func init() { prometheus.MustRegister(probeLatency, clusterReady, clusterReachable, podsInFlight) }

// BindFlags registers the prober's settings on fs.
func (p *Prober) BindFlags(fs *flag.FlagSet) {
	fs.DurationVar(&p.Period, "probe-period", DefaultPeriod, "how often the target clusters' /readyz is probed")
	fs.DurationVar(&p.Timeout, "probe-timeout", DefaultTimeout, "timeout of one probe")
	fs.IntVar(&p.Thresholds.Failure, "probe-failure-threshold", DefaultFailureThreshold, "probes in a row without an answer (or not ready) before a cluster is unreachable (or not ready)")
	fs.IntVar(&p.Thresholds.Success, "probe-success-threshold", DefaultSuccessThreshold, "probes in a row answered (ready) before a cluster is reachable (ready) again")
}
