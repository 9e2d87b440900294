package cluster

import (
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/rotor-dev/rotor/plugins"
	"github.com/rotor-dev/rotor/plugins/pod"
)

// One attempt's pod in two targets. Placement never puts an attempt whose
// pod a target's cache holds on another target, and waits while a target
// that is not lost has not listed the namespace (placedLocked). One case
// is left: a round creates an attempt's pod on target A, A goes silent,
// the status write is lost (the replica dies), and A stays silent past
// its grace period. The next owner cannot see A and, A being lost, places
// the attempt, under the same number, on B. When A answers again its pod
// cache shows the first pod, which nothing in the status records there:
// it would run beside the one on B and outlive the workflow. The registry
// notices a pod held by two caches as their events arrive (notePod), so a
// round can ask cheaply whether its workflow has such a pod (Doubled) and
// only then which of its attempts' pods sit on a cluster other than the
// recorded one (Strays). The executor deletes those as orphans.

// notePod keeps the index of task pods held by more than one target's
// pod cache, from an event of cluster's cache (the cache already shows
// the change).
func (r *Registry) notePod(p *corev1.Pod) {
	uid := p.Labels[pod.LabelWorkflowUID]
	if uid == "" {
		return
	}
	key := p.Namespace + "/" + p.Name
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.holdersLocked(p.Namespace, p.Name, uid)) > 1 {
		if r.copies == nil {
			r.copies = map[string]map[string]bool{}
		}
		if r.copies[uid] == nil {
			r.copies[uid] = map[string]bool{}
		}
		r.copies[uid][key] = true
		return
	}
	if m := r.copies[uid]; m != nil {
		delete(m, key)
		if len(m) == 0 {
			delete(r.copies, uid)
		}
	}
}

// holdersLocked lists, sorted, the clusters whose pod cache holds pod
// namespace/name of the workflow with that UID. The caller holds mu.
func (r *Registry) holdersLocked(namespace, name, uid string) []string {
	var out []string
	for cname, e := range r.entries {
		if e.cluster == nil {
			continue
		}
		p, err := e.cluster.Pods.Pods(namespace).Get(name)
		if err == nil && p.Labels[pod.LabelWorkflowUID] == uid {
			out = append(out, cname)
		}
	}
	sort.Strings(out)
	return out
}

// Doubled implements executor.StrayFinder: whether some task pod of the
// workflow with that UID is in more than one target's pod cache. Entries
// that no longer hold (a cache was replaced without delete events) are
// dropped here.
func (r *Registry) Doubled(namespace, workflowUID string) bool {
	r.mu.RLock()
	n := len(r.copies[workflowUID])
	r.mu.RUnlock()
	if n == 0 {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.copies[workflowUID]
	for key := range m {
		ns, name, _ := strings.Cut(key, "/")
		if ns != namespace || len(r.holdersLocked(ns, name, workflowUID)) < 2 {
			delete(m, key)
		}
	}
	if len(m) == 0 {
		delete(r.copies, workflowUID)
		return false
	}
	return true
}

// Strays implements executor.StrayFinder: the clusters other than
// recorded whose pod cache holds the attempt's pod.
func (r *Registry) Strays(id plugins.TaskID, recorded string) []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []string
	for _, c := range r.holdersLocked(id.Namespace, pod.Name(id), id.WorkflowUID) {
		if c != recorded {
			out = append(out, c)
		}
	}
	return out
}
