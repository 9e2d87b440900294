// Command rotor-propeller is a Rotor replica: it reconciles Workflows and
// runs their task pods on the registered target clusters.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"

	"github.com/rotor-dev/rotor/cluster"
	"github.com/rotor-dev/rotor/cluster/capacity"
	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/executor"
	versioned "github.com/rotor-dev/rotor/controller/generated/clientset/versioned"
	rotorscheme "github.com/rotor-dev/rotor/controller/generated/clientset/versioned/scheme"
	rotorinformers "github.com/rotor-dev/rotor/controller/generated/informers/externalversions"
	rotorlisters "github.com/rotor-dev/rotor/controller/generated/listers/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/propeller"
	"github.com/rotor-dev/rotor/controller/taskcache"
	"github.com/rotor-dev/rotor/controller/tenancy"
	"github.com/rotor-dev/rotor/data/location"
	"github.com/rotor-dev/rotor/data/store"
	"github.com/rotor-dev/rotor/data/sweep"
	"github.com/rotor-dev/rotor/internal/endpoints"
	"github.com/rotor-dev/rotor/internal/kubemetrics"
	"github.com/rotor-dev/rotor/internal/tracing"
	"github.com/rotor-dev/rotor/plugins"
	rotorhttp "github.com/rotor-dev/rotor/plugins/http"
	"github.com/rotor-dev/rotor/plugins/http/etcdjournal"
	"github.com/rotor-dev/rotor/plugins/pod"
	"github.com/rotor-dev/rotor/shard"
	"github.com/rotor-dev/rotor/shard/member"
	"github.com/rotor-dev/rotor/shardproto"
)

func main() {
	var cfg config
	cfg.bind(flag.CommandLine)
	flag.Parse()
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(cfg.logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "bad --log-level %q: use debug, info, warn or error\n", cfg.logLevel)
		os.Exit(2)
	}
	if err := cfg.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "rotor-propeller:", err)
		os.Exit(2)
	}
	log := slog.New(tracing.LogHandler(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})))
	slog.SetDefault(log)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log); err != nil {
		log.Error("rotor-propeller failed", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config, log *slog.Logger) error {
	kubemetrics.Register(prometheus.DefaultRegisterer)
	shutdown, err := tracing.Setup(ctx, "rotor-propeller", *cfg.tracing)
	if err != nil {
		return err
	}
	defer flushTraces(shutdown, log)
	rc, err := clientcmd.BuildConfigFromFlags("", cfg.kubeconfig)
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	rc.QPS, rc.Burst = float32(cfg.kubeQPS), cfg.kubeBurst
	rc.UserAgent = "rotor-propeller"
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	rotor, err := versioned.NewForConfig(rc)
	if err != nil {
		return err
	}
	// Not ready until the caches have synced and, sharded, until the
	// replica's own shard has.
	var ready atomic.Pointer[func() error]
	notYet := func() error { return errors.New("caches not synced") }
	ready.Store(&notYet)
	epOpts, err := cfg.endpoints.Options(cfg.listen, kube)
	if err != nil {
		return err
	}
	if _, err := endpoints.Serve(ctx, cfg.listen, func() error { return (*ready.Load())() }, log, epOpts); err != nil {
		return err
	}
	factory := rotorinformers.NewSharedInformerFactory(rotor, 0)
	// Clusters resync so that a rotated kubeconfig Secret is read again.
	clusterFactory := rotorinformers.NewSharedInformerFactory(rotor, 30*time.Second)
	var ctrl *propeller.Controller
	registry := cluster.NewRegistry(kube, cfg.namespace, func(name string, p *corev1.Pod) { ctrl.EnqueuePod(name, p) }, log)
	defer registry.Stop()
	var taskCache executor.Cache
	var etcd *clientv3.Client
	if cfg.etcd.Endpoints != "" {
		var err error
		if etcd, err = cfg.etcd.New(); err != nil {
			return err
		}
		defer etcd.Close()
		taskCache = taskcache.NewStore(etcd, cfg.cachePrefix)
		log.Info("task cache on", "etcd", cfg.etcd.Endpoints, "prefix", cfg.cachePrefix)
		// A replica that takes over a partition replays the answers its
		// predecessor's lost rounds got, instead of calling again.
		cfg.http.Journal = rotorhttp.Layered{
			Local:  rotorhttp.NewMemoryJournal(clock.RealClock{}, rotorhttp.LocalJournalTTL, rotorhttp.LocalJournalMax),
			Shared: etcdjournal.New(etcd, cfg.callJournalPrefix, etcdjournal.Options{}),
		}
	}
	kubeFactory := informers.NewSharedInformerFactory(kube, 0)
	namespaces := kubeFactory.Core().V1().Namespaces()
	// A tenant's own http URL prefixes are on its namespace.
	nsLister := namespaces.Lister()
	cfg.http.NamespaceAnnotations = func(name string) map[string]string {
		ns, err := nsLister.Get(name)
		if err != nil {
			return nil
		}
		return ns.Annotations
	}
	if cfg.tenantIsolation {
		// Registered before clusterFactory starts.
		cfg.pod.Tenants = tenancy.Source{Namespaces: nsLister, Policies: clusterFactory.Rotor().V1alpha1().TenantPolicies().Lister()}
	}
	if cfg.tenantSecrets {
		cfg.pod.Secrets, cfg.http.Secrets = apiSecrets{kube}, apiSecrets{kube}
	}
	var values executor.Values
	var rawStore *store.Store
	var locations *location.Resolver
	if cfg.rawData.URL != "" {
		res, d, err := dataPlane(ctx, kube, &cfg, func(name string) (map[string]string, error) {
			ns, err := nsLister.Get(name)
			if err != nil {
				return nil, err
			}
			return ns.Annotations, nil
		})
		if err != nil {
			return err
		}
		defer res.Default.Store.Close()
		cfg.pod.Data = d
		values = location.Values{R: res}
		rawStore, locations = res.Default.Store, res
		log.Info("data plane on", "store", d.Root, "agent", d.Image)
	}
	exec := &executor.Executor{
		Plugins: plugins.NewRegistry(pod.New(cfg.pod), rotorhttp.New(cfg.http)), Clusters: registry, Clock: clock.RealClock{},
		MaxSystemRetries: 5, Logger: log, Values: values,
	}
	if taskCache != nil {
		exec.Cache = taskCache
	}
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: kube.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	recorder := broadcaster.NewRecorder(rotorscheme.Scheme, corev1.EventSource{Component: "rotor-propeller"})
	events, _ := propeller.ParseEventPolicy(cfg.events) // validated
	opts := propeller.Options{Logger: log, Events: recorder, EventPolicy: events, Resync: cfg.resync, StartedWriteDelay: cfg.startedWriteDelay,
		CleanupUnreachableTimeout: cleanupTimeout(cfg.cleanupTimeout), NamespaceAnnotations: cfg.http.NamespaceAnnotations}
	var replica *shard.Replica
	var mem *member.Member
	memberDone := make(chan error, 1)
	if cfg.sharded {
		var err error
		mem, err = member.Join(ctx, etcd, member.Config{
			Prefix: shardproto.Keys{Prefix: cfg.shardPrefix}.Members(), Info: member.Info{Name: cfg.name, Weight: 1},
			TTL: cfg.leaseTTL, Logger: log,
		})
		if err != nil {
			return err
		}
		// Renew from the start: syncing caches can take longer than a TTL.
		memberCtx, stopMember := context.WithCancel(context.Background())
		defer stopMember()
		go func() { memberDone <- mem.Run(memberCtx) }()
		var pods shard.PodWatcher // nil: the registry watches every pod
		if cfg.podWatches == "shard" {
			// Each replica caches the task pods of its own namespaces only.
			registry.ScopePods()
			pods = registry
		}
		replica = shard.New(shard.Config{
			Name: cfg.name, Keys: shardproto.Keys{Prefix: cfg.shardPrefix}, Partitions: cfg.partitions, Etcd: etcd,
			Member: mem, Rotor: rotor, Namespaces: namespaces.Lister(), Enqueue: func(o any) { ctrl.Enqueue(o) }, Logger: log,
			Pods: pods,
		})
		// No plugin call after the lease deadline: a replica that wakes
		// from a freeze mid-round must not create pods the new owner
		// does not know of.
		exec.Lease = replica.CanWrite
		ctrl = propeller.New(rotor, replica, exec, opts)
		exec.Workflows = scopeWorkflows{replica}
		// Templates of the shard's namespaces only, watched with them.
		exec.Templates = replicaTemplates{replica}
		// Replicas share each cluster's maxTaskPods through slots in etcd.
		registry.SetSlots(capacity.New(etcd, shardproto.Keys{Prefix: cfg.shardPrefix}.Capacity(), cfg.name))
		log.Info("sharded replica joined", "name", cfg.name, "partitions", cfg.partitions, "leaseTTL", cfg.leaseTTL)
	} else {
		wfInformer := factory.Rotor().V1alpha1().Workflows()
		_ = wfInformer.Informer().SetTransform(shard.StripManagedFields)
		// The first round waits for every target's first pod cache (the
		// prober finds the silent ones unreachable sooner than Max).
		scope := propeller.AllNamespaces(wfInformer, propeller.TargetWait{Connecting: registry.Connecting, Max: time.Minute, Log: log})
		exec.Templates = templateGetter{factory.Rotor().V1alpha1().WorkflowTemplates().Lister()}
		ctrl = propeller.New(rotor, scope, exec, opts)
		exec.Workflows = scopeWorkflows{scope}
		ctrl.Watch(wfInformer.Informer())
	}
	clusters := clusterFactory.Rotor().V1alpha1().Clusters()
	_, _ = clusters.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		// Sync never waits for a target: each Cluster connects in the
		// background, so one that does not answer holds up no other.
		AddFunc:    func(o any) { registry.Sync(ctx, o.(*v1alpha1.Cluster)) },
		UpdateFunc: func(_, o any) { registry.Sync(ctx, o.(*v1alpha1.Cluster)) },
		DeleteFunc: func(o any) {
			if c, ok := o.(*v1alpha1.Cluster); ok {
				registry.Remove(c.Name)
			}
		},
	})
	exec.Quota = cluster.NewQuota(registry, namespaces.Lister(), time.Now)
	registry.SetNamespaces(namespaces.Lister())
	kubeFactory.Start(ctx.Done())
	for t, ok := range kubeFactory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("cache for %v did not sync", t)
		}
	}
	factory.Start(ctx.Done())
	clusterFactory.Start(ctx.Done())
	for t, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("cache for %v did not sync", t)
		}
	}
	for t, ok := range clusterFactory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("cache for %v did not sync", t)
		}
	}
	known, err := clusters.Lister().List(labels.Everything())
	if err != nil {
		return fmt.Errorf("list clusters: %w", err)
	}
	registry.Declare(known)
	if !cfg.sharded {
		if cfg.probeClusters {
			p := cfg.probe
			p.Rotor, p.Kube, p.Clusters, p.Namespace, p.Logger = rotor, kube, clusters.Lister(), cfg.namespace, log
			go p.Run(ctx)
		}
		// A lone replica also sweeps the raw data, as the leading
		// manager does for a sharded install.
		if rawStore != nil && cfg.sweep.Interval > 0 {
			src := &sweep.Kube{Rotor: rotor, Kube: kube, DefaultRetention: cfg.sweep.Retention}
			if lister, ok := taskCache.(sweep.CacheLister); ok {
				src.Cache = lister // its entries' data stays
			}
			sw := &sweep.Sweeper{Store: rawStore, Source: src, Clock: clock.RealClock{}, Interval: cfg.sweep.Interval, Grace: cfg.sweep.Grace, Logger: log,
				Tenants: sweep.TenantStores(locations, func(context.Context) ([]*corev1.Namespace, error) { return nsLister.List(labels.Everything()) }, log)}
			go sw.Run(ctx)
		}
		ok := func() error { return nil }
		ready.Store(&ok)
		return ctrl.Run(ctx, cfg.workers)
	}
	shardReady := replica.Ready
	ready.Store(&shardReady)
	return runSharded(ctx, cfg, ctrl, replica, mem, memberDone, log)
}

// runSharded runs the controller over the replica's shard. A lost lease
// ends the process: a supervisor restarts it and it joins afresh. SIGTERM
// asks the manager to move every partition away first (a graceful drain).
func runSharded(ctx context.Context, cfg config, ctrl *propeller.Controller, replica *shard.Replica, mem *member.Member, memberDone <-chan error, log *slog.Logger) error {
	work, stopWork := context.WithCancel(context.Background())
	defer stopWork()
	replicaDone := make(chan error, 1)
	go func() { replicaDone <- replica.Run(work) }()
	go func() { _ = ctrl.Run(work, cfg.workers) }()
	select {
	case err := <-memberDone:
		return fmt.Errorf("replica %s: %w", cfg.name, err)
	case err := <-replicaDone:
		return fmt.Errorf("replica %s: %w", cfg.name, err)
	case <-ctx.Done():
	}
	log.Info("draining: asking the manager to move this replica's partitions", "timeout", cfg.drainWait)
	dctx, cancel := context.WithTimeout(context.Background(), cfg.drainWait)
	defer cancel()
	if err := mem.SetDraining(dctx, true); err != nil {
		log.Warn("could not ask for a drain; leaving at once", "err", err)
		return nil
	}
	for replica.Owned() > 0 && dctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
	}
	log.Info("drained; leaving the membership", "left", replica.Owned())
	return nil
}

// cleanupTimeout maps the flag (0: for ever) to the option (negative: for
// ever, 0: the default).
func cleanupTimeout(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// replicaTemplates reads WorkflowTemplates from the replica's per-namespace
// caches.
type replicaTemplates struct{ r *shard.Replica }

func (t replicaTemplates) Get(namespace, name string) (*v1alpha1.WorkflowTemplate, error) {
	return t.r.GetTemplate(namespace, name)
}

// templateGetter reads WorkflowTemplates from the informer cache.
type templateGetter struct {
	lister rotorlisters.WorkflowTemplateLister
}

func (t templateGetter) Get(namespace, name string) (*v1alpha1.WorkflowTemplate, error) {
	return t.lister.WorkflowTemplates(namespace).Get(name)
}

// scopeWorkflows reads Workflows through the replica's scope (recovery
// reads an earlier execution in the same namespace, so the same shard).
type scopeWorkflows struct{ scope propeller.Scope }

func (w scopeWorkflows) Get(namespace, name string) (*v1alpha1.Workflow, error) {
	return w.scope.Get(namespace, name)
}

// flushTraces sends the spans still buffered, giving up after 5 s.
func flushTraces(shutdown func(context.Context) error, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := shutdown(ctx); err != nil {
		log.Warn("flushing traces failed", "err", err)
	}
}

// apiSecrets reads a tenant's Secret from the control apiserver, when a
// task needs it (no cache: a Secret informer would hold every Secret of
// the cluster in memory, and need list and watch on all of them).
type apiSecrets struct{ kube kubernetes.Interface }

func (a apiSecrets) Secret(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return a.kube.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
}
