// Command rotor-manager is the shard manager: run two or more; one leads
// (etcd election), publishes the shard map and moves partitions between
// replicas with the handoff protocol. The others stand by.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/clock"

	"github.com/rotor-dev/rotor/cluster/capacity"
	"github.com/rotor-dev/rotor/cluster/health"
	"github.com/rotor-dev/rotor/controller/generated/clientset/versioned"
	rotorinformers "github.com/rotor-dev/rotor/controller/generated/informers/externalversions"
	"github.com/rotor-dev/rotor/controller/taskcache"
	"github.com/rotor-dev/rotor/controller/tenancy"
	"github.com/rotor-dev/rotor/data/location"
	"github.com/rotor-dev/rotor/data/sweep"
	"github.com/rotor-dev/rotor/internal/endpoints"
	"github.com/rotor-dev/rotor/internal/etcdclient"
	"github.com/rotor-dev/rotor/internal/kubemetrics"
	"github.com/rotor-dev/rotor/internal/rawdata"
	"github.com/rotor-dev/rotor/internal/tracing"
	"github.com/rotor-dev/rotor/manager"
	"github.com/rotor-dev/rotor/manager/admission"
	"github.com/rotor-dev/rotor/manager/autoscale"
	"github.com/rotor-dev/rotor/shardproto"
)

type config struct {
	etcd       etcdclient.Flags
	name       string
	prefix     string
	partitions int
	loadFactor float64
	sessionTTL time.Duration
	listen     string
	endpoints  endpoints.Flags

	targetPerReplica int
	minReplicas      int
	maxReplicas      int
	scaleWindow      time.Duration
	scaleTarget      string
	kubeconfig       string
	// webhookTenantPolicies judges tasks by their TenantPolicy at admission.
	webhookTenantPolicies bool
	namespace             string
	adminListen           string
	tlsCert, tlsKey       string
	adminClientCA         string
	cachePrefix           string
	probe                 *health.Prober
	probeClusters         bool

	webhookListen           string
	webhookCert, webhookKey string
	webhookMaxObjectBytes   int

	// rawData and sweep run the retention sweeper while leading.
	rawData rawdata.Flags
	sweep   rawdata.Sweep
}

func main() {
	var c config
	c.etcd.Bind(flag.CommandLine, "comma-separated etcd client URLs of the shard map and membership")
	flag.StringVar(&c.name, "name", "", "this instance's name in the election (default: the host name)")
	flag.StringVar(&c.prefix, "shard-prefix", "/rotor", "etcd prefix of the shard map and membership")
	flag.IntVar(&c.partitions, "partitions", 256, "number of partitions; fixed at install")
	flag.Float64Var(&c.loadFactor, "load-factor", 1.25, "a replica holds at most this multiple of its fair share of partitions")
	flag.DurationVar(&c.sessionTTL, "session-ttl", 10*time.Second, "election session TTL: how long a dead leader blocks the standby")
	flag.StringVar(&c.listen, "listen", "127.0.0.1:9091", "address for /metrics, /healthz and /readyz")
	c.endpoints.Bind(flag.CommandLine)
	flag.IntVar(&c.targetPerReplica, "target-workflows-per-replica", 500, "active workflows one replica should carry (autoscale signal)")
	flag.IntVar(&c.minReplicas, "min-replicas", 1, "lower bound of the desired replica count")
	flag.IntVar(&c.maxReplicas, "max-replicas", 50, "upper bound of the desired replica count")
	flag.DurationVar(&c.scaleWindow, "scale-down-window", 5*time.Minute, "the load must stay low this long before the desired count goes down")
	flag.StringVar(&c.scaleTarget, "scale-target", "", "statefulset/NAME: set its replicas to the desired count (default: only export the metric)")
	flag.StringVar(&c.kubeconfig, "kubeconfig", "", "kubeconfig of the control cluster, for --scale-target and the cluster prober (default: in-cluster)")
	flag.StringVar(&c.namespace, "namespace", "rotor-system", "Rotor's namespace: the --scale-target's, and that of kubeconfig Secrets")
	flag.BoolVar(&c.probeClusters, "probe-clusters", true, "while leading, probe every target cluster and write its conditions")
	c.probe = &health.Prober{}
	c.probe.BindFlags(flag.CommandLine)
	flag.StringVar(&c.adminListen, "admin-listen", "127.0.0.1:9092", "address of the gRPC admin API")
	flag.StringVar(&c.tlsCert, "tls-cert-file", "", "TLS certificate of the admin API (required unless it listens on loopback)")
	flag.StringVar(&c.tlsKey, "tls-key-file", "", "TLS key of the admin API")
	flag.StringVar(&c.adminClientCA, "admin-client-ca-file", "", "CA bundle verifying the admin API's client certificates (default: the control cluster's client CA, from kube-system/extension-apiserver-authentication)")
	flag.StringVar(&c.cachePrefix, "cache-prefix", "/rotor/cache/", "etcd key prefix of the replicas' task cache, which the admin API lists and deletes from")
	flag.StringVar(&c.webhookListen, "webhook-listen", "", "address of the validating admission webhook (HTTPS, path "+admission.Path+"; empty: not served)")
	flag.StringVar(&c.webhookCert, "webhook-cert-file", "", "TLS certificate of the admission webhook (read again when it changes)")
	flag.StringVar(&c.webhookKey, "webhook-key-file", "", "TLS key of the admission webhook")
	flag.IntVar(&c.webhookMaxObjectBytes, "webhook-max-object-bytes", admission.DefaultMaxObjectBytes, "largest Workflow or WorkflowTemplate the webhook admits, in bytes")
	flag.BoolVar(&c.webhookTenantPolicies, "webhook-tenant-policies", true, "the webhook also refuses tasks that ask for pod settings their namespace's TenantPolicy does not allow (needs list/watch on namespaces and tenantpolicies; set as the propellers' --tenant-isolation)")
	c.rawData.Bind(flag.CommandLine, ": no sweeper. Give the propellers' location: the leading manager deletes the raw data of deleted and expired workflows")
	c.sweep.Bind(flag.CommandLine)
	flag.Parse()
	log := slog.New(tracing.LogHandler(slog.NewJSONHandler(os.Stderr, nil)))
	slog.SetDefault(log)
	if err := c.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "rotor-manager:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c, log); err != nil {
		log.Error("rotor-manager failed", "err", err)
		os.Exit(1)
	}
}

func (c *config) validate() error {
	if c.etcd.Endpoints == "" {
		return errors.New("--etcd-endpoints is required")
	}
	if err := c.etcd.Validate(); err != nil {
		return err
	}
	if err := c.endpoints.Validate(); err != nil {
		return err
	}
	if c.partitions < 1 {
		return fmt.Errorf("--partitions must be at least 1, got %d", c.partitions)
	}
	if c.loadFactor <= 1 {
		return fmt.Errorf("--load-factor must be above 1, got %g", c.loadFactor)
	}
	if c.sessionTTL < 2*time.Second {
		return fmt.Errorf("--session-ttl must be at least 2s, got %s", c.sessionTTL)
	}
	if c.targetPerReplica < 1 || c.minReplicas < 1 || c.maxReplicas < c.minReplicas {
		return fmt.Errorf("need --target-workflows-per-replica ≥ 1 and 1 ≤ --min-replicas ≤ --max-replicas")
	}
	if c.scaleTarget != "" && !strings.HasPrefix(c.scaleTarget, "statefulset/") {
		return fmt.Errorf("--scale-target %q: use statefulset/NAME", c.scaleTarget)
	}
	if (c.tlsCert == "") != (c.tlsKey == "") {
		return errors.New("give both --tls-cert-file and --tls-key-file, or neither")
	}
	if c.tlsCert == "" && !loopback(c.adminListen) {
		return fmt.Errorf("--admin-listen %s is not a loopback address: give --tls-cert-file and --tls-key-file", c.adminListen)
	}
	if c.adminClientCA != "" && c.tlsCert == "" {
		return errors.New("--admin-client-ca-file needs --tls-cert-file and --tls-key-file: client certificates travel in TLS")
	}
	if !strings.HasSuffix(c.cachePrefix, "/") {
		return fmt.Errorf("--cache-prefix %q must end in /", c.cachePrefix)
	}
	if c.webhookListen != "" && (c.webhookCert == "" || c.webhookKey == "") {
		return errors.New("--webhook-listen needs --webhook-cert-file and --webhook-key-file: the apiserver calls webhooks over HTTPS only")
	}
	if c.webhookMaxObjectBytes < 1<<10 {
		return fmt.Errorf("--webhook-max-object-bytes must be at least 1024, got %d", c.webhookMaxObjectBytes)
	}
	if c.name == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("--name not given and no host name: %w", err)
		}
		c.name = h
	}
	return nil
}

// tenantPolicies watches the control cluster's Namespaces and
// TenantPolicies for the webhook. It returns once both caches are synced:
// before that, every namespace would seem governed by the default policy.
func tenantPolicies(ctx context.Context, c config) (tenancy.Source, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	if err != nil {
		return tenancy.Source{}, fmt.Errorf("load kubeconfig for --webhook-tenant-policies: %w", err)
	}
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return tenancy.Source{}, err
	}
	rotor, err := versioned.NewForConfig(rc)
	if err != nil {
		return tenancy.Source{}, err
	}
	kf := informers.NewSharedInformerFactory(kube, 0)
	rf := rotorinformers.NewSharedInformerFactory(rotor, 0)
	src := tenancy.Source{Namespaces: kf.Core().V1().Namespaces().Lister(), Policies: rf.Rotor().V1alpha1().TenantPolicies().Lister()}
	kf.Start(ctx.Done())
	rf.Start(ctx.Done())
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for t, ok := range kf.WaitForCacheSync(sctx.Done()) {
		if !ok {
			return src, fmt.Errorf("webhook: cache of %v not synced in 1m: does the manager have list/watch on namespaces?", t)
		}
	}
	for t, ok := range rf.WaitForCacheSync(sctx.Done()) {
		if !ok {
			return src, fmt.Errorf("webhook: cache of %v not synced in 1m: is the TenantPolicy CRD installed, and does the manager have list/watch on tenantpolicies?", t)
		}
	}
	return src, nil
}

func run(ctx context.Context, c config, log *slog.Logger) error {
	kubemetrics.Register(prometheus.DefaultRegisterer)
	etcd, err := c.etcd.New()
	if err != nil {
		return err
	}
	defer etcd.Close()
	// Leader or standby, a manager that reaches etcd can do its job.
	ready := func() error {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		// The shard map key: one its etcd role may read (the whole
		// prefix holds keys it may not, such as the call journal).
		if _, err := etcd.Get(rctx, shardproto.Keys{Prefix: c.prefix}.Map(), clientv3.WithCountOnly()); err != nil {
			return fmt.Errorf("etcd %s: %w", c.etcd.Endpoints, err)
		}
		return nil
	}
	var kube kubernetes.Interface
	if c.endpoints.Auth {
		rc, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
		if err != nil {
			return fmt.Errorf("load kubeconfig for --metrics-auth: %w", err)
		}
		if kube, err = kubernetes.NewForConfig(rc); err != nil {
			return err
		}
	}
	epOpts, err := c.endpoints.Options(c.listen, kube)
	if err != nil {
		return err
	}
	addr, err := endpoints.Serve(ctx, c.listen, ready, log, epOpts)
	if err != nil {
		return err
	}
	stopAdmin, err := serveAdmin(ctx, c, etcd, log)
	if err != nil {
		return err
	}
	defer stopAdmin()
	// Every manager serves the webhook, leader or not: admission must not
	// wait for an election.
	if c.webhookListen != "" {
		h := &admission.Handler{Options: admission.Options{MaxObjectBytes: c.webhookMaxObjectBytes}, Logger: log}
		if c.webhookTenantPolicies {
			if h.Options.Policies, err = tenantPolicies(ctx, c); err != nil {
				return err
			}
		}
		if _, err := admission.Serve(ctx, c.webhookListen, c.webhookCert, c.webhookKey, h, log); err != nil {
			return err
		}
	}
	log.Info("rotor-manager starting", "name", c.name, "partitions", c.partitions, "listen", addr.String())
	cfg := manager.Config{
		Name: c.name, Prefix: c.prefix, SessionTTL: c.sessionTTL, Logger: log,
		Ring:      shardproto.RingConfig{Partitions: c.partitions, LoadFactor: c.loadFactor},
		Autoscale: autoscale.Config{TargetPerReplica: c.targetPerReplica, Min: c.minReplicas, Max: c.maxReplicas, Window: c.scaleWindow},
	}
	if c.probeClusters {
		onLead, err := clusterProber(ctx, c, etcd, log)
		if err != nil {
			return err
		}
		cfg.OnLead = onLead
	}
	if c.rawData.URL != "" && c.sweep.Interval > 0 {
		sw, err := sweeper(ctx, c, etcd, log)
		if err != nil {
			// The shard map matters more than old data: the manager
			// runs on without its sweeper, saying why.
			log.Error("raw-data sweeper off: fix the raw-data flags or their Secret and restart the manager", "err", err)
		}
		if sw != nil {
			cfg.OnLead = withSweeper(cfg.OnLead, sw)
		}
	}
	if c.scaleTarget != "" {
		scale, err := statefulSetScaler(c)
		if err != nil {
			return err
		}
		cfg.Scale = scale
	}
	return manager.New(etcd, cfg).Run(ctx)
}

// clusterProber returns the leader's cluster prober over a Cluster cache
// that runs for the life of the process (so a new leader probes at once).
func clusterProber(ctx context.Context, c config, etcd *clientv3.Client, log *slog.Logger) (func(context.Context), error) {
	rc, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig for the cluster prober (or pass --probe-clusters=false): %w", err)
	}
	rotor, err := versioned.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	factory := rotorinformers.NewSharedInformerFactory(rotor, 0)
	clusters := factory.Rotor().V1alpha1().Clusters()
	clusters.Informer() // register before Start
	factory.Start(ctx.Done())
	p := c.probe
	p.Rotor, p.Kube, p.Clusters, p.Namespace, p.Logger = rotor, kube, clusters.Lister(), c.namespace, log
	// The replicas' capacity slots (shard prefix + /capacity/): the leader
	// frees those a replica that went away could not release.
	p.Slots = capacity.New(etcd, shardproto.Keys{Prefix: c.prefix}.Capacity(), c.name)
	return func(lctx context.Context) {
		if !cache.WaitForCacheSync(lctx.Done(), clusters.Informer().HasSynced) {
			return
		}
		p.Run(lctx)
	}, nil
}

// withSweeper runs the sweeper beside what else runs while leading.
func withSweeper(onLead func(context.Context), sw *sweep.Sweeper) func(context.Context) {
	return func(lctx context.Context) {
		done := make(chan struct{})
		go func() { defer close(done); sw.Run(lctx) }()
		if onLead != nil {
			onLead(lctx)
		}
		<-done
	}
}

// sweeper is the leader's raw-data retention sweeper: it reads Workflows
// and Namespaces from the control cluster and the task cache from etcd.
func sweeper(ctx context.Context, c config, etcd *clientv3.Client, log *slog.Logger) (*sweep.Sweeper, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig for the raw-data sweeper (or pass --raw-data-sweep-interval=0): %w", err)
	}
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	rotor, err := versioned.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	st, _, err := c.rawData.Open(ctx, kube, c.namespace)
	if err != nil {
		return nil, err
	}
	src := &sweep.Kube{Rotor: rotor, Kube: kube, Cache: taskcache.NewStore(etcd, c.cachePrefix), DefaultRetention: c.sweep.Retention}
	// Tenants' own locations, as their Namespaces name them at each sweep.
	tenants := &location.Resolver{
		Now: time.Now,
		Annotations: func(name string) (map[string]string, error) {
			ns, err := kube.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return nil, err
			}
			return ns.Annotations, nil
		},
		Secret: func(ctx context.Context, name string) (map[string][]byte, error) {
			sec, err := kube.CoreV1().Secrets(c.namespace).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return nil, err
			}
			return sec.Data, nil
		},
	}
	list := func(ctx context.Context) ([]*corev1.Namespace, error) {
		l, err := kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		out := make([]*corev1.Namespace, len(l.Items))
		for i := range l.Items {
			out[i] = &l.Items[i]
		}
		return out, nil
	}
	log.Info("raw-data sweeper on while leading", "store", st.Root(), "interval", c.sweep.Interval, "retention", c.sweep.Retention)
	return &sweep.Sweeper{Store: st, Source: src, Clock: clock.RealClock{}, Interval: c.sweep.Interval, Grace: c.sweep.Grace, Logger: log,
		Tenants: sweep.TenantStores(tenants, list, log)}, nil
}

// statefulSetScaler sets a StatefulSet's replicas through its scale
// subresource.
func statefulSetScaler(c config) (func(context.Context, int) error, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig for --scale-target: %w", err)
	}
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	name := strings.TrimPrefix(c.scaleTarget, "statefulset/")
	return func(ctx context.Context, n int) error {
		sc, err := kube.AppsV1().StatefulSets(c.namespace).GetScale(ctx, name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("read scale of statefulset %s/%s: %w", c.namespace, name, err)
		}
		if sc.Spec.Replicas == int32(n) {
			return nil
		}
		sc.Spec.Replicas = int32(n)
		_, err = kube.AppsV1().StatefulSets(c.namespace).UpdateScale(ctx, name, sc, metav1.UpdateOptions{})
		return err
	}, nil
}

func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}
