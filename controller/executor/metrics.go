package executor

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"

	"github.com/rotor-dev/rotor/internal/logctx"
	"github.com/rotor-dev/rotor/internal/tracing"
	"github.com/rotor-dev/rotor/plugins"
)

var (
	failovers = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rotor_cluster_failovers_total",
		Help: "Attempts moved off a target cluster, by cluster and reason (ClusterLost, ClusterDrained).",
	}, []string{"cluster", "reason"})
	orphansDeleted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rotor_cluster_orphans_deleted_total",
		Help: "Pods of abandoned attempts deleted once their cluster answered again.",
	}, []string{"cluster"})
	pluginCalls = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "rotor_plugin_call_duration_seconds",
		Help:    "Latency of task plugin calls, by plugin, call (handle, abort, finalize) and result (ok, error).",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 14),
	}, []string{"plugin", "call", "result"})
)

func init() { prometheus.MustRegister(failovers, orphansDeleted, pluginCalls) }

type triggerKey struct{}

// WithTrigger tells a round when the event that caused it arrived (a task
// pod reaching a terminal phase); the round measures orchestration
// overhead from there.
func WithTrigger(ctx context.Context, at time.Time) context.Context {
	return context.WithValue(ctx, triggerKey{}, at)
}

func triggerOf(ctx context.Context) (time.Time, bool) {
	t, ok := ctx.Value(triggerKey{}).(time.Time)
	return t, ok
}

// call times one plugin call and traces it as a child of the round.
func call[T any](ctx context.Context, p plugins.Plugin, name string, tc *plugins.TaskContext, f func(context.Context) (T, error)) (T, error) {
	attrs := []attribute.KeyValue{attribute.String("plugin", p.Type()), attribute.String("node", tc.ID.Node),
		attribute.Int("attempt", int(tc.ID.Attempt))}
	if tc.Cluster != nil {
		attrs = append(attrs, attribute.String("cluster", tc.Cluster.Name))
	}
	ctx, span := tracing.Start(ctx, "plugin."+name, attrs...)
	// The plugin's logs name the attempt as well as the round's workflow.
	largs := []any{"node", tc.ID.Node, "attempt", tc.ID.Attempt}
	if tc.Cluster != nil {
		largs = append(largs, "cluster", tc.Cluster.Name)
	}
	ctx = logctx.WithAttrs(ctx, largs...)
	start := time.Now() // wall time: the histogram measures real latency, not the executor's clock
	v, err := f(ctx)
	res := "ok"
	if err != nil {
		res = "error"
	}
	pluginCalls.WithLabelValues(p.Type(), name, res).Observe(time.Since(start).Seconds())
	tracing.End(span, err)
	return v, err
}

// ErrLeaseLost ends a round whose replica's membership lease has passed
// its deadline: another replica may own the workflow now and redo the
// round, so this one neither calls a plugin nor writes (the propeller
// returns it too, before a write).
var ErrLeaseLost = errors.New("membership lease deadline passed: another replica may own this workflow now, so this one neither calls plugins nor writes; the owner redoes the round")

// leaseHeld is asked before every plugin call, not only before the
// status write: a replica frozen or cut off from etcd may wake in the
// middle of a round after its partitions moved, and a pod it created
// then would run beside the one the new owner places (the status write
// that would record it is refused).
func (e *Executor) leaseHeld() error {
	if e.Lease != nil && !e.Lease() {
		return ErrLeaseLost
	}
	return nil
}

func (e *Executor) handle(ctx context.Context, p plugins.Plugin, tc *plugins.TaskContext) (plugins.PhaseInfo, error) {
	if err := e.leaseHeld(); err != nil {
		return plugins.PhaseInfo{}, err
	}
	tc.Fence = e.leaseHeld
	return call(ctx, p, "handle", tc, func(ctx context.Context) (plugins.PhaseInfo, error) { return p.Handle(ctx, tc) })
}

func (e *Executor) abort(ctx context.Context, p plugins.Plugin, tc *plugins.TaskContext) error {
	if err := e.leaseHeld(); err != nil {
		return err
	}
	_, err := call(ctx, p, "abort", tc, func(ctx context.Context) (struct{}, error) { return struct{}{}, p.Abort(ctx, tc) })
	return err
}

func (e *Executor) finalize(ctx context.Context, p plugins.Plugin, tc *plugins.TaskContext) error {
	if err := e.leaseHeld(); err != nil {
		return err
	}
	_, err := call(ctx, p, "finalize", tc, func(ctx context.Context) (struct{}, error) { return struct{}{}, p.Finalize(ctx, tc) })
	return err
}
