package executor

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/dag"
)

// stepMap runs the map's task once per element of its list, at paths
// id/0, id/1, ..., at most concurrency at a time. It succeeds when at
// least minSuccessPercent of the items did, with each output gathered
// into a list in input order (null where an item failed); it fails as
// soon as that share can no longer be reached, stopping what still runs.
func (r *round) stepMap(ctx context.Context, sc *scope, n *v1alpha1.Node, id string, ns *v1alpha1.NodeStatus) error {
	m := n.Map
	overRaw, err := r.bind(sc, m.Over.Raw)
	if err != nil {
		r.badInputs(ns, "over: ", err)
		return nil
	}
	items, err := r.mapItems(overRaw)
	if err != nil {
		r.badInputs(ns, "over: ", err)
		return nil
	}
	base, err := r.resolve(sc, m.Inputs)
	if err != nil {
		r.badInputs(ns, "", err)
		return nil
	}
	item := m.Item
	if item == "" {
		item = dag.DefaultMapItem
	}
	task := sc.g.Tasks[m.Task]
	need := len(items)
	if p := m.MinSuccessPercent; p != nil {
		need = (len(items)*int(*p) + 99) / 100
	}
	active, succeeded, failed := 0, 0, 0
	for i := range items {
		switch p := r.wf.Status.Nodes[id+"/"+strconv.Itoa(i)].Phase; {
		case p == v1alpha1.NodeSucceeded:
			succeeded++
		case p.IsTerminal():
			failed++
		case p != v1alpha1.NodeNotStarted:
			active++
		}
	}
	for i := range items {
		if len(items)-failed < need {
			break // cannot reach the required share any more
		}
		cid := id + "/" + strconv.Itoa(i)
		child := r.wf.Status.Nodes[cid]
		if child.Phase.IsTerminal() {
			continue
		}
		if child.Phase == v1alpha1.NodeNotStarted {
			if m.Concurrency > 0 && active >= int(m.Concurrency) {
				continue
			}
			active++
		}
		inputs := map[string]json.RawMessage{item: items[i]}
		for k, v := range base {
			inputs[k] = v
		}
		// The node's timeout bounds the whole map (stepNode), not each
		// item; the task's own timeout bounds each attempt.
		err := r.stepTask(ctx, sc, cid, m.Task, &task, inputs, &child)
		r.wf.Status.Nodes[cid] = child
		if err != nil {
			return err
		}
		switch {
		case child.Phase == v1alpha1.NodeSucceeded:
			succeeded++
			active--
		case child.Phase.IsTerminal():
			failed++
			active--
		}
	}
	ns.Phase, ns.Reason, ns.Message = v1alpha1.NodeRunning, "", fmt.Sprintf("%d of %d items succeeded, %d failed, %d running", succeeded, len(items), failed, active)
	switch {
	case len(items)-failed < need:
		r.stopChildren(ctx, id, len(items))
		r.failNode(ns, "MapFailed", fmt.Sprintf("%d of %d items failed, %d must succeed; first failure: %s", failed, len(items), need, r.firstFailure(id, len(items))))
	case succeeded+failed == len(items):
		outs, err := r.keepAll(id, 0, r.gather(id, len(items), &task))
		if r.waitForStore(ns, "storing its gathered outputs", err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("map %s: store its gathered outputs: %w", id, err)
		}
		ns.Phase, ns.Message, ns.FinishedAt = v1alpha1.NodeSucceeded, fmt.Sprintf("%d of %d items succeeded", succeeded, len(items)), &r.now
		ns.Outputs = outs
	}
	return nil
}

func (r *round) stopChildren(ctx context.Context, id string, n int) {
	for i := 0; i < n; i++ {
		cid := id + "/" + strconv.Itoa(i)
		child := r.wf.Status.Nodes[cid]
		switch {
		case child.Phase.IsTerminal():
			continue
		case child.Phase == v1alpha1.NodeNotStarted:
			child.Phase, child.Message = v1alpha1.NodeSkipped, "not run: the map failed"
		default:
			r.abortAttempt(ctx, cid, &child, v1alpha1.ReasonWorkflowFailed, "stopped: the map failed")
			child.Phase, child.Message, child.FinishedAt = v1alpha1.NodeAborted, "stopped: the map failed", &r.now
		}
		r.wf.Status.Nodes[cid] = child
	}
}

func (r *round) firstFailure(id string, n int) string {
	for i := 0; i < n; i++ {
		if c := r.wf.Status.Nodes[id+"/"+strconv.Itoa(i)]; c.Phase == v1alpha1.NodeFailed {
			return fmt.Sprintf("item %d: %s", i, c.Message)
		}
	}
	return "none"
}

// gather builds the map's list outputs in input order.
func (r *round) gather(id string, n int, task *v1alpha1.TaskTemplate) map[string]apiextJSON {
	out := map[string]apiextJSON{}
	for _, k := range slices.Sorted(maps.Keys(task.Outputs)) {
		list := make([]json.RawMessage, n)
		for i := 0; i < n; i++ {
			list[i] = json.RawMessage("null")
			if v, ok := r.wf.Status.Nodes[id+"/"+strconv.Itoa(i)].Outputs[k]; ok {
				list[i] = v.Raw
			}
		}
		b, _ := json.Marshal(list)
		out[k] = apiextJSON{Raw: b}
	}
	return out
}
