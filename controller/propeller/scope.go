package propeller

import (
	"log/slog"
	"sync/atomic"
	"time"

	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	informers "github.com/rotor-dev/rotor/controller/generated/informers/externalversions/rotor/v1alpha1"
	listers "github.com/rotor-dev/rotor/controller/generated/listers/rotor/v1alpha1"
)

// Scope is what a replica may reconcile: which namespaces, at which
// partition epoch, and whether its lease still lets it write. A sharded
// replica's scope follows the shard map; an unsharded one owns everything
// at epoch 0.
type Scope interface {
	// Acquire marks a round in flight on namespace and returns the epoch
	// to stamp on writes; ok is false when the namespace is not ours (the
	// round is dropped). release must be called when the round ends.
	Acquire(namespace string) (epoch int64, release func(), ok bool)
	// Get returns a cached Workflow of an acquired namespace.
	Get(namespace, name string) (*v1alpha1.Workflow, error)
	// CanWrite reports whether the lease still allows writing now.
	CanWrite() bool
	// Fenced reports an object carrying a newer epoch than ours: another
	// replica owns the namespace's partition now.
	Fenced(namespace string, seen int64)
	// HasSynced reports whether the caches of the scope are filled.
	HasSynced() bool
}

// Partitioned is implemented by sharded scopes: a round's logs then carry
// the partition of its namespace beside the epoch.
type Partitioned interface {
	Partition(namespace string) int
}

// everything is the scope of an unsharded replica.
type everything struct {
	lister listers.WorkflowLister
	synced cache.InformerSynced
	wait   TargetWait
	start  time.Time
	warned atomic.Bool
}

// TargetWait holds an unsharded replica's first round until every
// target's first pod cache is in use: a round before would not see the
// pods the previous process created just before losing its status write,
// and would place those attempts again, maybe on another target. Targets
// the prober finds unreachable are not waited for, and no target for
// longer than Max (probing may be off, and one that never answers would
// hold every workflow).
type TargetWait struct {
	// Connecting lists the targets still connecting (nil: no wait).
	Connecting func() []string
	Max        time.Duration
	Clock      clock.PassiveClock
	Log        *slog.Logger
}

// AllNamespaces is the scope of a single unsharded replica, fed by one
// cluster-wide Workflow informer.
func AllNamespaces(inf informers.WorkflowInformer, wait TargetWait) Scope {
	if wait.Clock == nil {
		wait.Clock = clock.RealClock{}
	}
	if wait.Log == nil {
		wait.Log = slog.Default()
	}
	return &everything{lister: inf.Lister(), synced: inf.Informer().HasSynced, wait: wait, start: wait.Clock.Now()}
}

func (e *everything) Acquire(string) (int64, func(), bool) { return 0, func() {}, true }
func (e *everything) Get(ns, name string) (*v1alpha1.Workflow, error) {
	return e.lister.Workflows(ns).Get(name)
}
func (e *everything) CanWrite() bool       { return true }
func (e *everything) Fenced(string, int64) {}

// HasSynced: the Workflow cache is filled and no target is still
// connecting (see TargetWait).
func (e *everything) HasSynced() bool {
	if !e.synced() {
		return false
	}
	if e.wait.Connecting == nil {
		return true
	}
	waiting := e.wait.Connecting()
	if len(waiting) == 0 {
		return true
	}
	if e.wait.Clock.Since(e.start) < e.wait.Max {
		return false
	}
	if !e.warned.Swap(true) {
		e.wait.Log.Warn("starting rounds while target clusters are still connecting: an attempt whose pod was created there just before this process started may run twice",
			"clusters", waiting, "waited", e.wait.Max)
	}
	return true
}
