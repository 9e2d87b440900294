package cluster

import (
	"fmt"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"

	"github.com/rotor-dev/rotor/plugins"
	"github.com/rotor-dev/rotor/plugins/pod"
)

// AnnotationMaxRunningPods on a namespace of the control cluster caps the
// task pods of that tenant in flight at once, across every workflow,
// target cluster and replica.
const AnnotationMaxRunningPods = "rotor.dev/max-running-pods"

// pendingTTL is how long an admitted attempt counts before its pod shows
// up in a cache; after that the cache is the truth.
const pendingTTL = 30 * time.Second

// Quota admits new attempts against their namespace's cap. Safe for
// concurrent use.
type Quota struct {
	registry   *Registry
	namespaces corelisters.NamespaceLister
	now        func() time.Time

	mu      sync.Mutex
	pending map[string]map[string]time.Time // namespace → pod name → admitted at
}

// NewQuota counts pods through the registry's caches and reads caps from
// the namespace cache.
func NewQuota(r *Registry, namespaces corelisters.NamespaceLister, now func() time.Time) *Quota {
	return &Quota{registry: r, namespaces: namespaces, now: now, pending: map[string]map[string]time.Time{}}
}

// Limit returns a namespace's cap, if it has a valid one.
func (q *Quota) Limit(namespace string) (int, bool) {
	ns, err := q.namespaces.Get(namespace)
	if err != nil {
		return 0, false
	}
	v, ok := ns.Annotations[AnnotationMaxRunningPods]
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// Admit reports whether the attempt may start; if not, why.
func (q *Quota) Admit(id plugins.TaskID) (bool, string) {
	limit, ok := q.Limit(id.Namespace)
	if !ok {
		return true, ""
	}
	name := pod.Name(id)
	seen, running := q.registry.podsOf(id.Namespace)
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	pend := q.pending[id.Namespace]
	count := len(running)
	for p, at := range pend {
		switch {
		case seen[p] || now.Sub(at) > pendingTTL:
			delete(pend, p) // in a cache now (counted there if active), or given up on
		default:
			count++
		}
	}
	if seen[name] || pend[name] != (time.Time{}) {
		return true, "" // already counted
	}
	if count >= limit {
		return false, fmt.Sprintf("namespace %s has %d task pods in flight, its cap (annotation %s) is %d", id.Namespace, count, AnnotationMaxRunningPods, limit)
	}
	if pend == nil {
		pend = map[string]time.Time{}
		q.pending[id.Namespace] = pend
	}
	pend[name] = now
	return true, ""
}

// podsOf returns the names of a namespace's task pods in every
// registered cluster, and those of them not yet finished.
func (r *Registry) podsOf(namespace string) (seen, active map[string]bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	seen, active = map[string]bool{}, map[string]bool{}
	for _, e := range r.entries {
		if e.cluster == nil {
			continue
		}
		pods, err := e.cluster.Pods.Pods(namespace).List(labels.Everything())
		if err != nil {
			continue
		}
		for _, p := range pods {
			seen[p.Name] = true
			if p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed && p.DeletionTimestamp == nil {
				active[p.Name] = true
			}
		}
	}
	return seen, active
}
