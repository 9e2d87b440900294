package executor

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/dag"
	"github.com/rotor-dev/rotor/controller/template"
)

// scope is one DAG being run: the workflow, or a nested one whose node
// paths start with prefix.
type scope struct {
	prefix string
	g      *dag.Graph
	// inputs are the values of this DAG's {{workflow.inputs.X}}.
	inputs map[string]json.RawMessage
	// failure feeds {{failure.node}} and {{failure.message}} (onFailure).
	failure map[string]string
	// selector is the clusterSelector of this DAG and every enclosing
	// one: its tasks are placed on clusters matching all of them.
	selector map[string]string
}

func (sc *scope) id(name string) string { return sc.prefix + name }

// scopeResult is where a DAG stands after a round.
type scopeResult struct {
	phase   v1alpha1.NodePhase // Running, Succeeded or Failed
	reason  string
	message string
	outputs map[string]apiextJSON
}

func pathFor(wf *v1alpha1.Workflow) *field.Path {
	if wf.Spec.WorkflowTemplateRef != "" {
		return field.NewPath("template", wf.Spec.WorkflowTemplateRef).Child("spec")
	}
	return field.NewPath("spec")
}

// lookup resolves references in sc.
func (r *round) lookup(sc *scope) template.Lookup {
	return func(ref template.Ref) (json.RawMessage, error) {
		switch ref.Kind {
		case template.WorkflowInput:
			if v, ok := sc.inputs[ref.Name]; ok {
				return v, nil
			}
		case template.NodeOutput:
			if v, ok := r.wf.Status.Nodes[sc.id(ref.Node)].Outputs[ref.Name]; ok {
				return v.Raw, nil
			}
		case template.Failure:
			if v, ok := sc.failure[ref.Name]; ok {
				return json.Marshal(v)
			}
		}
		return nil, fmt.Errorf("{{%s}} has no value", ref)
	}
}

// runScope steps every runnable node of sc once and reports the DAG's
// phase. Nodes run when all they depend on succeeded; at most parallelism
// of them are in flight.
func (r *round) runScope(ctx context.Context, sc *scope) (scopeResult, error) {
	st := &r.wf.Status
	active := 0
	for _, name := range sc.g.Order {
		if p := st.Nodes[sc.id(name)].Phase; p != v1alpha1.NodeNotStarted && !p.IsTerminal() {
			active++
		}
	}
	limit := 0
	if p := sc.g.Spec.Parallelism; p != nil {
		limit = int(*p)
	}
	for _, name := range sc.g.Order {
		id := sc.id(name)
		ns := st.Nodes[id]
		if ns.Phase.IsTerminal() || !r.depsSucceeded(sc, name) {
			continue
		}
		if ns.Phase == v1alpha1.NodeNotStarted {
			if limit > 0 && active >= limit {
				continue
			}
			active++
		}
		err := r.stepNode(ctx, sc, name, &ns)
		st.Nodes[id] = ns
		if err != nil {
			return scopeResult{}, fmt.Errorf("node %s: %w", id, err)
		}
		if ns.Phase.IsTerminal() {
			active-- // its slot is free for a node later in this round
		}
	}
	return r.decide(sc), nil
}

func (r *round) depsSucceeded(sc *scope, name string) bool {
	for _, d := range sc.g.Deps[name] {
		if r.wf.Status.Nodes[sc.id(d)].Phase != v1alpha1.NodeSucceeded {
			return false
		}
	}
	return true
}

// decide reports a DAG failed once any node failed, succeeded once every
// node succeeded (or was skipped), else running.
func (r *round) decide(sc *scope) scopeResult {
	st := &r.wf.Status
	var failed []string
	done := 0
	for _, name := range sc.g.Order {
		switch st.Nodes[sc.id(name)].Phase {
		case v1alpha1.NodeFailed:
			failed = append(failed, name)
		case v1alpha1.NodeSucceeded, v1alpha1.NodeSkipped:
			done++
		}
	}
	if len(failed) > 0 {
		first := st.Nodes[sc.id(failed[0])]
		msg := fmt.Sprintf("node %s failed: %s", sc.id(failed[0]), first.Message)
		if len(failed) > 1 {
			msg += fmt.Sprintf(" (and %d more: %s)", len(failed)-1, strings.Join(failed[1:], ", "))
		}
		return scopeResult{phase: v1alpha1.NodeFailed, reason: v1alpha1.ReasonNodeFailed, message: msg}
	}
	if done < len(sc.g.Order) {
		return scopeResult{phase: v1alpha1.NodeRunning}
	}
	outs := map[string]apiextJSON{}
	for _, name := range slices.Sorted(maps.Keys(sc.g.Spec.Outputs)) {
		v, err := r.bind(sc, sc.g.Spec.Outputs[name].Raw)
		if storeDown(err) {
			r.res.after(storeWait) // the DAG is done; its outputs wait for the store
			return scopeResult{phase: v1alpha1.NodeRunning}
		}
		if err != nil {
			return scopeResult{phase: v1alpha1.NodeFailed, reason: v1alpha1.ReasonBadOutputs, message: fmt.Sprintf("outputs[%s]: %v", name, err)}
		}
		outs[name] = apiextJSON{Raw: v}
	}
	return scopeResult{phase: v1alpha1.NodeSucceeded, outputs: outs}
}

// stopScope stops every node still in flight in sc, nested ones included,
// and skips sc's nodes not started, so nothing more starts there: on a
// failure, an abort or a deadline. With keepOnFailure (a failure, whose
// onFailure is about to run) sc's onFailure node is left alone. It
// returns the paths it stopped.
func (r *round) stopScope(ctx context.Context, sc *scope, reason, why string, keepOnFailure bool) []string {
	st := &r.wf.Status
	keep := ""
	if of := sc.g.Spec.OnFailure; of != nil && keepOnFailure {
		keep = sc.id(of.Name)
	}
	stopped := r.stopUnder(ctx, sc.prefix, keep, reason, why)
	for _, name := range sc.g.Order {
		if ns := st.Nodes[sc.id(name)]; ns.Phase == v1alpha1.NodeNotStarted {
			ns.Phase, ns.Reason, ns.Message = v1alpha1.NodeSkipped, reason, "not run: "+why
			st.Nodes[sc.id(name)] = ns
		}
	}
	return stopped
}

// runOnFailure runs sc's onFailure, if any, after its DAG failed, under
// the onFailure node's own timeout; done is true once there is nothing
// more to wait for.
func (r *round) runOnFailure(ctx context.Context, sc *scope, failed scopeResult) (done bool, err error) {
	n := sc.g.Spec.OnFailure
	if n == nil {
		return true, nil
	}
	id := sc.id(n.Name)
	ns := r.wf.Status.Nodes[id]
	if ns.Phase.IsTerminal() {
		return true, nil
	}
	if ns.StartedAt == nil {
		ns.StartedAt = &r.now
	}
	node, msg := failedNode(failed.message)
	fsc := &scope{prefix: sc.prefix, g: sc.g, inputs: sc.inputs, failure: map[string]string{"node": node, "message": msg}, selector: sc.selector}
	task := sc.g.Tasks[n.Task]
	inputs, rerr := r.resolve(fsc, n.Inputs)
	left, bounded := r.timeLeft(n, &ns)
	switch {
	case rerr != nil:
		r.badInputs(&ns, "", rerr)
	case bounded && left <= 0:
		r.timeOut(ctx, fsc, n, id, &ns)
	default:
		err = r.stepTask(ctx, fsc, id, n.Task, &task, inputs, &ns)
		if bounded && !ns.Phase.IsTerminal() {
			r.res.after(left)
		}
	}
	r.wf.Status.Nodes[id] = ns
	return err == nil && ns.Phase.IsTerminal(), err
}

func (r *round) onFailureNote(sc *scope) string {
	n := sc.g.Spec.OnFailure
	if n == nil {
		return ""
	}
	ns := r.wf.Status.Nodes[sc.id(n.Name)]
	if ns.Phase == v1alpha1.NodeSucceeded {
		return fmt.Sprintf("; onFailure node %s ran", n.Name)
	}
	return fmt.Sprintf("; onFailure node %s also failed: %s", n.Name, ns.Message)
}

// failedNode splits "node X failed: MSG".
func failedNode(msg string) (string, string) {
	rest, ok := strings.CutPrefix(msg, "node ")
	if !ok {
		return "", msg
	}
	node, m, ok := strings.Cut(rest, " failed: ")
	if !ok {
		return "", msg
	}
	return node, m
}

// resolve evaluates bindings in sc.
func (r *round) resolve(sc *scope, bindings map[string]apiextJSON) (map[string]json.RawMessage, error) {
	out := make(map[string]json.RawMessage, len(bindings))
	for name, b := range bindings {
		v, err := r.bind(sc, b.Raw)
		if err != nil {
			return nil, fmt.Errorf("input %s: %w", name, err)
		}
		out[name] = v
	}
	return out, nil
}
