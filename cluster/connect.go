package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/plugins"
)

// Connecting a target happens off the Cluster informer's handler: Sync
// only records what the object says and kicks the entry's connector, a
// goroutine per Cluster that reads the kubeconfig Secret, builds the
// client and starts a pod cache. The cache is put in use (Get returns its
// client, placement counts the cluster) only once it has synced; until
// then the cluster is known and not ready, and a cache it replaces (a
// rotated Secret, a changed spec, back from an outage) stays in use. A
// target that never answers thus only keeps its own cache from syncing.

// build is a pod cache being synced, not yet in use.
type build struct {
	id      int64
	spec    string
	rv      string
	cluster *plugins.Cluster
	pods    *podSource
	stop    context.CancelFunc
	// active is filled by the cache's events until it is put in use.
	active  map[string]bool
	started time.Time
	// checked is when its Secret was last read.
	checked time.Time
}

// secretTimeout bounds one read of a kubeconfig Secret.
const secretTimeout = 10 * time.Second

// Sync brings the entry of c up to date: what placement knows of it at
// once, and, through the entry's connector, its client and pod cache when
// the Cluster's spec or its kubeconfig Secret changed or it is back from
// an outage. It never waits for a target. A Cluster whose Secret is
// missing or invalid stays listed, not ready, with the reason.
func (r *Registry) Sync(ctx context.Context, c *v1alpha1.Cluster) {
	r.mu.Lock()
	e := r.entryOf(c)
	wasReady := e.placementView().Ready
	e.view = viewOf(c)
	e.reported = int(c.Status.PodsInFlight)
	readyAgain := !wasReady && e.placementView().Ready
	specChanged := e.generation != c.Generation
	e.generation = c.Generation
	since, grace := unreachable(c)
	// Back from an outage: start its pod cache afresh, so the pods left
	// there show up at once (the old watch may be deep in its backoff)
	// and the orphans among them get deleted.
	recovered := !e.unreachableSince.IsZero() && since.IsZero()
	wentSilent := e.unreachableSince.IsZero() && !since.IsZero()
	e.unreachableSince, e.grace = since, grace
	e.want = c
	e.restart = e.restart || recovered
	if e.kick == nil {
		cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		e.kick, e.stopConnector = make(chan struct{}, 1), cancel
		go r.connect(cctx, c.Name, e)
	}
	select {
	case e.kick <- struct{}{}:
	default: // a kick is pending: the connector reads want then
	}
	r.mu.Unlock()
	if recovered {
		r.log.Info("target cluster reachable again: restarting its pod cache", "cluster", c.Name)
	}
	if wentSilent || specChanged || (readyAgain && !recovered) {
		// No pod event will come from a silent cluster, a new spec (a
		// drain's taint, a shorter grace period) changes nothing in its
		// pods, and orphans wait for a ready one: have the workflows with
		// pods there look now (and, if silent, plan a look for when its
		// grace period ends).
		n := r.wake(c.Name)
		if wentSilent {
			r.log.Warn("target cluster unreachable", "cluster", c.Name, "since", since, "gracePeriod", grace, "pods", n)
		}
	}
}

// connect is e's connector: it refreshes e on every kick until ctx ends
// (Remove, Stop).
func (r *Registry) connect(ctx context.Context, name string, e *entry) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.kick:
		}
		r.refresh(ctx, name, e)
	}
}

// refresh reads the Secret when due and starts a new pod cache when the
// client must change. It blocks only on the Secret read (control
// cluster), never on the target.
func (r *Registry) refresh(ctx context.Context, name string, e *entry) {
	r.mu.Lock()
	if r.entries[name] != e { // removed meanwhile
		r.mu.Unlock()
		return
	}
	c, restart, now := e.want, e.restart, r.now()
	e.restart = false
	spec := clientSpec(c)
	current := e.cluster != nil && e.spec == spec
	next := e.next
	pending := next != nil && next.spec == spec && !restart
	due := restart || !(current || pending) ||
		(current && now.Sub(e.secretChecked) >= secretRecheck) ||
		(pending && now.Sub(next.checked) >= secretRecheck)
	r.mu.Unlock()
	if !due {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, secretTimeout)
	client, tenants, rv, err := r.clientFor(sctx, c)
	cancel()
	var unreadable *secretUnreadable
	if errors.As(err, &unreadable) && current {
		// Keep the client; the next kick reads the Secret again.
		r.log.Warn("kubeconfig Secret unreadable for now; keeping the target's current client", "cluster", name, "err", err)
		return
	}
	if err != nil {
		if r.setBroken(name, err) {
			r.log.Error("target cluster unusable: fix its Cluster object or kubeconfig Secret", "cluster", name, "err", err)
		}
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.entries[name] != e {
		return
	}
	switch {
	case !restart && current && e.secretRV == rv:
		e.secretChecked = now
		if e.next != nil { // a rebuild that is no longer wanted
			e.next.stop()
			e.next = nil
		}
		return
	case pending && e.next == next && next.rv == rv:
		next.checked = now // still syncing; keep waiting for it
		return
	}
	r.startLocked(ctx, name, e, spec, client, tenants, rv)
}

// startLocked starts a pod cache for e that replaces the one in use once
// it has synced; a cache still syncing is dropped for it. The caller
// holds mu.
func (r *Registry) startLocked(ctx context.Context, name string, e *entry, spec string, client kubernetes.Interface, tenants *tenantClients, rv string) {
	if e.next != nil {
		e.next.stop()
	}
	r.builds++
	bctx, cancel := context.WithCancel(ctx)
	b := &build{id: r.builds, spec: spec, rv: rv, stop: cancel, active: map[string]bool{}, started: r.now(), checked: r.now()}
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { r.podEvent(name, b, o.(*corev1.Pod), false) },
		UpdateFunc: func(_, o any) { r.podEvent(name, b, o.(*corev1.Pod), false) },
		DeleteFunc: func(o any) {
			if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = t.Obj
			}
			if p, ok := o.(*corev1.Pod); ok {
				r.podEvent(name, b, p, true)
			}
		},
	}
	var namespaces []string // nil: every namespace
	if r.scoped {
		namespaces = make([]string, 0, len(r.watched))
		for ns := range r.watched {
			namespaces = append(namespaces, ns)
		}
	}
	b.pods = newPodSource(bctx, client, handler, namespaces)
	b.cluster = &plugins.Cluster{Name: name, Client: client, Pods: b.pods, Tenant: tenants.For}
	e.next = b
	r.log.Info("connecting to target cluster", "cluster", name, "replacing", e.cluster != nil)
	go func() {
		slow := time.AfterFunc(secretRecheck, func() {
			r.log.Warn("target cluster's pod cache has not synced yet: is it reachable?", "cluster", name, "since", b.started)
		})
		defer slow.Stop()
		// The handlers' own sync: every pod of the first lists has been
		// counted in b.active, so none reaches the pod handler twice. A
		// namespace watched meanwhile (WatchPods) joins b and is waited
		// for too.
		// Polled more often than WaitForCacheSync's 100 ms: until then the
		// cluster takes no attempt.
		err := wait.PollUntilContextCancel(bctx, 10*time.Millisecond, true, func(context.Context) (bool, error) {
			return b.pods.synced(), nil
		})
		if err == nil {
			r.install(name, e, b)
		}
	}()
}

// install puts a synced pod cache in use, stopping the one it replaces,
// and passes its pods to the pod handler (their events went nowhere while
// it synced).
func (r *Registry) install(name string, e *entry, b *build) {
	r.mu.Lock()
	if r.entries[name] != e || e.next != b {
		r.mu.Unlock()
		b.stop()
		return
	}
	if e.stop != nil {
		e.stop()
	}
	e.cluster, e.pods, e.build, e.next, e.active = b.cluster, b.pods, b.id, nil, b.active
	e.spec, e.secretRV, e.stop, e.secretChecked, e.clientErr = b.spec, b.rv, b.stop, b.checked, ""
	e.noClientSince = time.Time{}
	r.mu.Unlock()
	r.log.Info("target cluster registered", "cluster", name, "after", r.now().Sub(b.started).Round(time.Millisecond))
	r.wake(name)
}

// podEvent routes an event of build b's cache: to the in-flight count and
// the pod handler when b is in use, to b's own count while it syncs, and
// nowhere once b was replaced.
func (r *Registry) podEvent(name string, b *build, p *corev1.Pod, deleted bool) {
	r.mu.Lock()
	e := r.entries[name]
	switch {
	case e == nil, r.scoped && !r.watched[p.Namespace]:
		// Gone, or an event of a namespace's informer delivered while it
		// was being stopped: the replica let the namespace go.
		r.mu.Unlock()
		return
	case e.build == b.id && e.cluster != nil:
		r.mu.Unlock()
		r.podChanged(name, p, deleted)
		return
	case e.next == b:
		key := p.Namespace + "/" + p.Name
		if podDone(p, deleted) {
			delete(b.active, key)
		} else {
			b.active[key] = true
		}
	}
	r.mu.Unlock()
}

func podDone(p *corev1.Pod, deleted bool) bool {
	return deleted || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed || p.DeletionTimestamp != nil
}

// stopLocked ends everything e runs: its pod caches and its connector.
// The caller holds mu.
func (e *entry) stopLocked() {
	if e.stop != nil {
		e.stop()
	}
	if e.next != nil {
		e.next.stop()
		e.next = nil
	}
	if e.stopConnector != nil {
		e.stopConnector()
	}
}

// clientSpec is the part of a Cluster's spec its client is built from:
// a change of it (and only of it, not of taints, weight or labels) builds
// a new client and pod cache.
func clientSpec(c *v1alpha1.Cluster) string {
	ref := "-"
	if r := c.Spec.KubeconfigSecretRef; r != nil {
		ref = r.Namespace + "/" + r.Name + "/" + r.Key
	}
	return fmt.Sprintf("%s|%t|%d|%d", ref, c.Spec.InCluster, c.Spec.Client.QPS, c.Spec.Client.Burst)
}

// connecting says why a cluster without a client has none yet, for
// placement's message.
func (e *entry) connecting() string {
	switch {
	case e.clientErr != "":
		return e.clientErr
	case e.next != nil:
		return fmt.Sprintf("connecting: pod cache not synced yet (since %s)", e.next.started.UTC().Format(time.RFC3339))
	}
	return "client not built yet"
}
