package cluster

import (
	"sort"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// ScopePods makes every pod cache hold only the namespaces given to
// WatchPods: a sharded replica's. Call it before the first Sync.
func (r *Registry) ScopePods() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.scoped = true
	if r.watched == nil {
		r.watched = map[string]bool{}
	}
}

// WatchPods starts caching the task pods of a namespace in every target;
// PodsSynced says when they are all there. A round of the namespace must
// not run before: it would take a pod it cannot see for one never made,
// and place the attempt again, maybe on another cluster.
func (r *Registry) WatchPods(ns string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.scoped || r.watched[ns] {
		return
	}
	r.watched[ns] = true
	for _, e := range r.entries {
		if e.pods != nil {
			e.pods.add(ns)
		}
		if e.next != nil && e.next.pods != nil {
			e.next.pods.add(ns)
		}
	}
}

// UnwatchPods stops caching the task pods of a namespace (its last round
// on this replica has ended) and forgets them in the in-flight counts.
// Capacity slots this process took for them stay taken until the prober
// finds their pod finished, as their pods still run.
func (r *Registry) UnwatchPods(ns string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.scoped || !r.watched[ns] {
		return
	}
	delete(r.watched, ns)
	prefix := ns + "/"
	for _, e := range r.entries {
		if e.pods != nil {
			e.pods.remove(ns)
		}
		if e.next != nil && e.next.pods != nil {
			e.next.pods.remove(ns)
			dropPrefix(e.next.active, prefix)
		}
		dropPrefix(e.active, prefix)
		dropPrefix(e.pending, prefix)
		dropPrefix(e.slotted, prefix)
	}
}

func dropPrefix[V any](m map[string]V, prefix string) {
	for k := range m {
		if strings.HasPrefix(k, prefix) {
			delete(m, k)
		}
	}
}

// PodsSynced reports whether the task pods of ns are cached from every
// target, skipping those the prober finds unreachable (their cache cannot
// sync; attempts recorded there are handled by failover, and new ones
// wait in placement) and those with no client and none being built
// (their credentials do not work). A target still connecting (a replica
// just started) is waited for: a round run before its first cache is in
// use would not see the pods the previous owner made there.
func (r *Registry) PodsSynced(ns string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if !r.scoped {
		return true
	}
	for _, e := range r.entries {
		if !e.unreachableSince.IsZero() {
			continue
		}
		if e.pods == nil {
			if e.next != nil {
				return false // connecting
			}
			continue
		}
		if !e.pods.nsSynced(ns) {
			return false
		}
	}
	return true
}

// Connecting lists, sorted, the targets whose first pod cache is not in
// use yet (being listed, or not started: the Cluster informer's handler
// has not reached it), leaving out those the prober finds unreachable
// and those whose credentials do not work. A replica just started must
// not run rounds before they are in use: it would not see the pods the
// previous process created there just before losing its status write.
// An unsharded replica waits for this list to empty before its first
// round (a sharded one waits per namespace, in PodsSynced).
func (r *Registry) Connecting() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []string
	for name, e := range r.entries {
		if e.pods != nil || !e.unreachableSince.IsZero() || e.clientErr != "" {
			continue
		}
		if e.next != nil || e.kick == nil {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// PodWatches reports, per target with a cache in use, how many pod
// informers (watches on its apiserver) run and how many pods they cache.
func (r *Registry) PodWatches() map[string]PodWatch {
	r.mu.RLock()
	srcs := map[string]*podSource{}
	for name, e := range r.entries {
		if e.pods != nil {
			srcs[name] = e.pods
		}
	}
	r.mu.RUnlock()
	out := make(map[string]PodWatch, len(srcs))
	for name, s := range srcs {
		out[name] = PodWatch{Informers: s.informers(), Pods: s.cached()}
	}
	return out
}

// PodWatch is one target's pod cache: informers running, pods cached.
type PodWatch struct{ Informers, Pods int }

// live holds the registries of this process, for the metrics below.
var live sync.Map // *Registry → struct{}

type podCollector struct{}

var (
	podsCachedDesc = prometheus.NewDesc("rotor_cluster_pods_cached",
		"Task pods in this process's cache of each target cluster (a sharded replica caches its own namespaces' only).", []string{"cluster"}, nil)
	podWatchesDesc = prometheus.NewDesc("rotor_cluster_pod_watches",
		"Pod watches this process runs on each target cluster (1 unsharded; one per namespace held when sharded).", []string{"cluster"}, nil)
)

func (podCollector) Describe(ch chan<- *prometheus.Desc) { ch <- podsCachedDesc; ch <- podWatchesDesc }

func (podCollector) Collect(ch chan<- prometheus.Metric) {
	sum := map[string]PodWatch{}
	live.Range(func(k, _ any) bool {
		for name, w := range k.(*Registry).PodWatches() {
			s := sum[name]
			s.Informers += w.Informers
			s.Pods += w.Pods
			sum[name] = s
		}
		return true
	})
	names := make([]string, 0, len(sum))
	for n := range sum {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		ch <- prometheus.MustNewConstMetric(podsCachedDesc, prometheus.GaugeValue, float64(sum[n].Pods), n)
		ch <- prometheus.MustNewConstMetric(podWatchesDesc, prometheus.GaugeValue, float64(sum[n].Informers), n)
	}
}

func init() { prometheus.MustRegister(podCollector{}) }
