// Package cluster keeps a client and a task-pod cache for every registered
// target cluster (Cluster objects with a kubeconfig Secret), and places
// attempts on them.
package cluster

import (
	"context"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/rotor-dev/rotor/cluster/capacity"
	"github.com/rotor-dev/rotor/cluster/placement"
	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/plugins"
	"github.com/rotor-dev/rotor/plugins/pod"
)

// DefaultSecretKey is the Secret key that holds a kubeconfig.
const DefaultSecretKey = "kubeconfig"

// AnnotationAllowedClusters on a namespace of the control cluster lists,
// comma-separated, the only target clusters the tenant's tasks may run on.
// Without it a tenant may use every cluster; an empty value allows none.
const AnnotationAllowedClusters = "rotor.dev/allowed-clusters"

// PodHandler is told about every change to a task pod in any cluster.
type PodHandler func(cluster string, p *corev1.Pod)

// Registry holds one entry per target cluster: its client and task-pod
// cache, what placement needs to know of it, and the task pods in flight
// there. Safe for concurrent use.
type Registry struct {
	control    kubernetes.Interface
	namespace  string
	onPod      PodHandler
	log        *slog.Logger
	namespaces corelisters.NamespaceLister
	now        func() time.Time
	// newClient builds a target's client from its configuration; tests
	// stand in fakes.
	newClient func(*rest.Config) (kubernetes.Interface, error)

	// slots, if set, makes capacity exact across replicas (etcd).
	slots *capacity.Slots

	// pickMu serializes placements, so that two attempts never both take
	// the last free pod of a cluster; it is held across the etcd slot
	// call, which mu (taken by every pod event) must not be.
	pickMu  sync.Mutex
	mu      sync.RWMutex
	entries map[string]*entry
	builds  int64 // pod caches started, for their ids
	// scoped: pod caches hold only the namespaces in watched (a sharded
	// replica's own), see podsource.go.
	scoped  bool
	watched map[string]bool
	// copies holds, by workflow UID, the task pods (namespace/name) that
	// more than one target's pod cache holds (copies.go).
	copies map[string]map[string]bool
}

type entry struct {
	// view is what the Cluster object says; placementView adds the
	// client's state.
	view placement.Cluster
	// cluster is nil while no client could be built or its pod cache has
	// not synced yet; clientErr says why. spec is the client's part of
	// the Cluster's spec it was built from (clientSpec), build the id of
	// its pod cache.
	cluster   *plugins.Cluster
	pods      *podSource
	clientErr string
	spec      string
	secretRV  string
	build     int64
	// secretChecked is when the kubeconfig Secret was last read.
	secretChecked time.Time
	// noClientSince is when the entry was last left without a client
	// (zero while it has one).
	noClientSince time.Time
	// next is the pod cache being synced to replace cluster's (see
	// connect.go); want is the newest Cluster object Sync saw, restart
	// asks for a fresh pod cache even if nothing changed, kick wakes the
	// connector, stopConnector ends it.
	next          *build
	generation    int64 // of the last Cluster object Sync saw
	want          *v1alpha1.Cluster
	restart       bool
	kick          chan struct{}
	stopConnector context.CancelFunc
	// unreachableSince is when the prober found the cluster silent (zero
	// while it answers); after grace its work fails over.
	unreachableSince time.Time
	grace            time.Duration
	stop             context.CancelFunc
	// active holds the task pods not yet finished (namespace/name), kept
	// by the pod cache's events; pending holds pods placed here by this
	// process that the cache has not shown yet, with when (they count in
	// flight for pendingTTL, and are remembered for placement for
	// placedTTL); slotted holds the pods this process took a capacity
	// slot for, to release when they end.
	active  map[string]bool
	pending map[string]time.Time
	slotted map[string]bool
	// reported is the prober's count of task pods in flight there, from
	// the Cluster's status: a scoped cache sees only its own.
	reported int
}

// NewRegistry returns an empty registry. Secrets without a namespace are
// read from namespace (Rotor's own).
func NewRegistry(control kubernetes.Interface, namespace string, onPod PodHandler, log *slog.Logger) *Registry {
	r := &Registry{control: control, namespace: namespace, onPod: onPod, log: log, now: time.Now, entries: map[string]*entry{},
		newClient: func(c *rest.Config) (kubernetes.Interface, error) { return kubernetes.NewForConfig(c) }}
	live.Store(r, struct{}{})
	return r
}

// SetSlots makes maxTaskPods hold across every replica: an attempt is
// placed on a capped cluster only if it takes one of its slots in etcd.
func (r *Registry) SetSlots(s *capacity.Slots) { r.slots = s }

// SetNamespaces gives the registry the control cluster's namespaces, where
// tenants' allowed clusters are read from.
func (r *Registry) SetNamespaces(l corelisters.NamespaceLister) { r.namespaces = l }

// Declare makes the registry know the Clusters before their clients are
// built (each in the background, ready once its pod cache synced): an
// attempt on a known cluster without a client waits for it, while one on
// an unknown cluster is lost. A replica declares every Cluster of its
// synced cache before its first round.
func (r *Registry) Declare(clusters []*v1alpha1.Cluster) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range clusters {
		if e := r.entries[c.Name]; e == nil {
			r.entryOf(c).view = viewOf(c)
		}
	}
}

// entryOf returns c's entry, making an empty one if there is none; the
// caller holds mu.
func (r *Registry) entryOf(c *v1alpha1.Cluster) *entry {
	e := r.entries[c.Name]
	if e == nil {
		e = &entry{active: map[string]bool{}, pending: map[string]time.Time{}, noClientSince: r.now()}
		r.entries[c.Name] = e
	}
	return e
}

// viewOf is what placement reads from a Cluster object. Health comes from
// the prober's Ready condition; until the prober has written one, a
// cluster whose client works is taken as ready.
func viewOf(c *v1alpha1.Cluster) placement.Cluster {
	v := placement.Cluster{
		Name: c.Name, Labels: c.Labels, Weight: c.Spec.Weight, Group: c.Spec.FailoverGroup,
		Taints: c.Spec.Taints, Max: int(c.Spec.Capacity.MaxTaskPods), Ready: true,
	}
	if cond := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ClusterReady); cond != nil && cond.Status != metav1.ConditionTrue {
		v.Ready, v.NotReady = false, cond.Message
		if v.NotReady == "" {
			v.NotReady = cond.Reason
		}
	}
	return v
}

// unreachable returns since when the prober has found the cluster
// unreachable (zero if it answers), and its failover grace period.
func unreachable(c *v1alpha1.Cluster) (time.Time, time.Duration) {
	grace := DefaultGracePeriod
	if g := c.Spec.UnreachableGracePeriod; g != nil && g.Duration > 0 {
		grace = g.Duration
	}
	cond := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ClusterReachable)
	if cond == nil || cond.Status != metav1.ConditionFalse {
		return time.Time{}, grace
	}
	return cond.LastTransitionTime.Time, grace
}

// DefaultGracePeriod is how long a cluster may stay unreachable before its
// work fails over, unless its spec.unreachableGracePeriod says otherwise.
const DefaultGracePeriod = 30 * time.Second

// Health says whether attempts on a cluster must move: lost (unreachable
// longer than its grace period: every attempt moves), drained (a NoExecute
// taint: attempts whose pod has not started move), or unreachable for now
// (nothing can be done there yet). Known is false for a cluster not
// registered.
func (r *Registry) Health(name string) plugins.ClusterHealth {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e := r.entries[name]
	if e == nil {
		return plugins.ClusterHealth{}
	}
	h := plugins.ClusterHealth{Known: true, Unreachable: !e.unreachableSince.IsZero() || e.cluster == nil, NotReady: !e.placementView().Ready}
	switch {
	case !e.unreachableSince.IsZero():
		h.UnreachableSince = e.unreachableSince
	case e.cluster == nil:
		h.UnreachableSince = e.noClientSince
	}
	if !e.unreachableSince.IsZero() {
		d := r.now().Sub(e.unreachableSince)
		if e.lost(r.now()) {
			h.Lost = true
			h.Why = fmt.Sprintf("cluster %s has been unreachable for %s (grace period %s)", name, d.Round(time.Second), e.grace)
			return h
		}
		h.LostIn = e.grace - d
	}
	for _, t := range e.view.Taints {
		if t.Effect == corev1.TaintEffectNoExecute {
			h.Drained = true
			h.Why = fmt.Sprintf("cluster %s is drained (taint %s:%s)", name, t.Key, t.Effect)
		}
	}
	return h
}

// lost reports whether the prober has found the cluster unreachable for
// its whole grace period by now: its attempts are abandoned.
func (e *entry) lost(now time.Time) bool {
	return !e.unreachableSince.IsZero() && now.Sub(e.unreachableSince) >= e.grace
}

// placementView is what placement knows of the cluster: its object's
// view, kept out of placement while no client could be built.
func (e *entry) placementView() placement.Cluster {
	v := e.view
	if e.cluster == nil {
		v.Ready, v.NotReady = false, e.connecting()
	}
	return v
}

// setBroken drops the client of a cluster whose credentials do not give
// one, with the reason; it reports whether the reason is new.
func (r *Registry) setBroken(name string, err error) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.entries[name]
	if e == nil {
		return false
	}
	if e.stop != nil {
		e.stop()
	}
	if e.next != nil {
		e.next.stop()
	}
	if e.cluster != nil {
		e.noClientSince = r.now()
	}
	msg := "credentials: " + err.Error()
	changed := msg != e.clientErr
	e.cluster, e.pods, e.stop, e.next, e.spec, e.secretRV, e.clientErr = nil, nil, nil, nil, "", "", msg
	return changed
}

// wake passes every task pod in a cluster's cache to the pod handler, so
// their workflows take a look; it returns how many there were.
func (r *Registry) wake(name string) int {
	r.mu.RLock()
	var c *plugins.Cluster
	if e := r.entries[name]; e != nil {
		c = e.cluster
	}
	r.mu.RUnlock()
	if c == nil || r.onPod == nil {
		return 0
	}
	pods, err := c.Pods.List(labels.Everything())
	if err != nil {
		return 0
	}
	for _, p := range pods {
		r.notePod(p)
		r.onPod(name, p)
	}
	return len(pods)
}

// podChanged keeps the in-flight count of a cluster and passes the event
// on.
func (r *Registry) podChanged(cluster string, p *corev1.Pod, deleted bool) {
	key := p.Namespace + "/" + p.Name
	done := podDone(p, deleted)
	release := false
	r.mu.Lock()
	if e := r.entries[cluster]; e != nil {
		delete(e.pending, key)
		if done {
			delete(e.active, key)
			if e.slotted[key] {
				delete(e.slotted, key)
				release = true
			}
		} else {
			e.active[key] = true
		}
	}
	r.mu.Unlock()
	if release && r.slots != nil {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := r.slots.Release(ctx, cluster, key); err != nil {
				// The prober collects it once the pod is not in flight.
				r.log.Warn("releasing a capacity slot failed", "cluster", cluster, "pod", key, "err", err)
			}
		}()
	}
	r.notePod(p)
	if r.onPod != nil {
		r.onPod(cluster, p)
	}
}

// inFlight returns the task pods in flight on a cluster: active in its
// pod cache, plus those this process placed there that the cache has not
// shown yet (for at most pendingTTL).
func (r *Registry) inFlight(name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.entries[name]
	if e == nil {
		return 0
	}
	return r.inFlightLocked(e)
}

func (r *Registry) inFlightLocked(e *entry) int {
	now := r.now()
	n := len(e.active)
	for k, at := range e.pending {
		switch age := now.Sub(at); {
		case e.active[k] || age > placedTTL:
			delete(e.pending, k)
		case age <= pendingTTL:
			n++
		}
	}
	return n
}

// placedTTL is how long this process remembers where it placed an
// attempt whose pod its cache has not shown. Longer than pendingTTL, the
// cache's grace to show a pod for counting: a create that reached the
// target though its answer was lost, while the status write that would
// have recorded the placement failed too (the control apiserver away),
// would otherwise be placed again after 30 s, perhaps on the other
// target, and run twice.
const placedTTL = 10 * time.Minute

// clientFor builds a client from the Cluster's kubeconfig Secret and
// returns the Secret's resourceVersion, so a changed Secret rebuilds it.
func (r *Registry) clientFor(ctx context.Context, c *v1alpha1.Cluster) (kubernetes.Interface, *tenantClients, string, error) {
	cfg, rv, err := RESTConfig(ctx, r.control, r.namespace, c)
	if err != nil {
		return nil, nil, "", err
	}
	cfg.UserAgent = "rotor-propeller"
	client, err := r.newClient(cfg)
	return client, newTenantClients(cfg), rv, err
}

// RESTConfig reads a Cluster's kubeconfig Secret (namespace is where
// Secrets without one live) and returns the client configuration, with
// the Cluster's QPS and burst, and the Secret's resourceVersion. Its
// errors say what to fix.
func RESTConfig(ctx context.Context, control kubernetes.Interface, namespace string, c *v1alpha1.Cluster) (*rest.Config, string, error) {
	cfg, rv, err := credentials(ctx, control, namespace, c)
	if err != nil {
		return nil, "", err
	}
	cfg.QPS, cfg.Burst = defaultQPS, 2*defaultQPS
	if q := c.Spec.Client.QPS; q > 0 {
		cfg.QPS, cfg.Burst = float32(q), 2*int(q)
	}
	if b := c.Spec.Client.Burst; b > 0 {
		cfg.Burst = int(b)
	}
	return cfg, rv, nil
}

// InClusterConfig is how a Cluster with spec.inCluster gets its
// credentials: those of the pod Rotor runs in. A variable so tests can
// stand in for a pod.
var InClusterConfig = rest.InClusterConfig

// credentials returns the client configuration of a Cluster without rate
// limits, and the resourceVersion of the Secret it came from ("" for
// inCluster: the pod's token is reread by client-go itself).
func credentials(ctx context.Context, control kubernetes.Interface, namespace string, c *v1alpha1.Cluster) (*rest.Config, string, error) {
	ref := c.Spec.KubeconfigSecretRef
	if c.Spec.InCluster {
		if ref != nil {
			return nil, "", fmt.Errorf("spec.inCluster and spec.kubeconfigSecretRef are both set: keep one")
		}
		cfg, err := InClusterConfig()
		if err != nil {
			return nil, "", fmt.Errorf("spec.inCluster: Rotor has no in-cluster credentials (%w): run it in a pod of this cluster or use kubeconfigSecretRef", err)
		}
		return cfg, "", nil
	}
	if ref == nil {
		return nil, "", fmt.Errorf("neither spec.kubeconfigSecretRef nor spec.inCluster is set: point kubeconfigSecretRef at a Secret holding a kubeconfig, or set inCluster for the cluster Rotor runs in")
	}
	ns, key := ref.Namespace, ref.Key
	if ns == "" {
		ns = namespace
	}
	if key == "" {
		key = DefaultSecretKey
	}
	sec, err := control.CoreV1().Secrets(ns).Get(ctx, ref.Name, metav1.GetOptions{})
	if err != nil {
		err = fmt.Errorf("read kubeconfig Secret %s/%s: %w", ns, ref.Name, err)
		if !secretAnswered(err) {
			err = &secretUnreadable{err}
		}
		return nil, "", err
	}
	data, ok := sec.Data[key]
	if !ok {
		return nil, "", fmt.Errorf("kubeconfig Secret %s/%s has no key %q", ns, ref.Name, key)
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(data)
	if err != nil {
		return nil, "", fmt.Errorf("kubeconfig Secret %s/%s key %q is not a valid kubeconfig: %w", ns, ref.Name, key, err)
	}
	return cfg, sec.ResourceVersion, nil
}

// secretRecheck is how often Sync reads a cluster's kubeconfig Secret
// again (the propeller resyncs Clusters on this period too), so a rotated
// Secret rebuilds the client without the Cluster object changing.
const secretRecheck = 30 * time.Second

// defaultQPS is the request rate per process and cluster when the Cluster
// does not set one.
const defaultQPS = 300

// Remove stops and forgets a cluster.
func (r *Registry) Remove(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.entries[name]; e != nil {
		e.stopLocked()
		delete(r.entries, name)
	}
}

// Get implements executor.Clusters.
func (r *Registry) Get(name string) (*plugins.Cluster, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.entries[name]
	if !ok || e.cluster == nil {
		return nil, false
	}
	return e.cluster, true
}

// Pick implements executor.Clusters: it places the attempt (see package
// placement) and counts it against the chosen cluster's capacity until
// its pod shows up in that cluster's cache.
func (r *Registry) Pick(id plugins.TaskID, task *v1alpha1.TaskTemplate, workflowSelector map[string]string) (*plugins.Cluster, error) {
	req := placement.Request{
		Key:              id.Namespace + "/" + id.Workflow + "/" + id.Node + "/" + strconv.Itoa(int(id.Attempt)),
		WorkflowSelector: workflowSelector,
		Allowed:          r.allowed(id.Namespace),
	}
	if task != nil {
		req.TaskSelector = task.ClusterSelector
	}
	podKey := id.Namespace + "/" + pod.Name(id)
	r.pickMu.Lock()
	defer r.pickMu.Unlock()
	r.mu.Lock()
	// An attempt whose placement was decided before but not recorded (the
	// round's status write lost a conflict, or the replica died before
	// it) may already have its pod somewhere: it stays there, or it would
	// run twice.
	c, wait := r.placedLocked(id.Namespace, pod.Name(id), podKey)
	if wait != "" {
		r.mu.Unlock()
		return nil, fmt.Errorf("attempt %s waits rather than being placed, as its pod may exist already and would run twice: %s", podKey, wait)
	}
	if c != nil {
		r.mu.Unlock()
		r.log.Debug("attempt already placed", "namespace", id.Namespace, "workflow", id.Workflow, "node", id.Node, "attempt", id.Attempt, "pod", podKey, "cluster", c.Name)
		return c, nil
	}
	views := make([]placement.Cluster, 0, len(r.entries))
	for _, e := range r.entries {
		v := e.placementView()
		v.InFlight = r.inFlightLocked(e)
		if r.scoped {
			// Other replicas' pods count too; the prober's figure lags by
			// a probe period, so it is a floor. Caps stay exact through
			// the capacity slots in etcd.
			v.InFlight = max(v.InFlight, e.reported)
		}
		views = append(views, v)
	}
	r.mu.Unlock()
	name, slotted := "", false
	for range len(views) + 1 {
		var err error
		if name, err = placement.Place(req, views); err != nil {
			return nil, err
		}
		if slotted, err = r.takeSlot(name, podKey, views); err != nil {
			return nil, err
		}
		if slotted || r.slots == nil || !capped(views, name) {
			break
		}
		name = "" // full across replicas: the next best
	}
	if name == "" {
		return nil, fmt.Errorf("no capacity slot could be taken for %s: the clusters filled up meanwhile", podKey)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.entries[name]
	if e == nil || e.cluster == nil {
		// Removed or broken while the slot was taken; the prober collects
		// the slot.
		return nil, fmt.Errorf("cluster %s went away while %s was placed on it", name, podKey)
	}
	if slotted {
		if e.slotted == nil {
			e.slotted = map[string]bool{}
		}
		e.slotted[podKey] = true
	}
	placements.WithLabelValues(name).Inc()
	r.log.Debug("attempt placed", "namespace", id.Namespace, "workflow", id.Workflow, "node", id.Node, "attempt", id.Attempt, "pod", podKey, "cluster", name)
	e.pending[podKey] = r.now()
	return e.cluster, nil
}

func capped(views []placement.Cluster, name string) bool {
	for _, v := range views {
		if v.Name == name {
			return v.Max > 0
		}
	}
	return false
}

// takeSlot takes a capacity slot for the pod on a capped cluster; it
// reports false when there is no slot to take (no slots, no cap) or when
// the cluster is full across replicas, which it then marks in views.
func (r *Registry) takeSlot(name, podKey string, views []placement.Cluster) (bool, error) {
	var v *placement.Cluster
	for i := range views {
		if views[i].Name == name {
			v = &views[i]
		}
	}
	if r.slots == nil || v == nil || v.Max <= 0 {
		return false, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ok, taken, err := r.slots.Reserve(ctx, name, podKey, v.Max)
	if err != nil {
		return false, err
	}
	if !ok {
		v.InFlight = max(v.InFlight, taken)
	}
	return ok, nil
}

// Launched implements executor.LaunchFinder: the attempt was placed here
// lately, its pod is in a target's pod cache, or whether it is cannot be
// known yet (the waits of placedLocked): the attempt is then not served
// from the task cache either.
func (r *Registry) Launched(id plugins.TaskID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, wait := r.placedLocked(id.Namespace, pod.Name(id), id.Namespace+"/"+pod.Name(id))
	return c != nil || wait != ""
}

// placedLocked finds the cluster an attempt's pod was already placed on:
// by this process (pending), or by anyone (in a pod cache). When that
// cannot be known, wait says why and the attempt must not be placed:
//   - it was placed here on a cluster that has lost its client since;
//   - a target's pod cache has never synced the namespace: this replica
//     took the namespace over while that target was unreachable
//     (PodsSynced skips it), and the previous owner may have created the
//     attempt's pod there just before, its status write lost. The wait
//     ends when the target answers (its cache syncs) or its grace period
//     ends (it is lost, and its work moves anyway).
func (r *Registry) placedLocked(namespace, podName, podKey string) (c *plugins.Cluster, wait string) {
	for name, e := range r.entries {
		if _, ok := e.pending[podKey]; ok {
			if e.cluster == nil {
				return nil, fmt.Sprintf("it was just placed on cluster %s, which has no client now", name)
			}
			return e.cluster, ""
		}
	}
	for _, e := range r.entries {
		if e.cluster == nil {
			continue
		}
		if _, err := e.cluster.Pods.Pods(namespace).Get(podName); err == nil {
			return e.cluster, ""
		}
	}
	for name, e := range r.entries {
		if e.lost(r.now()) {
			continue // what it holds is abandoned
		}
		// A target with no client yet is not waited for here: one that
		// never answers would hold every placement until its grace
		// period ends. A sharded replica's rounds wait for a target
		// still connecting in PodsSynced, until the prober finds it
		// unreachable.
		if e.cluster != nil && e.pods != nil && !e.pods.nsSynced(namespace) {
			return nil, fmt.Sprintf("cluster %s has not listed the pods of namespace %s yet (unreachable, or still syncing)", name, namespace)
		}
	}
	return nil, ""
}

// allowed reads a tenant's allowed clusters (nil: every cluster).
func (r *Registry) allowed(namespace string) []string {
	if r.namespaces == nil {
		return nil
	}
	ns, err := r.namespaces.Get(namespace)
	if err != nil {
		return nil
	}
	v, ok := ns.Annotations[AnnotationAllowedClusters]
	if !ok {
		return nil
	}
	out := []string{}
	for _, n := range strings.Split(v, ",") {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// Stop ends every pod cache and connector.
func (r *Registry) Stop() {
	live.Delete(r)
	r.mu.Lock()
	defer r.mu.Unlock()
	for n, e := range r.entries {
		e.stopLocked()
		delete(r.entries, n)
	}
}

var placements = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "rotor_cluster_placements_total", Help: "Task attempts placed on each target cluster by this process.",
}, []string{"cluster"})

func init() { prometheus.MustRegister(placements) }

// secretUnreadable is a failure to read a kubeconfig Secret that says
// nothing about the Secret (the control apiserver away, a timeout): a
// working client stays in use. Dropping it would drop its pod cache too,
// and a round redone meanwhile would no longer see the pods it placed
// there and place them again elsewhere (the chaos soak found a task run
// twice so, during a control apiserver restart).
type secretUnreadable struct{ err error }

func (e *secretUnreadable) Error() string { return e.err.Error() }
func (e *secretUnreadable) Unwrap() error { return e.err }

// secretAnswered reports whether err is the control apiserver's answer
// about the Secret itself: it is missing, or Rotor may not read it.
func secretAnswered(err error) bool {
	return apierrors.IsNotFound(err) || apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) ||
		apierrors.IsBadRequest(err) || apierrors.IsInvalid(err)
}
