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

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	versioned "github.com/rotor-dev/rotor/controller/generated/clientset/versioned"
	rotorinformers "github.com/rotor-dev/rotor/controller/generated/informers/externalversions"
	listers "github.com/rotor-dev/rotor/controller/generated/listers/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/manager/ring"
	"github.com/rotor-dev/rotor/manager/shardmap"
	"github.com/rotor-dev/rotor/shard/member"
)

// Config configures a Replica.
type Config struct {
	Name       string
	Keys       shardmap.Keys
	Partitions int
	Etcd       *clientv3.Client
	Member     *member.Member
	Rotor      versioned.Interface
	// Namespaces lists the control cluster's namespaces (all of them; a
	// namespace is small).
	Namespaces corelisters.NamespaceLister
	// Enqueue receives the Workflow events of owned namespaces.
	Enqueue func(obj any)
	Logger  *slog.Logger
}

// Replica follows the shard map. Safe for concurrent use.
type Replica struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	last    *shardmap.Doc
	parts   map[int]*partition
	fenced  map[int]int64
	watches map[string]*nsWatch
	kick    chan struct{}
	// applied: the partitions and watches follow a shard map already.
	applied bool
}

type partition struct {
	epoch    int64
	stopping bool
	inflight int
}

type nsWatch struct {
	stop   chan struct{}
	lister listers.WorkflowNamespaceLister
	synced cache.InformerSynced
}

// New returns a replica; Run starts it.
func New(cfg Config) *Replica {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Replica{
		cfg: cfg, log: cfg.Logger.With("replica", cfg.Name),
		parts: map[int]*partition{}, fenced: map[int]int64{}, watches: map[string]*nsWatch{},
		kick: make(chan struct{}, 1),
	}
}

// Run follows the shard map until ctx ends or the lease is lost, then
// stops every watch.
func (r *Replica) Run(ctx context.Context) error {
	defer r.stopAll()
	resp, err := r.cfg.Etcd.Get(ctx, r.cfg.Keys.Map())
	if err != nil {
		return fmt.Errorf("read shard map: %w", err)
	}
	if len(resp.Kvs) > 0 {
		r.load(resp.Kvs[0].Value)
	}
	events := r.cfg.Etcd.Watch(ctx, r.cfg.Keys.Map(), clientv3.WithRev(resp.Header.Revision+1))
	tick := time.NewTicker(time.Second)
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
		case <-tick.C: // re-send acknowledgements, pick up new namespaces, report load
			if err := r.cfg.Member.SetLoad(ctx, r.ActiveWorkflows()); err != nil {
				r.log.Warn("reporting load failed", "err", err)
			}
		}
	}
}

func (r *Replica) load(b []byte) {
	doc, err := shardmap.Decode(b)
	if err != nil {
		r.log.Error("ignoring a corrupt shard map", "err", err)
		return
	}
	r.mu.Lock()
	r.last = doc
	r.mu.Unlock()
}

// apply brings partitions and namespace watches in line with the last map.
func (r *Replica) apply(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last == nil {
		return
	}
	active, releasing := r.last.Map.Owned(r.cfg.Name)
	if !r.cfg.Member.Valid() {
		active = nil
	}
	for p, epoch := range active {
		if f, ok := r.fenced[p]; ok && f >= epoch {
			continue // someone newer wrote; wait for a map that gives it back higher
		}
		delete(r.fenced, p)
		part := r.parts[p]
		if part == nil || part.stopping {
			if part == nil {
				part = &partition{}
				r.parts[p] = part
			}
			part.stopping = false
			r.log.Info("partition acquired", "partition", p, "epoch", epoch)
			partitionsOwned.Inc()
		}
		part.epoch = epoch
		partitionEpoch.WithLabelValues(strconv.Itoa(p)).Set(float64(epoch))
	}
	for p, part := range r.parts {
		if _, ok := active[p]; ok && !part.stopping {
			continue
		}
		if !part.stopping {
			part.stopping = true
			partitionsOwned.Dec()
			partitionEpoch.DeleteLabelValues(strconv.Itoa(p))
			r.log.Info("partition releasing", "partition", p, "epoch", part.epoch, "inflight", part.inflight)
		}
		if part.inflight == 0 {
			delete(r.parts, p)
		}
	}
	r.syncWatches()
	r.applied = true
	for p, epoch := range releasing {
		if _, running := r.parts[p]; running {
			continue // still draining
		}
		key := r.cfg.Keys.ReleasedKey(r.cfg.Name, p)
		if _, err := r.cfg.Etcd.Put(ctx, key, strconv.FormatInt(epoch, 10), clientv3.WithLease(r.cfg.Member.LeaseID())); err != nil {
			r.log.Warn("acknowledging a release failed, will retry", "partition", p, "err", err)
		}
	}
}

// syncWatches starts informers for namespaces of active partitions and
// stops the others. Called with mu held.
func (r *Replica) syncWatches() {
	want := map[string]bool{}
	nss, _ := r.cfg.Namespaces.List(labels.Everything())
	for _, ns := range nss {
		p := ring.PartitionOf(ns.Name, r.cfg.Partitions)
		if part := r.parts[p]; part != nil && !part.stopping {
			want[ns.Name] = true
		}
	}
	for ns, w := range r.watches {
		if !want[ns] {
			close(w.stop)
			delete(r.watches, ns)
		}
	}
	for ns := range want {
		if _, ok := r.watches[ns]; ok {
			continue
		}
		f := rotorinformers.NewSharedInformerFactoryWithOptions(r.cfg.Rotor, 0, rotorinformers.WithNamespace(ns))
		inf := f.Rotor().V1alpha1().Workflows()
		_ = inf.Informer().SetTransform(StripManagedFields)
		_, _ = inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    r.cfg.Enqueue,
			UpdateFunc: func(_, o any) { r.cfg.Enqueue(o) },
		})
		w := &nsWatch{stop: make(chan struct{}), lister: inf.Lister().Workflows(ns), synced: inf.Informer().HasSynced}
		f.Start(w.stop)
		r.watches[ns] = w
	}
	namespacesWatched.Set(float64(len(r.watches)))
}

func (r *Replica) stopAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for ns, w := range r.watches {
		close(w.stop)
		delete(r.watches, ns)
	}
	for p := range r.parts {
		delete(r.parts, p)
	}
	partitionsOwned.Set(0)
	partitionEpoch.Reset()
	namespacesWatched.Set(0)
}

// Acquire implements propeller.Scope.
func (r *Replica) Acquire(namespace string) (int64, func(), bool) {
	p := ring.PartitionOf(namespace, r.cfg.Partitions)
	r.mu.Lock()
	defer r.mu.Unlock()
	part := r.parts[p]
	if part == nil || part.stopping || !r.cfg.Member.Valid() {
		return 0, nil, false
	}
	part.inflight++
	var once sync.Once
	return part.epoch, func() {
		once.Do(func() {
			r.mu.Lock()
			part.inflight--
			done := part.stopping && part.inflight == 0
			r.mu.Unlock()
			if done {
				r.nudge()
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

// CanWrite implements propeller.Scope.
func (r *Replica) CanWrite() bool { return r.cfg.Member.Valid() }

// Fenced implements propeller.Scope: stop the partition at once.
func (r *Replica) Fenced(namespace string, seen int64) {
	p := ring.PartitionOf(namespace, r.cfg.Partitions)
	r.mu.Lock()
	part := r.parts[p]
	mine := int64(0)
	if part != nil {
		mine = part.epoch
		if !part.stopping {
			part.stopping = true
			partitionsOwned.Dec()
			partitionEpoch.DeleteLabelValues(strconv.Itoa(p))
		}
	}
	r.fenced[p] = seen
	r.mu.Unlock()
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
		if !w.synced() {
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
	if !r.applied {
		return fmt.Errorf("no shard map applied yet")
	}
	n := 0
	for _, w := range r.watches {
		if !w.synced() {
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
	return len(r.parts)
}

// ActiveWorkflows counts the workflows of the shard that have not ended.
func (r *Replica) ActiveWorkflows() int {
	r.mu.Lock()
	watches := make([]*nsWatch, 0, len(r.watches))
	for _, w := range r.watches {
		watches = append(watches, w)
	}
	r.mu.Unlock()
	n := 0
	for _, w := range watches {
		wfs, _ := w.lister.List(labels.Everything())
		for _, wf := range wfs {
			if !wf.Status.Phase.IsTerminal() {
				n++
			}
		}
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
