package propeller

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/executor"
	"github.com/rotor-dev/rotor/internal/tracing"
)

// Finalizer keeps a deleted Workflow until its pods in the target clusters
// are gone.
const Finalizer = "rotor.dev/cleanup"

// DefaultCleanupUnreachableTimeout is how long a deleted workflow waits
// for an unreachable target to delete its pods there before leaving them
// behind (Options.CleanupUnreachableTimeout).
const DefaultCleanupUnreachableTimeout = 10 * time.Minute

func hasFinalizer(wf *v1alpha1.Workflow) bool { return slices.Contains(wf.Finalizers, Finalizer) }

// finalize deletes the workflow's pods everywhere, then lets it go. While
// a target holding some of them does not answer it waits, with the
// CleanupBlocked condition saying for what, and looks again after the
// returned delay; a target unreachable for longer than the policy allows
// is given up, and what was left there is recorded (an Event, a log line,
// a metric) when the finalizer goes.
func (c *Controller) finalize(ctx context.Context, cached *v1alpha1.Workflow, epoch int64) (time.Duration, error) {
	if !hasFinalizer(cached) {
		return 0, nil
	}
	now := c.now()
	rep, err := c.exec.Cleanup(ctx, cached, executor.CleanupPolicy{Now: now, GiveUpAfter: c.cleanupGiveUp})
	if err != nil {
		err = fmt.Errorf("clean up pods of deleted workflow %s/%s: %w", cached.Namespace, cached.Name, err)
	}
	if len(rep.Waiting) > 0 {
		after, werr := c.markCleanupBlocked(ctx, cached, epoch, rep.Waiting, now)
		if err == nil {
			err = werr
		}
		return after, err
	}
	if err != nil {
		return 0, err
	}
	if len(rep.LeftBehind) > 0 {
		c.recordLeftBehind(ctx, cached, rep.LeftBehind)
	}
	wf := cached.DeepCopy()
	wf.Finalizers = slices.DeleteFunc(wf.Finalizers, func(f string) bool { return f == Finalizer })
	wctx, span := tracing.Start(ctx, "kube.update", attribute.String("what", "finalizer"))
	_, err = c.client.RotorV1alpha1().Workflows(wf.Namespace).Update(wctx, wf, metav1.UpdateOptions{})
	tracing.End(span, err)
	if err != nil {
		return 0, fmt.Errorf("remove finalizer from %s/%s: %w", wf.Namespace, wf.Name, err)
	}
	c.logger(ctx).InfoContext(ctx, "workflow deleted and its pods cleaned up", "leftBehind", len(rep.LeftBehind))
	return 0, nil
}

// markCleanupBlocked writes the CleanupBlocked condition (if it changed)
// and returns when to look again: when the first wait gives up, at the
// latest after a resync period (a cluster that answers again also brings
// the workflow back through its pods' events).
func (c *Controller) markCleanupBlocked(ctx context.Context, cached *v1alpha1.Workflow, epoch int64, waits []executor.CleanupWait, now time.Time) (time.Duration, error) {
	after := c.resync
	for _, w := range waits {
		if d := w.GiveUpAt.Sub(now); !w.GiveUpAt.IsZero() && d < after {
			after = d
		}
	}
	wf := cached.DeepCopy()
	changed := meta.SetStatusCondition(&wf.Status.Conditions, metav1.Condition{
		Type: v1alpha1.WorkflowCleanupBlocked, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonClusterUnreachable,
		Message: cleanupBlockedMessage(waits), LastTransitionTime: metav1.NewTime(now), ObservedGeneration: wf.Generation,
	})
	if !changed {
		return after, nil
	}
	if !c.scope.CanWrite() {
		return 0, executor.ErrLeaseLost
	}
	wf.Status.ShardEpoch = epoch
	wctx, span := tracing.Start(ctx, "kube.update_status", attribute.String("what", "cleanup-blocked"))
	_, err := c.client.RotorV1alpha1().Workflows(wf.Namespace).UpdateStatus(wctx, wf, metav1.UpdateOptions{})
	tracing.End(span, err)
	if err != nil {
		return 0, fmt.Errorf("write cleanup condition of %s/%s: %w", wf.Namespace, wf.Name, err)
	}
	clusters := make([]string, len(waits))
	for i, w := range waits {
		clusters[i] = w.Cluster
	}
	c.logger(ctx).WarnContext(ctx, "deleted workflow waits for unreachable clusters to delete its pods", "clusters", clusters)
	return after, nil
}

// cleanupBlockedMessage says, per cluster, what the finalizer waits for:
// "waiting to delete 2 pods on cluster east, unreachable since
// 2026-01-01T00:00:00Z; they are left behind at 2026-01-01T00:10:00Z".
// It depends only on the waits, so it stays the same (and costs no write)
// round after round.
func cleanupBlockedMessage(waits []executor.CleanupWait) string {
	parts := make([]string, len(waits))
	for i, w := range waits {
		pods := "1 pod"
		if w.Pods != 1 {
			pods = fmt.Sprintf("%d pods", w.Pods)
		}
		parts[i] = fmt.Sprintf("waiting to delete %s on cluster %s, unreachable since %s", pods, w.Cluster, w.Since.UTC().Format(time.RFC3339))
		if !w.GiveUpAt.IsZero() {
			parts[i] += "; they are left behind at " + w.GiveUpAt.UTC().Format(time.RFC3339)
		}
	}
	return strings.Join(parts, "; ")
}

// recordLeftBehind says which pods the deleted workflow leaves behind.
func (c *Controller) recordLeftBehind(ctx context.Context, wf *v1alpha1.Workflow, left []executor.LeftPod) {
	names := make([]string, len(left))
	for i, l := range left {
		names[i] = l.String()
		c.metrics.leftBehind.WithLabelValues(l.Cluster).Inc()
	}
	msg := "pods left behind in target clusters, delete them there by hand: " + strings.Join(names, ", ")
	c.logger(ctx).WarnContext(ctx, "workflow deleted with pods left behind", "pods", names)
	c.events.Event(wf, corev1.EventTypeWarning, "CleanupIncomplete", eventMessage(msg))
}
