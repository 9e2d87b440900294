package propeller

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/executor"
)

// The Namespace annotations of a namespace's default TTLs (Go durations).
const (
	AnnotTTLAfterSuccess = "rotor.dev/ttl-after-success"
	AnnotTTLAfterFailure = "rotor.dev/ttl-after-failure"
)

// ttlLeft says how long a finished workflow is still kept: its own
// spec.ttl for its outcome, else its namespace's annotation; ok is false
// when nothing limits it (or it has not finished). An annotation that is
// not a positive duration limits nothing: a typo must not delete
// workflows.
func ttlLeft(wf *v1alpha1.Workflow, annotations map[string]string, now time.Time) (left time.Duration, ok bool) {
	st := wf.Status
	if !st.Phase.IsTerminal() || st.FinishedAt == nil {
		return 0, false
	}
	success := st.Phase == v1alpha1.WorkflowSucceeded
	var ttl *metav1.Duration
	if t := wf.Spec.TTL; t != nil {
		ttl = t.AfterFailure
		if success {
			ttl = t.AfterSuccess
		}
	}
	d := time.Duration(-1)
	if ttl != nil {
		d = ttl.Duration
	} else {
		key := AnnotTTLAfterFailure
		if success {
			key = AnnotTTLAfterSuccess
		}
		if v, has := annotations[key]; has {
			if p, err := time.ParseDuration(v); err == nil && p >= 0 {
				d = p
			}
		}
	}
	if d < 0 {
		return 0, false
	}
	return st.FinishedAt.Add(d).Sub(now), true
}

// expire deletes a workflow whose TTL has passed, or says when to look
// again. The delete is guarded by the UID (a new workflow of the same
// name is not touched) and goes through the finalizer like any other.
func (c *Controller) expire(ctx context.Context, wf *v1alpha1.Workflow) (time.Duration, bool, error) {
	left, ok := ttlLeft(wf, c.annotations(wf.Namespace), c.now())
	if !ok {
		return 0, false, nil
	}
	if left > 0 {
		return left, true, nil
	}
	if !c.scope.CanWrite() {
		return 0, true, executor.ErrLeaseLost
	}
	uid := wf.UID
	err := c.client.RotorV1alpha1().Workflows(wf.Namespace).Delete(ctx, wf.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return 0, true, fmt.Errorf("delete %s/%s after its TTL: %w", wf.Namespace, wf.Name, err)
	}
	c.logger(ctx).Info("workflow deleted: its TTL passed", "phase", wf.Status.Phase, "finishedAt", wf.Status.FinishedAt.Time)
	return 0, true, nil
}
