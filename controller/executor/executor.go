// Package executor moves one Workflow forward by one reconcile round: it
// validates the spec, decides which nodes may run, asks each running node's
// plugin where its attempt stands, applies retry and timeout rules, and
// decides the workflow's phase. It mutates only the status of the object it
// is given (a deep copy owned by the caller) and does no I/O of its own
// beyond the plugin calls, so one status write per round can follow.
package executor

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/dag"
	"github.com/rotor-dev/rotor/controller/template"
	"github.com/rotor-dev/rotor/plugins"
)

// Clusters places attempts on target clusters and finds them again.
type Clusters interface {
	// Pick chooses a cluster for a new attempt.
	Pick(id plugins.TaskID, task *v1alpha1.TaskTemplate) (*plugins.Cluster, error)
	// Get returns a cluster by name.
	Get(name string) (*plugins.Cluster, bool)
}

// Executor runs reconcile rounds. It holds no per-workflow state.
type Executor struct {
	Plugins  *plugins.Registry
	Clusters Clusters
	Clock    clock.PassiveClock
	// MaxSystemRetries bounds retries for failures that are not the
	// task's fault, so a cluster that loses every pod cannot loop forever.
	MaxSystemRetries int
}

// Result tells the caller when to look at the workflow again, beyond the
// events (pod changes) that trigger a round anyway.
type Result struct {
	// RequeueAfter > 0 asks for a round after that delay (timeouts).
	RequeueAfter time.Duration
	// Requeue asks for another round at once (a retry to launch).
	Requeue bool
}

func (r *Result) after(d time.Duration) {
	if d <= 0 {
		r.Requeue = true
		return
	}
	if r.RequeueAfter == 0 || d < r.RequeueAfter {
		r.RequeueAfter = d
	}
}

// round is the state of one reconcile round.
type round struct {
	*Executor
	wf  *v1alpha1.Workflow
	g   *dag.Graph
	now metav1.Time
	res Result
}

// Reconcile runs one round on wf, mutating wf.Status.
func (e *Executor) Reconcile(ctx context.Context, wf *v1alpha1.Workflow) (Result, error) {
	st := &wf.Status
	if st.Phase.IsTerminal() {
		return Result{}, nil
	}
	r := &round{Executor: e, wf: wf, now: metav1.NewTime(e.Clock.Now())}
	g, errs := dag.Build(&wf.Spec)
	if len(errs) > 0 {
		r.finish(v1alpha1.WorkflowFailed, v1alpha1.ReasonInvalidSpec, "invalid spec: "+errs.ToAggregate().Error())
		return r.res, nil
	}
	r.g = g
	if st.Phase == "" || st.Phase == v1alpha1.WorkflowPending {
		st.Phase, st.StartedAt, st.Message = v1alpha1.WorkflowRunning, &r.now, ""
	}
	if st.Nodes == nil {
		st.Nodes = map[string]v1alpha1.NodeStatus{}
	}
	st.ObservedGeneration = wf.Generation
	if wf.Spec.Abort {
		r.stopAll(ctx, v1alpha1.ReasonAborted, "aborted by request")
		r.finish(v1alpha1.WorkflowAborted, v1alpha1.ReasonAborted, "aborted by request")
		return r.res, nil
	}
	if d := wf.Spec.ActiveDeadline; d != nil && d.Duration > 0 {
		left := d.Duration - r.now.Sub(st.StartedAt.Time)
		if left <= 0 {
			msg := fmt.Sprintf("the workflow ran longer than its activeDeadline of %s", d.Duration)
			r.stopAll(ctx, v1alpha1.ReasonDeadline, msg)
			r.finish(v1alpha1.WorkflowFailed, v1alpha1.ReasonDeadline, msg)
			return r.res, nil
		}
		r.res.after(left)
	}
	if err := r.stepNodes(ctx); err != nil {
		return r.res, err
	}
	r.decide(ctx)
	return r.res, nil
}

func (r *round) stepNodes(ctx context.Context) error {
	st := &r.wf.Status
	active := 0
	for _, ns := range st.Nodes {
		if ns.Phase != v1alpha1.NodeNotStarted && !ns.Phase.IsTerminal() {
			active++
		}
	}
	limit := 0
	if p := r.wf.Spec.Parallelism; p != nil {
		limit = int(*p)
	}
	for _, name := range r.g.Order {
		ns := st.Nodes[name]
		if ns.Phase.IsTerminal() || !r.depsSucceeded(name) {
			continue
		}
		if ns.Phase == v1alpha1.NodeNotStarted {
			if limit > 0 && active >= limit {
				continue
			}
			active++
		}
		if err := r.stepNode(ctx, name, &ns); err != nil {
			st.Nodes[name] = ns
			return fmt.Errorf("node %s: %w", name, err)
		}
		if ns.Phase.IsTerminal() {
			active-- // its slot is free for a node later in this round
		}
		st.Nodes[name] = ns
	}
	return nil
}

func (r *round) depsSucceeded(name string) bool {
	for _, d := range r.g.Deps[name] {
		if r.wf.Status.Nodes[d].Phase != v1alpha1.NodeSucceeded {
			return false
		}
	}
	return true
}

// lookup resolves references against workflow inputs and node outputs.
func (r *round) lookup(ref template.Ref) (json.RawMessage, error) {
	switch ref.Kind {
	case template.WorkflowInput:
		if in, ok := r.wf.Spec.Inputs[ref.Name]; ok && in.Value != nil {
			return in.Value.Raw, nil
		}
	case template.NodeOutput:
		if v, ok := r.wf.Status.Nodes[ref.Node].Outputs[ref.Name]; ok {
			return v.Raw, nil
		}
	}
	return nil, fmt.Errorf("{{%s}} has no value", ref)
}

// decide sets the workflow's phase once a node failed or all succeeded.
func (r *round) decide(ctx context.Context) {
	st := &r.wf.Status
	var failed []string
	done := 0
	for _, name := range r.g.Order {
		switch st.Nodes[name].Phase {
		case v1alpha1.NodeFailed:
			failed = append(failed, name)
		case v1alpha1.NodeSucceeded, v1alpha1.NodeSkipped:
			done++
		}
	}
	if len(failed) > 0 {
		first := st.Nodes[failed[0]]
		msg := fmt.Sprintf("node %s failed: %s", failed[0], first.Message)
		if len(failed) > 1 {
			msg += fmt.Sprintf(" (and %d more: %s)", len(failed)-1, strings.Join(failed[1:], ", "))
		}
		r.stopAll(ctx, v1alpha1.ReasonWorkflowFailed, "the workflow failed")
		r.finish(v1alpha1.WorkflowFailed, v1alpha1.ReasonNodeFailed, msg)
		return
	}
	if done < len(r.g.Order) {
		return
	}
	outs := map[string]apiextJSON{}
	for name, b := range r.wf.Spec.Outputs {
		v, err := template.Resolve(b.Raw, r.lookup)
		if err != nil {
			r.finish(v1alpha1.WorkflowFailed, "BadOutputs", fmt.Sprintf("spec.outputs[%s]: %v", name, err))
			return
		}
		outs[name] = apiextJSON{Raw: v}
	}
	if len(outs) > 0 {
		st.Outputs = outs
	}
	r.finish(v1alpha1.WorkflowSucceeded, v1alpha1.ReasonSucceeded, fmt.Sprintf("%d nodes succeeded", len(r.g.Order)))
}

// stopAll stops every node still running and skips those not started,
// so nothing more starts: on a failure, an abort or a deadline.
func (r *round) stopAll(ctx context.Context, reason, why string) {
	st := &r.wf.Status
	for _, name := range r.g.Order {
		ns := st.Nodes[name]
		switch {
		case ns.Phase.IsTerminal():
			continue
		case ns.Phase == v1alpha1.NodeNotStarted:
			ns.Phase, ns.Reason, ns.Message = v1alpha1.NodeSkipped, reason, "not run: "+why
		default:
			r.abortNode(ctx, name, &ns, reason, "stopped: "+why)
		}
		st.Nodes[name] = ns
	}
}

func (r *round) finish(phase v1alpha1.WorkflowPhase, reason, msg string) {
	st := &r.wf.Status
	st.Phase, st.Reason, st.Message, st.FinishedAt = phase, reason, msg, &r.now
	if st.StartedAt == nil {
		st.StartedAt = &r.now
	}
}
