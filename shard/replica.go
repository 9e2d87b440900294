package shard

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	versioned "github.com/rotor-dev/rotor/controller/generated/clientset/versioned"
	rotorinformers "github.com/rotor-dev/rotor/controller/generated/informers/externalversions"
	listers "github.com/rotor-dev/rotor/controller/generated/listers/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/shard/member"
	"github.com/rotor-dev/rotor/shard/table"
	"github.com/rotor-dev/rotor/shardproto"
)

// Config configures a Replica.
type Config struct {
	Name       string
	Keys       shardproto.Keys
	Partitions int
	Etcd       *clientv3.Client
	Member     *member.Member
	Rotor      versioned.Interface
	// Namespaces lists the control cluster's namespaces (all of them; a
	// namespace is small).
	Namespaces corelisters.NamespaceLister
	// Enqueue receives the Workflow events of owned namespaces.
	Enqueue func(obj any)
	// Pods, if set, caches the task pods of the namespaces held: a
	// namespace's Workflow watch starts only once its pods are cached.
	Pods   PodWatcher
	Logger *slog.Logger
	// Clock drives the resync ticker (default the real clock).
	Clock clock.WithTicker
	// Resync re-applies the map this often: picks up new namespaces,
	// retries failed acknowledgements, reports load (default 1s).
	Resync time.Duration
}

// PodWatcher caches the task pods of chosen namespaces in every target
// cluster (cluster.Registry once scoped).
type PodWatcher interface {
	WatchPods(namespace string)
	UnwatchPods(namespace string)
	PodsSynced(namespace string) bool
}

// Replica follows the shard map: a thin shell around the pure partition
// table (package table) that does the I/O the table asks for — starting
// and stopping Workflow watches, writing release acknowledgements —
// outside its lock, so a slow etcd never blocks the workers' Acquire.
// Safe for concurrent use.
type Replica struct {
	cfg Config
	log *slog.Logger

	// mu guards table, last, watches and lastErr; never held across I/O.
	mu      sync.Mutex
	table   *table.Table
	last    *shardproto.Doc
	watches map[string]*nsWatch
	// pods holds the namespaces whose task pods are watched: those of
	// every partition held, draining ones included, as their rounds in
	// flight still read pods.
	pods    map[string]bool
	lastErr string
	kick    chan struct{}
}

// nsWatch is one namespace's Workflow and WorkflowTemplate informers:
// a replica caches the templates of its own namespaces only (a
// templateRef resolves in the workflow's namespace).
type nsWatch struct {
	stop      chan struct{}
	lister    listers.WorkflowNamespaceLister
	templates listers.WorkflowTemplateNamespaceLister
	synced    []cache.InformerSynced
	active    *activeSet
	start     func(stop <-chan struct{})
}

func (w *nsWatch) hasSynced() bool {
	for _, s := range w.synced {
		if !s() {
			return false
		}
	}
	return true
}

// New returns a replica; Run starts it.
func New(cfg Config) *Replica {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Resync <= 0 {
		cfg.Resync = time.Second
	}
	return &Replica{
		cfg: cfg, log: cfg.Logger.With("replica", cfg.Name),
		table: table.New(cfg.Name, cfg.Partitions), watches: map[string]*nsWatch{}, pods: map[string]bool{},
		kick: make(chan struct{}, 1),
	}
}

// Run follows the shard map until ctx ends or the lease is lost, then
// stops every watch.
func (r *Replica) Run(ctx context.Context) error {
	defer r.stopAll()
	resp, err := r.cfg.Etcd.Get(ctx, r.cfg.Keys.Map())
	if err != nil {
		return fmt.Errorf("read shard map %s: %w", r.cfg.Keys.Map(), err)
	}
	if len(resp.Kvs) > 0 {
		r.load(resp.Kvs[0].Value)
	}
	events := r.cfg.Etcd.Watch(ctx, r.cfg.Keys.Map(), clientv3.WithRev(resp.Header.Revision+1))
	tick := r.cfg.Clock.NewTicker(r.cfg.Resync)
	defer tick.Stop()
	for {
		r.apply(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-r.cfg.Member.Lost():
			r.log.Error("membership lost: every partition stopped")
			return member.ErrLost
		case w, ok := <-events:
			if !ok || w.Err() != nil {
				return fmt.Errorf("watch shard map: %v", w.Err())
			}
			for _, ev := range w.Events {
				r.load(ev.Kv.Value)
			}
		case <-r.kick:
		case <-tick.C(): // retry acknowledgements, pick up new namespaces, report load
			if err := r.cfg.Member.SetLoad(ctx, r.ActiveWorkflows()); err != nil {
				r.log.Warn("reporting load failed, will retry", "err", err)
			}
		}
	}
}

func (r *Replica) load(b []byte) {
	doc, err := shardproto.Decode(b)
	if err != nil {
		r.log.Error("ignoring a corrupt shard map", "err", err)
		return
	}
	r.mu.Lock()
	r.last = doc
	r.mu.Unlock()
}

// apply steps the table with the last map, then does what it asks.
func (r *Replica) apply(ctx context.Context) {
	r.mu.Lock()
	acts := r.table.Apply(r.last, r.cfg.Member.Valid())
	stop, start, podStart, podStop := r.diffWatches()
	errText := ""
	if acts.Err != nil {
		errText = acts.Err.Error()
	}
	newErr := errText != r.lastErr
	r.lastErr = errText
	active := r.table.ActiveCount()
	r.mu.Unlock()

	if newErr && acts.Err != nil {
		r.log.Error("not following the shard map", "err", acts.Err)
	}
	for _, g := range acts.Started {
		r.log.Info("partition acquired", "partition", g.Partition, "epoch", g.Epoch)
		partitionEpoch.WithLabelValues(strconv.Itoa(g.Partition)).Set(float64(g.Epoch))
	}
	for _, p := range acts.Stopped {
		r.log.Info("partition releasing", "partition", p)
		partitionEpoch.DeleteLabelValues(strconv.Itoa(p))
	}
	partitionsOwned.Set(float64(active))
	for _, w := range stop {
		close(w.stop)
	}
	if r.cfg.Pods != nil {
		for _, ns := range podStart {
			r.cfg.Pods.WatchPods(ns)
		}
	}
	r.startWatches(start)
	if r.cfg.Pods != nil {
		for _, ns := range podStop {
			r.cfg.Pods.UnwatchPods(ns)
		}
	}
	for _, rel := range acts.Acks {
		key := r.cfg.Keys.ReleasedKey(r.cfg.Name, rel.Partition)
		if _, err := r.cfg.Etcd.Put(ctx, key, shardproto.EncodeAck(rel.Ack), clientv3.WithLease(r.cfg.Member.LeaseID())); err != nil {
			r.log.Warn("acknowledging a release failed, will retry", "partition", rel.Partition, "epoch", rel.Ack.Epoch, "err", err)
			r.mu.Lock()
			r.table.AckFailed(rel)
			r.mu.Unlock()
			continue
		}
		r.log.Info("partition released", "partition", rel.Partition, "epoch", rel.Ack.Epoch, "request", rel.Ack.Asked)
	}
}

// diffWatches removes the Workflow watches of namespaces no active
// partition holds and lists the namespaces that need one, and does the
// same for pod watches over the partitions held. Called with mu held; the
// lister reads a cache.
func (r *Replica) diffWatches() (stop []*nsWatch, start, podStart, podStop []string) {
	want, held := map[string]bool{}, map[string]bool{}
	nss, _ := r.cfg.Namespaces.List(labels.Everything())
	for _, ns := range nss {
		p := r.table.PartitionOf(ns.Name)
		if r.table.Active(p) {
			want[ns.Name] = true
		}
		if r.table.Holds(p) {
			held[ns.Name] = true
		}
	}
	for ns, w := range r.watches {
		if !want[ns] {
			stop = append(stop, w)
			delete(r.watches, ns)
		}
	}
	for ns := range want {
		if _, ok := r.watches[ns]; !ok {
			start = append(start, ns)
		}
	}
	for ns := range r.pods {
		if !held[ns] {
			podStop = append(podStop, ns)
			delete(r.pods, ns)
		}
	}
	for ns := range held {
		if !r.pods[ns] {
			podStart = append(podStart, ns)
			r.pods[ns] = true
		}
	}
	return stop, start, podStart, podStop
}

// startWatches builds the informers of namespaces outside the lock,
// installs them, then starts them: a Workflow event can reach a worker
// only once Get finds its namespace's lister.
func (r *Replica) startWatches(namespaces []string) {
	if len(namespaces) == 0 {
		r.mu.Lock()
		namespacesWatched.Set(float64(len(r.watches)))
		r.mu.Unlock()
		return
	}
	built := make(map[string]*nsWatch, len(namespaces))
	for _, ns := range namespaces {
		built[ns] = r.newWatch(ns)
	}
	r.mu.Lock()
	for ns, w := range built {
		r.watches[ns] = w
	}
	namespacesWatched.Set(float64(len(r.watches)))
	r.mu.Unlock()
	for ns, w := range built {
		if r.cfg.Pods == nil {
			w.start(w.stop)
			continue
		}
		go r.startAfterPods(ns, w)
	}
}

// podsPoll is how often a namespace waiting for its pod caches looks.
const podsPoll = 10 * time.Millisecond

// startAfterPods starts a namespace's Workflow watch once its task pods
// are cached in every target: the watch's first list enqueues every
// workflow of the namespace, and each round must see the pods of its
// attempts. Until then the namespace counts as not synced.
func (r *Replica) startAfterPods(ns string, w *nsWatch) {
	tick := r.cfg.Clock.NewTicker(podsPoll)
	defer tick.Stop()
	waited := 0
	for !r.cfg.Pods.PodsSynced(ns) {
		select {
		case <-w.stop:
			return
		case <-tick.C():
		}
		if waited++; waited == int(10*time.Second/podsPoll) {
			r.log.Warn("namespace waits for its task pod caches: a target cluster answers slowly", "namespace", ns)
		}
	}
	w.start(w.stop)
}

func (r *Replica) newWatch(ns string) *nsWatch {
	f := rotorinformers.NewSharedInformerFactoryWithOptions(r.cfg.Rotor, 0, rotorinformers.WithNamespace(ns))
	inf := f.Rotor().V1alpha1().Workflows()
	active := newActiveSet()
	_ = inf.Informer().SetTransform(StripManagedFields)
	_, _ = inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { active.observe(o); r.cfg.Enqueue(o) },
		UpdateFunc: func(_, o any) { active.observe(o); r.cfg.Enqueue(o) },
		DeleteFunc: active.forget,
	})
	tpl := f.Rotor().V1alpha1().WorkflowTemplates()
	_ = tpl.Informer().SetTransform(StripManagedFields)
	return &nsWatch{stop: make(chan struct{}), lister: inf.Lister().Workflows(ns), templates: tpl.Lister().WorkflowTemplates(ns),
		synced: []cache.InformerSynced{inf.Informer().HasSynced, tpl.Informer().HasSynced}, active: active, start: f.Start}
}

func (r *Replica) stopAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for ns, w := range r.watches {
		close(w.stop)
		delete(r.watches, ns)
	}
	for ns := range r.pods {
		if r.cfg.Pods != nil {
			r.cfg.Pods.UnwatchPods(ns)
		}
		delete(r.pods, ns)
	}
	r.table = table.New(r.cfg.Name, r.cfg.Partitions)
	partitionsOwned.Set(0)
	partitionEpoch.Reset()
	namespacesWatched.Set(0)
}

// Acquire implements propeller.Scope.
func (r *Replica) Acquire(namespace string) (int64, func(), bool) {
	valid := r.cfg.Member.Valid()
	r.mu.Lock()
	p := r.table.PartitionOf(namespace)
	epoch, ok := r.table.Acquire(p, valid)
	tb := r.table
	r.mu.Unlock()
	if !ok {
		return 0, nil, false
	}
	var once sync.Once
	return epoch, func() {
		once.Do(func() {
			r.mu.Lock()
			drained := tb.Done(p)
			r.mu.Unlock()
			if drained {
				r.nudge() // acknowledge the release now, not at the next tick
			}
		})
	}, true
}

func (r *Replica) nudge() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Get implements propeller.Scope.
func (r *Replica) Get(namespace, name string) (*v1alpha1.Workflow, error) {
	r.mu.Lock()
	w := r.watches[namespace]
	r.mu.Unlock()
	if w == nil {
		return nil, apierrors.NewNotFound(v1alpha1.Resource("workflows"), name)
	}
	return w.lister.Get(name)
}

// GetTemplate returns a cached WorkflowTemplate of a namespace of the
// shard, or NotFound for one outside it.
func (r *Replica) GetTemplate(namespace, name string) (*v1alpha1.WorkflowTemplate, error) {
	r.mu.Lock()
	w := r.watches[namespace]
	r.mu.Unlock()
	if w == nil {
		return nil, apierrors.NewNotFound(v1alpha1.Resource("workflowtemplates"), name)
	}
	return w.templates.Get(name)
}

// Partition implements propeller.Partitioned: the partition namespace
// hashes to, for logs.
func (r *Replica) Partition(namespace string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.table.PartitionOf(namespace)
}

// CanWrite implements propeller.Scope.
func (r *Replica) CanWrite() bool { return r.cfg.Member.Valid() }

// Fenced implements propeller.Scope: stop the partition at once.
func (r *Replica) Fenced(namespace string, seen int64) {
	r.mu.Lock()
	p := r.table.PartitionOf(namespace)
	mine, stopped := r.table.Fence(p, seen)
	active := r.table.ActiveCount()
	r.mu.Unlock()
	if stopped {
		partitionEpoch.DeleteLabelValues(strconv.Itoa(p))
		partitionsOwned.Set(float64(active))
	}
	fencings.Inc()
	r.log.Warn("partition fenced: an object carries a newer epoch, dropping the partition",
		"partition", p, "namespace", namespace, "epoch", mine, "seen", seen)
	r.nudge()
}

// HasSynced implements propeller.Scope.
func (r *Replica) HasSynced() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, w := range r.watches {
		if !w.hasSynced() {
			return false
		}
	}
	return true
}

// Ready says why the replica cannot reconcile its shard yet, or nil: it
// holds a valid lease, has applied a shard map, and the Workflow caches
// of every namespace in its partitions have synced.
func (r *Replica) Ready() error {
	if !r.cfg.Member.Valid() {
		return fmt.Errorf("membership lease not valid")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.table.Applied() {
		return fmt.Errorf("no shard map applied yet")
	}
	if err := r.table.Err(); err != nil {
		return err
	}
	n := 0
	for _, w := range r.watches {
		if !w.hasSynced() {
			n++
		}
	}
	if n > 0 {
		return fmt.Errorf("workflow caches of %d of %d namespaces not synced", n, len(r.watches))
	}
	return nil
}

var (
	partitionsOwned = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "rotor_shard_partitions_owned", Help: "Partitions this replica reconciles.",
	})
	namespacesWatched = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "rotor_shard_namespaces_watched", Help: "Namespaces whose Workflows this replica watches.",
	})
	fencings = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "rotor_shard_fenced_total", Help: "Partitions dropped because an object carried a newer epoch.",
	})
	partitionEpoch = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rotor_shard_partition_epoch",
		Help: "Epoch of each partition this replica reconciles now (no series for partitions it does not).",
	}, []string{"partition"})
)

func init() { prometheus.MustRegister(partitionsOwned, namespacesWatched, fencings, partitionEpoch) }

// Owned counts the partitions this replica holds, draining ones included.
func (r *Replica) Owned() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.table.Held()
}

// ActiveWorkflows counts the workflows of the shard that have not ended,
// from the watches' events (no listing).
func (r *Replica) ActiveWorkflows() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, w := range r.watches {
		n += w.active.count()
	}
	return n
}

// StripManagedFields drops managedFields from cached objects: the engine
// never reads them, and they can be as large as the object itself.
func StripManagedFields(obj any) (any, error) {
	if m, ok := obj.(interface {
		SetManagedFields([]metav1.ManagedFieldsEntry)
	}); ok {
		m.SetManagedFields(nil)
	}
	return obj, nil
}
