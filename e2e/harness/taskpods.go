package harness

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/rotor-dev/rotor/plugins/pod"
)

// PodSeen is one task pod as a target's informer showed it.
type PodSeen struct {
	Target, Namespace, Name, UID string
}

// PodLog accumulates every task pod ever seen, by namespace/name (a pod
// name is its attempt: workflow-node-attempt) → target/UID. Not safe for
// concurrent use.
type PodLog map[string]map[string]bool

// Add records a pod.
func (l PodLog) Add(p PodSeen) {
	k := p.Namespace + "/" + p.Name
	if l[k] == nil {
		l[k] = map[string]bool{}
	}
	l[k][p.Target+"/"+p.UID] = true
}

// Duplicates lists, sorted, the attempts that had more than one pod (in
// one target or across targets), each with every target/UID seen.
func (l PodLog) Duplicates() []string {
	var out []string
	for k, s := range l {
		if len(s) > 1 {
			var ids []string
			for id := range s {
				ids = append(ids, id)
			}
			sort.Strings(ids)
			out = append(out, fmt.Sprintf("%s: %d pods %v", k, len(ids), ids))
		}
	}
	sort.Strings(out)
	return out
}

// PodRecorder records every task pod (rotor.dev/managed=true) any target
// shows, with an informer per target, until Stop: the "one pod per
// attempt" check of handoff and chaos tests. A pod created and deleted
// while a target's informer was disconnected is not seen.
type PodRecorder struct {
	mu     sync.Mutex
	log    PodLog
	events int
	// active holds, by target, the UIDs of pods neither finished nor
	// being deleted; most is the largest it has been.
	active map[string]map[string]bool
	most   map[string]int
	stop   chan struct{}
	once   sync.Once
}

// RecordTaskPods starts a PodRecorder and waits up to timeout for every
// target's informer to sync.
func (e *Env) RecordTaskPods(timeout time.Duration) (*PodRecorder, error) {
	r := &PodRecorder{log: PodLog{}, stop: make(chan struct{}), active: map[string]map[string]bool{}, most: map[string]int{}}
	for i, c := range e.Env.Targets {
		f := informers.NewSharedInformerFactoryWithOptions(e.Targets[i], 0,
			informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = pod.LabelManaged + "=true" }))
		inf := f.Core().V1().Pods().Informer()
		add := func(obj any) {
			p, ok := obj.(*corev1.Pod)
			if !ok {
				return
			}
			r.mu.Lock()
			r.log.Add(PodSeen{Target: c.Name, Namespace: p.Namespace, Name: p.Name, UID: string(p.UID)})
			r.events++
			r.setActive(c.Name, string(p.UID), p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed && p.DeletionTimestamp == nil)
			r.mu.Unlock()
		}
		del := func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if p, ok := obj.(*corev1.Pod); ok {
				r.mu.Lock()
				r.setActive(c.Name, string(p.UID), false)
				r.mu.Unlock()
			}
		}
		// Updates too: an informer that lists again after its apiserver
		// came back reports the pods it had as updates, and a pod
		// replaced under the same name meanwhile as an update of the old
		// one; its new UID gives it away.
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: add, UpdateFunc: func(_, n any) { add(n) }, DeleteFunc: del}); err != nil {
			r.Stop()
			return nil, err
		}
		f.Start(r.stop)
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		synced := cache.WaitForCacheSync(ctx.Done(), inf.HasSynced)
		cancel()
		if !synced {
			r.Stop()
			return nil, fmt.Errorf("task pod informer of %s did not sync in %s", c.Name, timeout)
		}
	}
	return r, nil
}

// setActive records whether pod uid of target is active; r.mu is held.
func (r *PodRecorder) setActive(target, uid string, active bool) {
	if r.active[target] == nil {
		r.active[target] = map[string]bool{}
	}
	if active {
		r.active[target][uid] = true
	} else {
		delete(r.active[target], uid)
	}
	r.most[target] = max(r.most[target], len(r.active[target]))
}

// MostActive returns, by target, the most task pods the informers saw
// active (not finished, not being deleted) at once.
func (r *PodRecorder) MostActive() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for t, n := range r.most {
		out[t] = n
	}
	return out
}

// Stop ends the informers; safe to call more than once.
func (r *PodRecorder) Stop() { r.once.Do(func() { close(r.stop) }) }

// Result returns the attempts that had more than one pod, how many
// attempts had a pod, and how many informer events were recorded.
func (r *PodRecorder) Result() (duplicates []string, attempts, events int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.log.Duplicates(), len(r.log), r.events
}
