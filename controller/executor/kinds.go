package executor

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/dag"
	"github.com/rotor-dev/rotor/controller/template"
	"github.com/rotor-dev/rotor/controller/values"
)

// stepNode runs one round of the node name in sc, by kind, under the
// node's timeout (see timeout.go).
func (r *round) stepNode(ctx context.Context, sc *scope, name string, ns *v1alpha1.NodeStatus) error {
	n := sc.g.Nodes[name]
	id := sc.id(name)
	if ns.StartedAt == nil {
		ns.StartedAt = &r.now
	}
	if n.Gate != nil {
		r.stepGate(n, id, ns) // a gate knows when its wait ends: it applies its timeout itself
		return nil
	}
	left, bounded := r.timeLeft(n, ns)
	if bounded && left <= 0 {
		r.timeOut(ctx, sc, n, id, ns)
		return nil
	}
	err := r.stepKind(ctx, sc, n, id, ns)
	if bounded && !ns.Phase.IsTerminal() {
		r.res.after(left)
	}
	return err
}

func (r *round) stepKind(ctx context.Context, sc *scope, n *v1alpha1.Node, id string, ns *v1alpha1.NodeStatus) error {
	switch dag.Kind(n) {
	case "branch":
		return r.stepBranch(ctx, sc, n, id, ns)
	case "map":
		return r.stepMap(ctx, sc, n, id, ns)
	case "workflow":
		return r.stepTarget(ctx, sc, id, &v1alpha1.BranchTarget{Workflow: n.Workflow, Inputs: n.Inputs}, ns)
	}
	if n.Dynamic {
		return r.stepDynamic(ctx, sc, n, id, ns)
	}
	return r.stepTarget(ctx, sc, id, &v1alpha1.BranchTarget{Task: n.Task, Inputs: n.Inputs}, ns)
}

// stepTarget runs a task or a sub-workflow at path id.
func (r *round) stepTarget(ctx context.Context, sc *scope, id string, t *v1alpha1.BranchTarget, ns *v1alpha1.NodeStatus) error {
	inputs, err := r.resolve(sc, t.Inputs)
	if err != nil {
		r.badInputs(ns, "", err)
		return nil
	}
	if t.Workflow != nil {
		return r.stepSub(ctx, sc, id, t.Workflow, inputs, ns)
	}
	task := sc.g.Tasks[t.Task]
	return r.stepTask(ctx, sc, id, t.Task, &task, inputs, ns)
}

// stepSub runs a nested DAG whose nodes live under id/. Its spec is
// snapshotted in the node's status when it starts.
func (r *round) stepSub(ctx context.Context, sc *scope, id string, w *v1alpha1.SubWorkflow, inputs map[string]json.RawMessage, ns *v1alpha1.NodeStatus) error {
	if ns.Spec == nil {
		raw, err := r.subSpec(w)
		if err != nil {
			r.failNode(ns, v1alpha1.ReasonInvalidSpec, err.Error())
			return nil
		}
		ns.Spec = &apiextJSON{Raw: raw}
	}
	var enclosing map[string]v1alpha1.TaskTemplate
	if w.TemplateRef == "" {
		enclosing = sc.g.Tasks
	}
	return r.runChild(ctx, sc, id, ns, enclosing, inputs)
}

// runChild runs the DAG snapshotted in ns.Spec under id/ with inputs: its
// tasks placed with its clusterSelector and parent's, within its
// activeDeadline, with its onFailure run when it fails.
func (r *round) runChild(ctx context.Context, parent *scope, id string, ns *v1alpha1.NodeStatus, enclosing map[string]v1alpha1.TaskTemplate, inputs map[string]json.RawMessage) error {
	sc, ok := r.childScope(parent, id, ns, enclosing, inputs)
	if !ok {
		return nil
	}
	if d := sc.g.Spec.ActiveDeadline; d != nil && d.Duration > 0 {
		left := d.Duration - r.now.Sub(ns.StartedAt.Time)
		if left <= 0 {
			why := fmt.Sprintf("the sub-workflow ran longer than its activeDeadline of %s", d.Duration)
			stopped := r.stopScope(ctx, sc, v1alpha1.ReasonDeadline, why, false)
			r.failNode(ns, v1alpha1.ReasonDeadline, why+stoppedNote(stopped))
			return nil
		}
		defer func() {
			if !ns.Phase.IsTerminal() {
				r.res.after(left)
			}
		}()
	}
	res, err := r.runScope(ctx, sc)
	if err != nil {
		return err
	}
	switch res.phase {
	case v1alpha1.NodeSucceeded:
		outs, err := r.keepAll(id, 0, res.outputs)
		if r.waitForStore(ns, "storing its outputs", err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("node %s: store its outputs: %w", id, err)
		}
		ns.Phase, ns.Reason, ns.Message, ns.FinishedAt, ns.Outputs = v1alpha1.NodeSucceeded, "", "", &r.now, outs
	case v1alpha1.NodeFailed:
		r.stopScope(ctx, sc, v1alpha1.ReasonWorkflowFailed, "the sub-workflow failed", true)
		done, err := r.runOnFailure(ctx, sc, res)
		if err != nil {
			return err
		}
		if !done {
			ns.Phase, ns.Message = v1alpha1.NodeRunning, fmt.Sprintf("running onFailure node %s: %s", sc.g.Spec.OnFailure.Name, res.message)
			return nil
		}
		r.failNode(ns, res.reason, res.message+r.onFailureNote(sc))
	default:
		ns.Phase, ns.Message = v1alpha1.NodeRunning, ""
	}
	return nil
}

// childScope decodes and checks the DAG snapshotted in ns.Spec; false
// (with the node failed) when it cannot run.
func (r *round) childScope(parent *scope, id string, ns *v1alpha1.NodeStatus, enclosing map[string]v1alpha1.TaskTemplate, inputs map[string]json.RawMessage) (*scope, bool) {
	spec, err := dag.DecodeSpec(ns.Spec.Raw)
	if err != nil {
		r.failNode(ns, v1alpha1.ReasonInvalidSpec, err.Error())
		return nil, false
	}
	g, errs := dag.BuildNested(spec, enclosing, field.NewPath("nodes", id))
	if len(errs) > 0 {
		r.failNode(ns, v1alpha1.ReasonInvalidSpec, "invalid nested workflow: "+errs.ToAggregate().Error())
		return nil, false
	}
	vals, err := bindInputs(spec, inputs)
	if err != nil {
		r.badInputs(ns, "", err)
		return nil, false
	}
	sel, err := dag.MergeSelectors(parent.selector, spec.ClusterSelector)
	if err != nil {
		r.failNode(ns, v1alpha1.ReasonInvalidSpec, "clusterSelector: "+err.Error())
		return nil, false
	}
	return &scope{prefix: id + "/", g: g, inputs: vals, selector: sel}, true
}

// bindInputs checks a nested DAG's inputs: each bound value has the
// declared type; unbound ones take their default or are an error.
func bindInputs(spec *v1alpha1.WorkflowSpec, inputs map[string]json.RawMessage) (map[string]json.RawMessage, error) {
	out := map[string]json.RawMessage{}
	for _, k := range slices.Sorted(maps.Keys(spec.Inputs)) {
		decl := spec.Inputs[k]
		v, ok := inputs[k]
		switch {
		case ok:
			if err := values.Check(decl.Type, v); err != nil {
				return nil, fmt.Errorf("input %s: %v", k, err)
			}
			out[k] = v
		case decl.Value != nil:
			out[k] = decl.Value.Raw
		default:
			return nil, fmt.Errorf("input %s (%s) is required and not bound", k, decl.Type)
		}
	}
	for k := range inputs {
		if _, ok := spec.Inputs[k]; !ok {
			return nil, fmt.Errorf("input %s is not declared by the nested workflow (declared: %s)", k, strings.Join(slices.Sorted(maps.Keys(spec.Inputs)), ", "))
		}
	}
	return out, nil
}

func (r *round) subSpec(w *v1alpha1.SubWorkflow) ([]byte, error) {
	if w.Spec != nil {
		return w.Spec.Raw, nil
	}
	if r.Templates == nil {
		return nil, fmt.Errorf("WorkflowTemplate %s: templates are not available to this engine", w.TemplateRef)
	}
	tpl, err := r.Templates.Get(r.wf.Namespace, w.TemplateRef)
	if err != nil {
		return nil, fmt.Errorf("WorkflowTemplate %s/%s: %v", r.wf.Namespace, w.TemplateRef, err)
	}
	return json.Marshal(tpl.Spec)
}

// stepBranch picks a case once, marks the others Skipped, and runs the
// chosen target at id/case-N (or id/else); the branch takes its outputs.
func (r *round) stepBranch(ctx context.Context, sc *scope, n *v1alpha1.Node, id string, ns *v1alpha1.NodeStatus) error {
	b := n.Branch
	if ns.Case == "" {
		chosen, err := r.chooseCase(sc, n)
		if err != nil {
			r.failNode(ns, v1alpha1.ReasonNoCaseMatched, err.Error())
			return nil
		}
		ns.Case, ns.Phase = chosen, v1alpha1.NodeRunning
		for i := range b.Cases {
			r.skipCase(id, strconv.Itoa(i), chosen)
		}
		if b.Else != nil {
			r.skipCase(id, "else", chosen)
		}
	}
	target := b.Else
	if i, err := strconv.Atoi(ns.Case); err == nil {
		target = &b.Cases[i].BranchTarget
	}
	childID := id + "/" + caseName(ns.Case)
	child := r.wf.Status.Nodes[childID]
	if child.StartedAt == nil {
		child.StartedAt = &r.now
	}
	err := r.stepTarget(ctx, sc, childID, target, &child)
	r.wf.Status.Nodes[childID] = child
	if err != nil {
		return err
	}
	ns.Message = "took " + caseName(ns.Case)
	switch child.Phase {
	case v1alpha1.NodeSucceeded:
		ns.Phase, ns.FinishedAt, ns.Outputs = v1alpha1.NodeSucceeded, &r.now, child.Outputs
	case v1alpha1.NodeFailed:
		r.failNode(ns, child.Reason, caseName(ns.Case)+": "+child.Message)
	default:
		ns.Phase = v1alpha1.NodeRunning
	}
	return nil
}

func caseName(c string) string {
	if c == "else" {
		return "else"
	}
	return "case-" + c
}

func (r *round) skipCase(id, c, chosen string) {
	if c == chosen {
		return
	}
	r.wf.Status.Nodes[id+"/"+caseName(c)] = v1alpha1.NodeStatus{Phase: v1alpha1.NodeSkipped, Reason: "NotChosen", Message: "branch took " + caseName(chosen)}
}

// chooseCase evaluates the conditions in order; with no match and no else
// it fails naming every value the conditions read.
func (r *round) chooseCase(sc *scope, n *v1alpha1.Node) (string, error) {
	seen := map[string]string{}
	lookup := r.valueLookup(sc)
	record := func(ref template.Ref) (json.RawMessage, error) {
		v, err := lookup(ref)
		if err == nil {
			seen[ref.String()] = string(v)
		}
		return v, err
	}
	for i, cond := range sc.g.Conditions[n.Name] {
		ok, err := cond.Eval(record)
		if err != nil {
			return "", fmt.Errorf("case %d: %v", i, err)
		}
		if ok {
			return strconv.Itoa(i), nil
		}
	}
	if n.Branch.Else != nil {
		return "else", nil
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(seen)) {
		parts = append(parts, k+" = "+seen[k])
	}
	return "", fmt.Errorf("no case matched and there is no else; the conditions saw %s", strings.Join(parts, ", "))
}

// stepGate waits for its sleep to pass or for an approval in
// spec.approvals, within the node's timeout.
func (r *round) stepGate(n *v1alpha1.Node, id string, ns *v1alpha1.NodeStatus) {
	g := n.Gate
	left, bounded := r.timeLeft(n, ns)
	if g.Sleep != nil {
		r.stepSleep(n, ns, left, bounded)
		return
	}
	if bounded && left <= 0 {
		r.failNode(ns, v1alpha1.ReasonTimedOut, fmt.Sprintf("nobody approved or rejected it within its timeout of %s", n.Timeout.Duration))
		return
	}
	switch r.wf.Spec.Approvals[id] {
	case "approve":
		ns.Phase, ns.Message, ns.FinishedAt = v1alpha1.NodeSucceeded, "approved", &r.now
	case "reject":
		r.failNode(ns, v1alpha1.ReasonRejected, "rejected")
	default:
		msg := fmt.Sprintf("waiting for approval: rotor approve %s %s", r.wf.Name, id)
		if g.Approve.Message != "" {
			msg += ": " + g.Approve.Message
		}
		ns.Phase, ns.Message = v1alpha1.NodeRunning, msg
		if bounded {
			r.res.after(left)
		}
	}
}

// stepSleep ends a sleep gate when its sleep has passed since it started,
// or fails it when its timeout is shorter and has passed. A sleep within
// the timeout ends on time even if the round that sees it comes later.
func (r *round) stepSleep(n *v1alpha1.Node, ns *v1alpha1.NodeStatus, timeoutLeft time.Duration, bounded bool) {
	sleep := n.Gate.Sleep.Duration
	left := sleep - r.now.Sub(ns.StartedAt.Time)
	if bounded && timeoutLeft < left {
		if timeoutLeft <= 0 {
			r.failNode(ns, v1alpha1.ReasonTimedOut, fmt.Sprintf("the node ran longer than its timeout of %s (it sleeps %s)", n.Timeout.Duration, sleep))
			return
		}
		left = timeoutLeft
	} else if left <= 0 {
		ns.Phase, ns.Message, ns.FinishedAt = v1alpha1.NodeSucceeded, "", &r.now
		return
	}
	ns.Phase, ns.Message = v1alpha1.NodeRunning, fmt.Sprintf("sleeping %s", sleep)
	r.res.after(left)
}

// stepDynamic runs the node's task; once it succeeds, its output
// "fragment" is validated and run as a nested DAG whose workflow inputs
// are the task's inputs.
func (r *round) stepDynamic(ctx context.Context, sc *scope, n *v1alpha1.Node, id string, ns *v1alpha1.NodeStatus) error {
	task := sc.g.Tasks[n.Task]
	inputs, err := r.resolve(sc, n.Inputs)
	if err != nil {
		r.badInputs(ns, "", err)
		return nil
	}
	if ns.Spec == nil {
		if err := r.stepTask(ctx, sc, id, n.Task, &task, inputs, ns); err != nil || ns.Phase != v1alpha1.NodeSucceeded {
			return err
		}
		raw, err := r.materialize(ns.Outputs["fragment"].Raw)
		if err != nil {
			return fmt.Errorf("dynamic node %s: read its fragment: %w", id, err)
		}
		frag, err := fragmentSpec(raw, &task, inputs)
		if err != nil {
			r.failNode(ns, v1alpha1.ReasonInvalidSpec, "bad dynamic fragment: "+err.Error())
			return nil
		}
		ns.Spec, ns.Outputs, ns.Phase, ns.FinishedAt = &apiextJSON{Raw: frag}, nil, v1alpha1.NodeRunning, nil
	}
	return r.runChild(ctx, sc, id, ns, sc.g.Tasks, inputs)
}

// fragmentSpec turns a dynamic task's fragment into a nested spec: its
// nodes, tasks and outputs, with the task's inputs as the DAG's inputs.
func fragmentSpec(raw []byte, task *v1alpha1.TaskTemplate, inputs map[string]json.RawMessage) ([]byte, error) {
	spec, err := dag.DecodeSpec(raw)
	if err != nil {
		return nil, err
	}
	if len(spec.Inputs) > 0 {
		return nil, fmt.Errorf("a fragment declares no inputs: it reads the dynamic task's inputs as {{workflow.inputs.NAME}}")
	}
	spec.Inputs = map[string]v1alpha1.WorkflowInput{}
	for k, typ := range task.Inputs {
		spec.Inputs[k] = v1alpha1.WorkflowInput{Type: typ, Value: &apiextJSON{Raw: inputs[k]}}
	}
	return json.Marshal(spec)
}
