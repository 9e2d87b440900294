// Package executor moves one Workflow forward by one reconcile round: it
// validates the spec, decides which nodes may run, asks each running
// node's plugin where its attempt stands, applies retry and timeout rules,
// runs nested DAGs (sub-workflows, branches, maps, dynamic fragments), and
// decides the workflow's phase. It mutates only the status of the object
// it is given (a deep copy owned by the caller) and does no I/O of its own
// beyond plugin calls and template reads, so one status write per round
// can follow.
//
// Node statuses live in one flat map keyed by node path: "a" at the top,
// "sub/a" inside sub-workflow node sub, "m/3" for item 3 of map node m,
// "br/case-0" for the target of a branch's first case.
package executor

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/dag"
	"github.com/rotor-dev/rotor/internal/logctx"
	"github.com/rotor-dev/rotor/plugins"
)

type apiextJSON = apiextensionsv1.JSON

// Clusters places attempts on target clusters and finds them again.
type Clusters interface {
	// Pick chooses a cluster for a new attempt of task in a workflow
	// with that clusterSelector. A *placement.NoFit error says why no
	// cluster takes it.
	Pick(id plugins.TaskID, task *v1alpha1.TaskTemplate, workflowSelector map[string]string) (*plugins.Cluster, error)
	// Get returns a cluster by name.
	Get(name string) (*plugins.Cluster, bool)
	// Health says whether a cluster's attempts must move.
	Health(name string) plugins.ClusterHealth
}

// LaunchFinder is implemented by Clusters that know whether an attempt's
// pod exists in a target (the cluster registry, from its pod caches and
// its own recent placements).
type LaunchFinder interface {
	Launched(id plugins.TaskID) bool
}

// StrayFinder is implemented by Clusters that can see one attempt's pod
// in more than one target (the cluster registry, from its pod caches):
// Doubled says cheaply whether a workflow has such a pod at all, Strays
// which clusters other than the recorded one hold an attempt's pod.
type StrayFinder interface {
	Doubled(namespace, workflowUID string) bool
	Strays(id plugins.TaskID, recorded string) []string
}

// Quota admits new attempts against per-namespace caps.
type Quota interface {
	Admit(id plugins.TaskID) (ok bool, why string)
}

// Templates finds WorkflowTemplates.
type Templates interface {
	Get(namespace, name string) (*v1alpha1.WorkflowTemplate, error)
}

// Executor runs reconcile rounds. It holds no per-workflow state.
type Executor struct {
	Plugins   *plugins.Registry
	Clusters  Clusters
	Templates Templates
	// Cache, if set, serves tasks that declare cache.
	Cache Cache
	// Workflows, if set, lets a workflow recover from an earlier one.
	Workflows Workflows
	// Quota, if set, caps task pods in flight per namespace.
	Quota Quota
	Clock clock.PassiveClock
	// MaxSystemRetries bounds retries for failures that are not the
	// task's fault, so a cluster that loses every pod cannot loop forever.
	MaxSystemRetries int
	// Lease, if set, is asked before every plugin call; false ends the
	// round with ErrLeaseLost (a sharded replica passes its membership
	// lease's validity).
	Lease func() bool
	// Logger, if set, records what the executor does outside a workflow's
	// status (orphaned pods deleted).
	Logger *slog.Logger
	// Values, if set, offloads large values to the object store and reads
	// them back where the workflow computes with them (values.go).
	// Without it every value stays inline.
	Values Values
}

// Result tells the caller when to look at the workflow again, beyond the
// events (pod changes) that trigger a round anyway.
type Result struct {
	// RequeueAfter > 0 asks for a round after that delay (timeouts).
	RequeueAfter time.Duration
	// Requeue asks for another round at once (a retry to launch).
	Requeue bool
	// Overheads are the orchestration overheads of the downstream pods
	// this round created after seeing their upstream finish, measured
	// from the event given by WithTrigger. The caller records them once
	// the round's status is written (a round whose write fails is redone
	// and would count its launches twice).
	Overheads []time.Duration
}

// logger is the round's logger when ctx carries one (it names the
// workflow, partition and epoch), else the executor's own naming wf.
func (e *Executor) logger(ctx context.Context, wf *v1alpha1.Workflow) *slog.Logger {
	if l := logctx.FromOr(ctx, nil); l != nil {
		return l
	}
	l := e.Logger
	if l == nil {
		l = slog.Default()
	}
	return l.With("namespace", wf.Namespace, "workflow", wf.Name)
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
	// ctx is the round's, for what template lookups read from the
	// object store (they take no context of their own).
	ctx context.Context
	wf  *v1alpha1.Workflow
	now metav1.Time
	res Result
	// upstreamDone: a node succeeded in this round, so pods launched
	// after it in the round are downstream work it unblocked.
	upstreamDone bool
}

// orphanRecheck is how often a workflow with orphans on an unreachable
// cluster looks again (pod events of a cluster that comes back bring it
// sooner).
const orphanRecheck = 10 * time.Second

// Reconcile runs one round on wf, mutating wf.Status.
func (e *Executor) Reconcile(ctx context.Context, wf *v1alpha1.Workflow) (Result, error) {
	st := &wf.Status
	// Pods left on a lost cluster are deleted when it is back, whether
	// the workflow still runs or not.
	st.Orphans = append(st.Orphans, e.strays(ctx, wf)...)
	orphans := e.cleanOrphans(ctx, wf)
	if st.Phase.IsTerminal() {
		if orphans {
			return Result{RequeueAfter: orphanRecheck}, nil
		}
		return Result{}, nil
	}
	r := &round{Executor: e, ctx: ctx, wf: wf, now: metav1.NewTime(e.Clock.Now())}
	if orphans {
		r.res.after(orphanRecheck)
	}
	if err := r.unpack(); err != nil {
		return Result{}, err
	}
	defer r.pack()
	top, err := r.topScope()
	if err != nil {
		r.finish(v1alpha1.WorkflowFailed, v1alpha1.ReasonInvalidSpec, err.Error())
		return r.res, nil
	}
	if st.Phase == "" || st.Phase == v1alpha1.WorkflowPending {
		st.Phase, st.StartedAt, st.Message = v1alpha1.WorkflowRunning, &r.now, ""
	}
	if st.Nodes == nil {
		st.Nodes = map[string]v1alpha1.NodeStatus{}
	}
	st.ObservedGeneration = wf.Generation
	if err := r.recover(); err != nil {
		r.finish(v1alpha1.WorkflowFailed, v1alpha1.ReasonInvalidSpec, err.Error())
		return r.res, nil
	}
	if wf.Spec.Abort {
		r.stopScope(ctx, top, v1alpha1.ReasonAborted, "aborted by request", false)
		r.finish(v1alpha1.WorkflowAborted, v1alpha1.ReasonAborted, "aborted by request")
		return r.res, nil
	}
	if d, msg := r.deadline(top); d > 0 {
		left := d - r.now.Sub(st.StartedAt.Time)
		if left <= 0 {
			r.stopScope(ctx, top, v1alpha1.ReasonDeadline, msg, false)
			r.finish(v1alpha1.WorkflowFailed, v1alpha1.ReasonDeadline, msg)
			return r.res, nil
		}
		r.res.after(left)
	}
	res, err := r.runScope(ctx, top)
	if err != nil {
		return r.res, err
	}
	switch res.phase {
	case v1alpha1.NodeSucceeded:
		if len(res.outputs) > 0 {
			if st.Outputs, err = r.keepAll(scopeNode(top), 0, res.outputs); err != nil {
				return r.res, err
			}
		}
		r.finish(v1alpha1.WorkflowSucceeded, v1alpha1.ReasonSucceeded, fmt.Sprintf("%d nodes succeeded", len(top.g.Order)))
	case v1alpha1.NodeFailed:
		r.stopScope(ctx, top, v1alpha1.ReasonWorkflowFailed, "the workflow failed", true)
		done, err := r.runOnFailure(ctx, top, res)
		if err != nil || !done {
			return r.res, err
		}
		r.finish(v1alpha1.WorkflowFailed, res.reason, res.message+r.onFailureNote(top))
	}
	return r.res, nil
}

// topScope is the workflow's own DAG: its spec, or the snapshot of the
// template it runs.
func (r *round) topScope() (*scope, error) {
	spec := &r.wf.Spec
	if ref := spec.WorkflowTemplateRef; ref != "" {
		if _, errs := dag.Build(spec); len(errs) > 0 {
			return nil, fmt.Errorf("invalid spec: %s", errs.ToAggregate())
		}
		var err error
		if spec, err = r.templateSpec(ref); err != nil {
			return nil, err
		}
	}
	build := dag.BuildScope
	if spec != &r.wf.Spec {
		build = dag.BuildNested // a template: only its Workflow is aborted, approved, recovered
	}
	g, errs := build(spec, nil, pathFor(r.wf))
	if len(errs) > 0 {
		return nil, fmt.Errorf("invalid spec: %s", errs.ToAggregate())
	}
	inputs := map[string]json.RawMessage{}
	for k, in := range spec.Inputs {
		if in.Value == nil {
			return nil, fmt.Errorf("invalid spec: input %q has no value", k)
		}
		inputs[k] = in.Value.Raw
	}
	sel := r.wf.Spec.ClusterSelector
	if spec != &r.wf.Spec {
		var err error
		if sel, err = dag.MergeSelectors(sel, spec.ClusterSelector); err != nil {
			return nil, fmt.Errorf("invalid spec: clusterSelector of WorkflowTemplate %s: %w", r.wf.Spec.WorkflowTemplateRef, err)
		}
	}
	return &scope{g: g, inputs: inputs, selector: sel}, nil
}

// deadline is the workflow's activeDeadline, or that of the
// WorkflowTemplate it runs when that one ends first, with the message
// that names it; 0 when there is none.
func (r *round) deadline(top *scope) (time.Duration, string) {
	var d time.Duration
	msg := ""
	if own := r.wf.Spec.ActiveDeadline; own != nil && own.Duration > 0 {
		d, msg = own.Duration, fmt.Sprintf("the workflow ran longer than its activeDeadline of %s", own.Duration)
	}
	if ref := r.wf.Spec.WorkflowTemplateRef; ref != "" {
		if t := top.g.Spec.ActiveDeadline; t != nil && t.Duration > 0 && (d == 0 || t.Duration < d) {
			d, msg = t.Duration, fmt.Sprintf("the workflow ran longer than the activeDeadline of %s of WorkflowTemplate %s", t.Duration, ref)
		}
	}
	return d, msg
}

// templateSpec snapshots the WorkflowTemplate a workflow runs into its
// status on the first round, with the workflow's input values over the
// template's defaults, and reads the snapshot after that.
func (r *round) templateSpec(ref string) (*v1alpha1.WorkflowSpec, error) {
	st := &r.wf.Status
	if st.TemplateSpec == nil {
		if r.Templates == nil {
			return nil, fmt.Errorf("spec.workflowTemplateRef: templates are not available to this engine")
		}
		tpl, err := r.Templates.Get(r.wf.Namespace, ref)
		if err != nil {
			return nil, fmt.Errorf("spec.workflowTemplateRef: WorkflowTemplate %s/%s: %v", r.wf.Namespace, ref, err)
		}
		spec := tpl.Spec.DeepCopy()
		for k, in := range r.wf.Spec.Inputs {
			decl, ok := spec.Inputs[k]
			if !ok {
				return nil, fmt.Errorf("spec.inputs[%s]: template %s declares no input %q", k, ref, k)
			}
			decl.Value = in.Value
			spec.Inputs[k] = decl
		}
		b, err := json.Marshal(spec)
		if err != nil {
			return nil, err
		}
		st.TemplateSpec = &apiextJSON{Raw: b}
	}
	spec, err := dag.DecodeSpec(st.TemplateSpec.Raw)
	if err != nil {
		return nil, fmt.Errorf("status.templateSpec: %w", err)
	}
	return spec, nil
}

func (r *round) finish(phase v1alpha1.WorkflowPhase, reason, msg string) {
	st := &r.wf.Status
	st.Phase, st.Reason, st.Message, st.FinishedAt = phase, reason, msg, &r.now
	if st.StartedAt == nil {
		st.StartedAt = &r.now
	}
}
