// Package cluster keeps a client and a task-pod cache for every registered
// target cluster (Cluster objects with a kubeconfig Secret), and places
// attempts on them.
package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/plugins"
	"github.com/rotor-dev/rotor/plugins/pod"
)

// DefaultSecretKey is the Secret key that holds a kubeconfig.
const DefaultSecretKey = "kubeconfig"

// PodHandler is told about every change to a task pod in any cluster.
type PodHandler func(cluster string, p *corev1.Pod)

// Registry holds one entry per usable target cluster. Safe for concurrent
// use.
type Registry struct {
	control   kubernetes.Interface
	namespace string
	onPod     PodHandler
	log       *slog.Logger
	qps       float32
	burst     int

	mu      sync.RWMutex
	entries map[string]*entry
}

type entry struct {
	cluster *plugins.Cluster
	gen     int64
	stop    context.CancelFunc
	synced  cache.InformerSynced
}

// NewRegistry returns an empty registry. Secrets without a namespace are
// read from namespace (Rotor's own).
func NewRegistry(control kubernetes.Interface, namespace string, onPod PodHandler, log *slog.Logger) *Registry {
	return &Registry{control: control, namespace: namespace, onPod: onPod, log: log, qps: 300, burst: 600, entries: map[string]*entry{}}
}

// Sync brings the entry of c up to date: builds a client from its Secret
// and starts its pod cache. A Cluster that cannot be reached is logged and
// left out of placement.
func (r *Registry) Sync(ctx context.Context, c *v1alpha1.Cluster) error {
	r.mu.RLock()
	old := r.entries[c.Name]
	r.mu.RUnlock()
	if old != nil && old.gen == c.Generation {
		return nil
	}
	client, err := r.clientFor(ctx, c)
	if err != nil {
		r.Remove(c.Name)
		return fmt.Errorf("cluster %s: %w", c.Name, err)
	}
	ictx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = labels.Set{pod.LabelManaged: "true"}.String()
		}))
	podInf := factory.Core().V1().Pods()
	name := c.Name
	_, _ = podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { r.onPod(name, o.(*corev1.Pod)) },
		UpdateFunc: func(_, o any) { r.onPod(name, o.(*corev1.Pod)) },
		DeleteFunc: func(o any) {
			if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = t.Obj
			}
			if p, ok := o.(*corev1.Pod); ok {
				r.onPod(name, p)
			}
		},
	})
	factory.Start(ictx.Done())
	e := &entry{
		cluster: &plugins.Cluster{Name: c.Name, Client: client, Pods: podInf.Lister()},
		gen:     c.Generation, stop: cancel, synced: podInf.Informer().HasSynced,
	}
	r.mu.Lock()
	if prev := r.entries[c.Name]; prev != nil {
		prev.stop()
	}
	r.entries[c.Name] = e
	r.mu.Unlock()
	if !cache.WaitForCacheSync(ctx.Done(), e.synced) {
		return fmt.Errorf("cluster %s: pod cache did not sync", c.Name)
	}
	r.log.Info("target cluster registered", "cluster", c.Name)
	return nil
}

func (r *Registry) clientFor(ctx context.Context, c *v1alpha1.Cluster) (kubernetes.Interface, error) {
	ref := c.Spec.KubeconfigSecretRef
	if ref == nil {
		return nil, fmt.Errorf("spec.kubeconfigSecretRef is not set: point it at a Secret holding a kubeconfig")
	}
	ns, key := ref.Namespace, ref.Key
	if ns == "" {
		ns = r.namespace
	}
	if key == "" {
		key = DefaultSecretKey
	}
	sec, err := r.control.CoreV1().Secrets(ns).Get(ctx, ref.Name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("read kubeconfig Secret %s/%s: %w", ns, ref.Name, err)
	}
	data, ok := sec.Data[key]
	if !ok {
		return nil, fmt.Errorf("kubeconfig Secret %s/%s has no key %q", ns, ref.Name, key)
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(data)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig Secret %s/%s key %q is not a valid kubeconfig: %w", ns, ref.Name, key, err)
	}
	cfg.QPS, cfg.Burst = r.qps, r.burst
	cfg.UserAgent = "rotor-propeller"
	return kubernetes.NewForConfig(cfg)
}

// Remove stops and forgets a cluster.
func (r *Registry) Remove(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.entries[name]; e != nil {
		e.stop()
		delete(r.entries, name)
	}
}

// Get implements executor.Clusters.
func (r *Registry) Get(name string) (*plugins.Cluster, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.entries[name]
	if !ok {
		return nil, false
	}
	return e.cluster, true
}

// Pick implements executor.Clusters. Until routing lands it places every
// attempt on the first registered cluster by name, so one target runs
// everything deterministically.
func (r *Registry) Pick(plugins.TaskID, *v1alpha1.TaskTemplate) (*plugins.Cluster, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.entries))
	for n := range r.entries {
		names = append(names, n)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no target cluster is registered and reachable: create a Cluster object with a kubeconfig Secret (see docs/operations.md)")
	}
	sort.Strings(names)
	return r.entries[names[0]].cluster, nil
}

// Stop ends every pod cache.
func (r *Registry) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for n, e := range r.entries {
		e.stop()
		delete(r.entries, n)
	}
}
