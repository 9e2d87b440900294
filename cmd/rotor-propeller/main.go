// Command rotor-propeller is a Rotor replica: it reconciles Workflows and
// runs their task pods on the registered target clusters.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"

	"github.com/rotor-dev/rotor/cluster"
	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/executor"
	versioned "github.com/rotor-dev/rotor/controller/generated/clientset/versioned"
	rotorscheme "github.com/rotor-dev/rotor/controller/generated/clientset/versioned/scheme"
	rotorinformers "github.com/rotor-dev/rotor/controller/generated/informers/externalversions"
	rotorlisters "github.com/rotor-dev/rotor/controller/generated/listers/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/propeller"
	"github.com/rotor-dev/rotor/controller/taskcache"
	"github.com/rotor-dev/rotor/plugins"
	rotorhttp "github.com/rotor-dev/rotor/plugins/http"
	"github.com/rotor-dev/rotor/plugins/pod"
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
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log); err != nil {
		log.Error("rotor-propeller failed", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config, log *slog.Logger) error {
	rc, err := clientcmd.BuildConfigFromFlags("", cfg.kubeconfig)
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	rc.QPS, rc.Burst = 200, 400
	rc.UserAgent = "rotor-propeller"
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	rotor, err := versioned.NewForConfig(rc)
	if err != nil {
		return err
	}
	var ready atomic.Bool
	if err := serve(ctx, cfg.listen, &ready, log); err != nil {
		return err
	}
	factory := rotorinformers.NewSharedInformerFactory(rotor, 0)
	var ctrl *propeller.Controller
	registry := cluster.NewRegistry(kube, cfg.namespace, func(name string, p *corev1.Pod) { ctrl.EnqueuePod(name, p) }, log)
	defer registry.Stop()
	var taskCache executor.Cache
	if cfg.etcdEndpoints != "" {
		etcd, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(cfg.etcdEndpoints, ","), DialTimeout: 5 * time.Second})
		if err != nil {
			return fmt.Errorf("connect to etcd %s for the task cache: %w", cfg.etcdEndpoints, err)
		}
		defer etcd.Close()
		taskCache = taskcache.NewStore(etcd, cfg.cachePrefix)
		log.Info("task cache on", "etcd", cfg.etcdEndpoints, "prefix", cfg.cachePrefix)
	}
	templates := factory.Rotor().V1alpha1().WorkflowTemplates()
	exec := &executor.Executor{
		Plugins: plugins.NewRegistry(pod.New(cfg.pod), rotorhttp.New(cfg.http)), Clusters: registry, Clock: clock.RealClock{},
		Templates: templateGetter{templates.Lister()}, MaxSystemRetries: 5,
		Workflows: workflowGetter{factory.Rotor().V1alpha1().Workflows().Lister()},
	}
	if taskCache != nil {
		exec.Cache = taskCache
	}
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: kube.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	recorder := broadcaster.NewRecorder(rotorscheme.Scheme, corev1.EventSource{Component: "rotor-propeller"})
	wfInformer := factory.Rotor().V1alpha1().Workflows()
	ctrl = propeller.New(rotor, propeller.AllNamespaces(wfInformer), exec, propeller.Options{Logger: log, Events: recorder, Resync: cfg.resync})
	ctrl.Watch(wfInformer.Informer())
	clusters := factory.Rotor().V1alpha1().Clusters()
	_, _ = clusters.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { syncCluster(ctx, registry, o.(*v1alpha1.Cluster), log) },
		UpdateFunc: func(_, o any) { syncCluster(ctx, registry, o.(*v1alpha1.Cluster), log) },
		DeleteFunc: func(o any) {
			if c, ok := o.(*v1alpha1.Cluster); ok {
				registry.Remove(c.Name)
			}
		},
	})
	kubeFactory := informers.NewSharedInformerFactory(kube, 0)
	exec.Quota = cluster.NewQuota(registry, kubeFactory.Core().V1().Namespaces().Lister(), time.Now)
	kubeFactory.Start(ctx.Done())
	for t, ok := range kubeFactory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("cache for %v did not sync", t)
		}
	}
	factory.Start(ctx.Done())
	for t, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("cache for %v did not sync", t)
		}
	}
	ready.Store(true)
	return ctrl.Run(ctx, cfg.workers)
}

func syncCluster(ctx context.Context, r *cluster.Registry, c *v1alpha1.Cluster, log *slog.Logger) {
	if err := r.Sync(ctx, c); err != nil {
		log.Error("target cluster unusable: fix its Cluster object or kubeconfig Secret", "cluster", c.Name, "err", err)
	}
}

func serve(ctx context.Context, addr string, ready *atomic.Bool, log *slog.Logger) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.Handler())
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "caches not synced", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s for metrics and health: %w", addr, err)
	}
	log.Info("serving metrics and health", "addr", l.Addr().String())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server failed", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	return nil
}

// templateGetter reads WorkflowTemplates from the informer cache.
type templateGetter struct {
	lister rotorlisters.WorkflowTemplateLister
}

func (t templateGetter) Get(namespace, name string) (*v1alpha1.WorkflowTemplate, error) {
	return t.lister.WorkflowTemplates(namespace).Get(name)
}

// workflowGetter reads Workflows from the informer cache (recovery).
type workflowGetter struct {
	lister rotorlisters.WorkflowLister
}

func (w workflowGetter) Get(namespace, name string) (*v1alpha1.Workflow, error) {
	return w.lister.Workflows(namespace).Get(name)
}
