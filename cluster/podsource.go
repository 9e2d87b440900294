package cluster

import (
	"context"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/rotor-dev/rotor/plugins/pod"
)

// A pod cache of one target is either one informer over every namespace
// (an unsharded propeller: it reconciles every namespace) or, once the
// registry is scoped (ScopePods), one informer per namespace the replica
// holds: a sharded replica then receives and caches only the task pods of
// its own shard, so the pod traffic and memory of all replicas together
// stay those of one. Namespaces rather than partitions: the Workflow and
// WorkflowTemplate watches are per namespace already, a pod needs no new
// label (pods created before an upgrade are seen), and the apiserver
// serves a namespaced watch from its watch cache by key prefix.

// podSource is one build's task-pod cache of a target, and the lister
// plugins read it through. Safe for concurrent use.
type podSource struct {
	ctx     context.Context // ends with the build
	client  kubernetes.Interface
	handler cache.ResourceEventHandler

	mu   sync.RWMutex
	all  *podInformer            // unscoped
	byNS map[string]*podInformer // scoped
}

type podInformer struct {
	inf  cache.SharedIndexInformer
	reg  cache.ResourceEventHandlerRegistration
	stop context.CancelFunc
}

func (i *podInformer) synced() bool { return i.reg.HasSynced() }

// newPodSource starts the cache of a build: every namespace when
// namespaces is nil, else those given (more come with add).
func newPodSource(ctx context.Context, client kubernetes.Interface, h cache.ResourceEventHandler, namespaces []string) *podSource {
	s := &podSource{ctx: ctx, client: client, handler: h, byNS: map[string]*podInformer{}}
	if namespaces == nil {
		s.all = s.start(metav1.NamespaceAll)
		return s
	}
	for _, ns := range namespaces {
		s.byNS[ns] = s.start(ns)
	}
	return s
}

func (s *podSource) start(ns string) *podInformer {
	inf := coreinformers.NewFilteredPodInformer(s.client, ns, 0,
		cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc},
		func(o *metav1.ListOptions) { o.LabelSelector = labels.Set{pod.LabelManaged: "true"}.String() })
	_ = inf.SetTransform(stripManagedFields)
	reg, _ := inf.AddEventHandler(s.handler)
	ctx, cancel := context.WithCancel(s.ctx)
	go inf.Run(ctx.Done())
	return &podInformer{inf: inf, reg: reg, stop: cancel}
}

// add starts the informer of a namespace (scoped sources only).
func (s *podSource) add(ns string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.all != nil || s.byNS[ns] != nil {
		return
	}
	s.byNS[ns] = s.start(ns)
}

// remove stops the informer of a namespace; its pods leave the cache.
func (s *podSource) remove(ns string) {
	s.mu.Lock()
	i := s.byNS[ns]
	delete(s.byNS, ns)
	s.mu.Unlock()
	if i != nil {
		i.stop()
	}
}

// synced reports whether every informer has delivered its first list to
// the handler.
func (s *podSource) synced() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.all != nil {
		return s.all.synced()
	}
	for _, i := range s.byNS {
		if !i.synced() {
			return false
		}
	}
	return true
}

// nsSynced reports whether the pods of ns are all in the cache.
func (s *podSource) nsSynced(ns string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.all != nil {
		return s.all.synced()
	}
	i := s.byNS[ns]
	return i != nil && i.synced()
}

// informers counts the running informers (watches on the target).
func (s *podSource) informers() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.all != nil {
		return 1
	}
	return len(s.byNS)
}

// cached counts the pods in the cache (a listing of keys: it is read
// at metrics scrapes only).
func (s *podSource) cached() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	if s.all != nil {
		n += len(s.all.inf.GetIndexer().ListKeys())
	}
	for _, i := range s.byNS {
		n += len(i.inf.GetIndexer().ListKeys())
	}
	return n
}

// List implements corelisters.PodLister over every namespace cached.
func (s *podSource) List(sel labels.Selector) ([]*corev1.Pod, error) {
	s.mu.RLock()
	infs := make([]*podInformer, 0, len(s.byNS)+1)
	if s.all != nil {
		infs = append(infs, s.all)
	}
	for _, i := range s.byNS {
		infs = append(infs, i)
	}
	s.mu.RUnlock()
	var out []*corev1.Pod
	for _, i := range infs {
		pods, err := corelisters.NewPodLister(i.inf.GetIndexer()).List(sel)
		if err != nil {
			return nil, err
		}
		out = append(out, pods...)
	}
	return out, nil
}

// Pods implements corelisters.PodLister. A namespace not cached lists
// nothing: a scoped replica reads only the namespaces it holds, whose
// informers stay until its last round there has ended.
func (s *podSource) Pods(ns string) corelisters.PodNamespaceLister {
	s.mu.RLock()
	i := s.all
	if i == nil {
		i = s.byNS[ns]
	}
	s.mu.RUnlock()
	if i == nil {
		return noPods{}
	}
	return corelisters.NewPodLister(i.inf.GetIndexer()).Pods(ns)
}

type noPods struct{}

func (noPods) List(labels.Selector) ([]*corev1.Pod, error) { return nil, nil }
func (noPods) Get(name string) (*corev1.Pod, error) {
	return nil, apierrors.NewNotFound(corev1.Resource("pods"), name)
}

// stripManagedFields drops managedFields from cached pods: nothing reads
// them, and they are a large part of a pod object.
func stripManagedFields(obj any) (any, error) {
	if p, ok := obj.(*corev1.Pod); ok {
		p.ManagedFields = nil
	}
	return obj, nil
}
