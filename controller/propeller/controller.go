// Package propeller is the thin concurrent shell around the executor: a
// Workflow informer and task-pod events feed a rate-limited workqueue;
// each worker runs one reconcile round on a deep copy and writes the status
// back with one resourceVersion compare-and-swap update.
//
// Error contract of sync: not found → done; invalid spec → recorded on the
// object by the executor, done; conflict or transient error → requeue with
// backoff; time-driven work → requeue after the executor's delay.
package propeller

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/executor"
	versioned "github.com/rotor-dev/rotor/controller/generated/clientset/versioned"
	"github.com/rotor-dev/rotor/internal/logctx"
	"github.com/rotor-dev/rotor/internal/tracing"
	"github.com/rotor-dev/rotor/plugins/pod"
)

// Controller reconciles Workflows.
type Controller struct {
	client      versioned.Interface
	scope       Scope
	queue       workqueue.TypedRateLimitingInterface[string]
	exec        *executor.Executor
	log         *slog.Logger
	resync      time.Duration
	metrics     *metrics
	observer    func(before, after *v1alpha1.Workflow)
	events      record.EventRecorder
	eventPolicy EventPolicy
	// cleanupGiveUp bounds the finalizer's wait for unreachable targets
	// (0: no bound).
	cleanupGiveUp time.Duration

	triggerMu sync.Mutex
	triggers  map[string]time.Time // workflow key → first ended-pod event since its last round

	// namespaceAnnotations gives a namespace's annotations (its default
	// TTLs); nil: none.
	namespaceAnnotations func(string) map[string]string

	startedDelay time.Duration
	now          func() time.Time // the controller's clock: holds, finalizer waits, round and trigger times (tests inject one)
	deferMu      sync.Mutex
	deferred     map[string]time.Time // workflow key → when a start-only write was first held back
}

// Options configure a Controller.
type Options struct {
	// Resync is the safety net period for running workflows whose pods
	// produce no events (default 30s).
	Resync time.Duration
	Logger *slog.Logger
	// Observer, if set, is called after every status write.
	Observer func(before, after *v1alpha1.Workflow)
	// Events records Kubernetes Events on Workflows (default: discard).
	Events record.EventRecorder
	// StartedWriteDelay holds back a status write whose only news is
	// nodes going from Queued to Running, for at most this long: a short
	// task's pod is often done by then, and one write records both.
	// 0 writes at once.
	StartedWriteDelay time.Duration
	// EventPolicy says which phase changes become Kubernetes Events
	// (default EventsFailures).
	EventPolicy EventPolicy
	// CleanupUnreachableTimeout is how long the finalizer of a deleted
	// workflow waits for a target cluster that does not answer before it
	// leaves the workflow's pods there behind, counted from when the
	// cluster became unreachable (default
	// DefaultCleanupUnreachableTimeout; negative: wait for ever).
	CleanupUnreachableTimeout time.Duration
	// NamespaceAnnotations, if set, gives a namespace's annotations: its
	// default TTLs (AnnotTTLAfterSuccess, AnnotTTLAfterFailure).
	NamespaceAnnotations func(namespace string) map[string]string
}

// EventPolicy chooses which phase changes are recorded as Kubernetes
// Events. Each Event is a POST to the control apiserver (and an object in
// its etcd for an hour), so recording every success costs about a third
// of a write per node; failures are what people read Events for.
type EventPolicy string

const (
	// EventsFailures records Warning Events only: a workflow failed or
	// was aborted, a node failed or is retrying. The default.
	EventsFailures EventPolicy = "failures"
	// EventsAll records every workflow phase change too (Running,
	// Succeeded), as Normal Events.
	EventsAll EventPolicy = "all"
	// EventsNone records no Events (metrics, logs and status remain).
	EventsNone EventPolicy = "none"
)

// ParseEventPolicy reads a --events value.
func ParseEventPolicy(s string) (EventPolicy, error) {
	switch p := EventPolicy(s); p {
	case EventsFailures, EventsAll, EventsNone:
		return p, nil
	case "":
		return EventsFailures, nil
	}
	return "", fmt.Errorf("event policy %q: want failures, all or none", s)
}

// New returns a controller over scope. Feed it Workflow events with
// Enqueue (AllNamespaces: Watch does it) and pod events with EnqueuePod.
func New(client versioned.Interface, scope Scope, exec *executor.Executor, opts Options) *Controller {
	if opts.Resync == 0 {
		opts.Resync = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Events == nil {
		opts.Events = &record.FakeRecorder{}
	}
	if opts.EventPolicy == "" {
		opts.EventPolicy = EventsFailures
	}
	switch {
	case opts.CleanupUnreachableTimeout == 0:
		opts.CleanupUnreachableTimeout = DefaultCleanupUnreachableTimeout
	case opts.CleanupUnreachableTimeout < 0:
		opts.CleanupUnreachableTimeout = 0
	}
	c := &Controller{
		client: client, scope: scope, exec: exec,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(retryLimiter(),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "workflows"}),
		log: opts.Logger, resync: opts.Resync, metrics: newMetrics(), observer: opts.Observer, events: opts.Events, eventPolicy: opts.EventPolicy,
		triggers: map[string]time.Time{}, startedDelay: opts.StartedWriteDelay, deferred: map[string]time.Time{}, now: time.Now,
		cleanupGiveUp: opts.CleanupUnreachableTimeout, namespaceAnnotations: opts.NamespaceAnnotations,
	}
	return c
}

// retryLimiter paces the rounds that failed. Per workflow: 5 ms doubling
// to 30 s. Overall: 100 retries per second with a burst of 1,000, where
// client-go's default allows 10 with a burst of 100 — when a target
// cluster goes away, every workflow with a pod to create there fails its
// rounds at once until the prober marks it unreachable, and behind a
// 10-per-second bucket hundreds of them waited seconds for a retry, so
// their failover ran late (the bucket still stops a hot loop).
func retryLimiter() workqueue.TypedRateLimiter[string] {
	return workqueue.NewTypedMaxOfRateLimiter(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](5*time.Millisecond, 30*time.Second),
		&workqueue.TypedBucketRateLimiter[string]{Limiter: rate.NewLimiter(rate.Limit(100), 1000)},
	)
}

// Watch feeds an informer's Workflow events to the controller.
func (c *Controller) Watch(inf cache.SharedIndexInformer) {
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.Enqueue,
		UpdateFunc: func(_, o any) { c.Enqueue(o) },
	})
}

// Enqueue queues a Workflow (or its tombstone).
func (c *Controller) Enqueue(obj any) {
	key, err := cache.MetaNamespaceKeyFunc(obj)
	if err != nil {
		utilruntime.HandleError(err)
		return
	}
	c.queue.Add(key)
}

// EnqueuePod queues the workflow a task pod belongs to. A pod that has
// ended starts the clock of the orchestration overhead its workflow's
// next round measures.
func (c *Controller) EnqueuePod(_ string, p *corev1.Pod) {
	wf := p.Annotations[pod.AnnotWorkflow]
	if wf == "" {
		return
	}
	key := p.Namespace + "/" + wf
	if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		c.triggerMu.Lock()
		if _, ok := c.triggers[key]; !ok {
			c.triggers[key] = c.now()
		}
		c.triggerMu.Unlock()
	}
	c.queue.Add(key)
}

// takeTrigger returns and forgets when the oldest pod event not yet seen
// by a round of key arrived.
func (c *Controller) takeTrigger(key string) (time.Time, bool) {
	c.triggerMu.Lock()
	defer c.triggerMu.Unlock()
	at, ok := c.triggers[key]
	delete(c.triggers, key)
	return at, ok
}

// Run starts workers and blocks until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) error {
	defer utilruntime.HandleCrash()
	defer c.queue.ShutDown()
	if !cache.WaitForCacheSync(ctx.Done(), c.scope.HasSynced) {
		return fmt.Errorf("workflow cache did not sync")
	}
	c.log.Info("propeller workers starting", "workers", workers)
	for i := 0; i < workers; i++ {
		go wait.UntilWithContext(ctx, c.worker, time.Second)
	}
	<-ctx.Done()
	return nil
}

func (c *Controller) worker(ctx context.Context) {
	for c.processNext(ctx) {
	}
}

func (c *Controller) processNext(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	if at, ok := c.takeTrigger(key); ok {
		ctx = executor.WithTrigger(ctx, at)
	}
	start := c.now()
	after, err := c.sync(ctx, key)
	c.metrics.observeRound(c.now().Sub(start), err)
	switch {
	case err != nil:
		c.queue.AddRateLimited(key)
	case after > 0:
		c.queue.Forget(key)
		c.queue.AddAfter(key, after)
	default:
		c.queue.Forget(key)
	}
	return true
}

// logger is the round's logger (workflow, partition, epoch) when ctx is a
// round's, else the controller's.
func (c *Controller) logger(ctx context.Context) *slog.Logger { return logctx.FromOr(ctx, c.log) }

// sync runs one round for key and returns when to look again.
func (c *Controller) sync(ctx context.Context, key string) (time.Duration, error) {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return 0, nil
	}
	epoch, release, owned := c.scope.Acquire(ns)
	if !owned {
		c.forgetHeld(key) // its partition may have moved away while a write was held
		return 0, nil     // another replica's namespace
	}
	defer release()
	// Everything this round logs, down to the plugins, says which
	// workflow, partition and epoch it was for.
	attrs := []any{"namespace", ns, "workflow", name, "epoch", epoch}
	if p, ok := c.scope.(Partitioned); ok {
		attrs = append(attrs, "partition", p.Partition(ns))
	}
	log := c.log.With(attrs...)
	ctx = logctx.With(ctx, log)
	cached, err := c.scope.Get(ns, name)
	if apierrors.IsNotFound(err) {
		c.forgetHeld(key)
		return 0, nil
	}
	if err != nil {
		log.WarnContext(ctx, "reading workflow from cache failed, will retry", "err", err)
		return 0, err
	}
	// Every round of one execution, on whichever replica, joins its trace.
	ctx, span := tracing.Start(tracing.Workflow(ctx, cached.UID), "reconcile",
		attribute.String("namespace", ns), attribute.String("workflow", name), attribute.Int64("epoch", epoch))
	after, err := c.reconcile(ctx, cached, epoch)
	if err != nil {
		log.WarnContext(ctx, "reconcile failed, will retry", "err", err)
	}
	tracing.End(span, err)
	return after, err
}

// reconcile runs the round on a workflow the scope let us drive at epoch.
func (c *Controller) reconcile(ctx context.Context, cached *v1alpha1.Workflow, epoch int64) (time.Duration, error) {
	ns, key := cached.Namespace, cached.Namespace+"/"+cached.Name
	if cached.Status.ShardEpoch > epoch {
		// A newer owner wrote this object: we are not its writer any more.
		c.scope.Fenced(ns, cached.Status.ShardEpoch)
		return 0, nil
	}
	if cached.DeletionTimestamp != nil {
		if !c.scope.CanWrite() {
			return 0, executor.ErrLeaseLost
		}
		return c.finalize(ctx, cached, epoch)
	}
	if !hasFinalizer(cached) {
		if !c.scope.CanWrite() {
			return 0, executor.ErrLeaseLost
		}
		// The finalizer goes on before the first pod exists, so no pod can
		// outlive a deleted workflow. The update's event brings us back.
		wf := cached.DeepCopy()
		wf.Finalizers = append(wf.Finalizers, Finalizer)
		if len(wf.Spec.Nodes) > executor.CompactAbove {
			// The creator's managedFields list every field of a large spec
			// and can double the object; one empty entry strips them.
			wf.ManagedFields = []metav1.ManagedFieldsEntry{{}}
		}
		wctx, span := tracing.Start(ctx, "kube.update", attribute.String("what", "finalizer"))
		_, err := c.client.RotorV1alpha1().Workflows(ns).Update(wctx, wf, metav1.UpdateOptions{})
		tracing.End(span, err)
		if err != nil {
			return 0, fmt.Errorf("add finalizer to %s: %w", key, err)
		}
		return 0, nil
	}
	if cached.Status.Phase.IsTerminal() && len(cached.Status.Orphans) == 0 {
		// Nothing left to do but, with a TTL, delete it in time.
		wait, _, err := c.expire(ctx, cached)
		return wait, err
	}
	wf := cached.DeepCopy()
	res, rerr := c.exec.Reconcile(ctx, wf)
	changed := !equality.Semantic.DeepEqual(cached.Status, wf.Status)
	if changed && rerr == nil {
		if wait, hold := c.holdStartOnly(key, &cached.Status, &wf.Status); hold {
			// Nothing depends on the Running phase being stored: the next
			// round derives it again from the pod.
			if res.RequeueAfter > 0 && res.RequeueAfter < wait {
				wait = res.RequeueAfter
			}
			return wait, nil
		}
	}
	c.forgetHeld(key)
	if changed {
		wf.Status.ShardEpoch = epoch
		if !c.scope.CanWrite() {
			// The round ran past the lease deadline: its work is redone by
			// whoever owns the partition now (every step is idempotent).
			return 0, executor.ErrLeaseLost
		}
		wctx, span := tracing.Start(ctx, "kube.update_status", attribute.String("phase", string(wf.Status.Phase)))
		updated, err := c.client.RotorV1alpha1().Workflows(ns).UpdateStatus(wctx, wf, metav1.UpdateOptions{})
		tracing.End(span, err)
		if err != nil {
			// A conflict means our cache was stale: the next round reads
			// the newer object and redoes the (idempotent) work.
			return 0, fmt.Errorf("write status of %s: %w", key, err)
		}
		for _, d := range res.Overheads {
			c.metrics.overhead.Observe(d.Seconds())
		}
		c.recordTransitions(ctx, cached, updated)
		if c.observer != nil {
			c.observer(cached, updated)
		}
	}
	if rerr != nil {
		return 0, rerr
	}
	if wf.Status.Phase.IsTerminal() {
		wait := res.RequeueAfter // orphans still to delete, or 0
		if left, ok := ttlLeft(wf, c.annotations(ns), c.now()); ok && (wait == 0 || max(left, time.Millisecond) < wait) {
			wait = max(left, time.Millisecond) // back at its TTL
		}
		return wait, nil
	}
	switch {
	case res.Requeue:
		return time.Millisecond, nil
	case res.RequeueAfter > 0 && res.RequeueAfter < c.resync:
		return res.RequeueAfter, nil
	}
	return c.resync, nil
}

func (c *Controller) annotations(ns string) map[string]string {
	if c.namespaceAnnotations == nil {
		return nil
	}
	return c.namespaceAnnotations(ns)
}

// holdStartOnly decides whether a status write whose only change is
// nodes starting to run waits, and for how long.
func (c *Controller) holdStartOnly(key string, before, after *v1alpha1.WorkflowStatus) (time.Duration, bool) {
	if c.startedDelay <= 0 || !onlyStarted(before, after) {
		return 0, false
	}
	now := c.now()
	c.deferMu.Lock()
	defer c.deferMu.Unlock()
	first, ok := c.deferred[key]
	if !ok {
		c.deferred[key], first = now, now
	}
	left := c.startedDelay - now.Sub(first)
	if left <= 0 {
		return 0, false
	}
	return left, true
}

func (c *Controller) forgetHeld(key string) {
	c.deferMu.Lock()
	delete(c.deferred, key)
	c.deferMu.Unlock()
}

// onlyStarted reports whether after differs from before only in nodes
// that went from Queued to Running (with their attempts' matching
// changes). It runs on rounds that changed the status; a round with no
// node starting returns before copying anything.
func onlyStarted(before, after *v1alpha1.WorkflowStatus) bool {
	started := func(k string, n v1alpha1.NodeStatus) bool {
		was, ok := before.Nodes[k]
		return ok && was.Phase == v1alpha1.NodeQueued && n.Phase == v1alpha1.NodeRunning && len(was.Attempts) == len(n.Attempts)
	}
	some := false
	for k, n := range after.Nodes {
		if started(k, n) {
			some = true
			break
		}
	}
	if !some {
		return false
	}
	masked := *after
	masked.Nodes = make(map[string]v1alpha1.NodeStatus, len(after.Nodes))
	for k, n := range after.Nodes {
		if started(k, n) {
			n = before.Nodes[k]
		}
		masked.Nodes[k] = n
	}
	return equality.Semantic.DeepEqual(*before, masked)
}

func (c *Controller) recordTransitions(ctx context.Context, before, after *v1alpha1.Workflow) {
	if before.Status.Phase != after.Status.Phase {
		c.metrics.workflowPhase.WithLabelValues(string(after.Status.Phase)).Inc()
		if after.Status.Phase.IsTerminal() && !before.Status.Phase.IsTerminal() {
			tracing.EndWorkflow(ctx, after.UID, after.CreationTimestamp.Time, c.now(),
				attribute.String("namespace", after.Namespace), attribute.String("workflow", after.Name),
				attribute.String("phase", string(after.Status.Phase)), attribute.String("reason", after.Status.Reason))
		}
		c.logger(ctx).InfoContext(ctx, "workflow phase changed",
			"from", string(before.Status.Phase), "to", string(after.Status.Phase), "message", after.Status.Message)
		kind := corev1.EventTypeNormal
		if after.Status.Phase == v1alpha1.WorkflowFailed || after.Status.Phase == v1alpha1.WorkflowAborted {
			kind = corev1.EventTypeWarning
		}
		if c.recordsEvent(kind) {
			reason := "Workflow" + string(after.Status.Phase)
			c.events.Event(after, kind, reason, eventMessage(after.Status.Message))
		}
	}
	for name, ns := range after.Status.Nodes {
		if before.Status.Nodes[name].Phase == ns.Phase {
			continue
		}
		c.metrics.nodePhase.WithLabelValues(string(ns.Phase)).Inc()
		lvl := slog.LevelDebug
		if ns.Phase == v1alpha1.NodeFailed || ns.Phase == v1alpha1.NodeRetrying {
			lvl = slog.LevelInfo
		}
		c.logger(ctx).Log(ctx, lvl, "node phase changed", "node", name,
			"from", string(before.Status.Nodes[name].Phase), "to", string(ns.Phase), "reason", ns.Reason, "message", ns.Message)
		switch ns.Phase {
		case v1alpha1.NodeFailed, v1alpha1.NodeRetrying:
			if c.recordsEvent(corev1.EventTypeWarning) {
				c.events.Eventf(after, corev1.EventTypeWarning, "Node"+string(ns.Phase), "node %s: %s", name, eventMessage(ns.Message))
			}
		}
	}
}

// recordsEvent applies the event policy to an Event of type kind.
func (c *Controller) recordsEvent(kind string) bool {
	switch c.eventPolicy {
	case EventsNone:
		return false
	case EventsAll:
		return true
	}
	return kind == corev1.EventTypeWarning
}

func eventMessage(s string) string {
	if len(s) > 1000 {
		return s[:1000] + "..."
	}
	return s
}
